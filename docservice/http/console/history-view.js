// A document's history: the timeline of its versions (newest first: who, when, what kind of
// change, the message), a comparison of any two (#/documents/ID/history?from=2&to=5, shown with
// diff.js) and revert to a chosen version. The timeline follows the live feed.

import * as api from "./api.js";
import { confirmDialog } from "./dialogs.js";
import { diffView } from "./diff.js";
import { changeNotice, documentHeader } from "./doc-header.js";
import { clear, formatTime, h, showError, time, toast } from "./dom.js";
import { onChange } from "./feed.js";
import { href, navigate } from "./router.js";
import { allVersions, currentOf, loadDocument } from "./versions.js";

export function mount(container, route) {
  const id = route.params.id;
  let query = route.query;
  let doc = null;
  let versions = [];
  const head = h("div");
  const notices = h("div", { class: "notices" });
  const timeline = h("div", { class: "timeline" }, h("p", { "aria-busy": "true" }, "Loading…"));
  const comparison = h("section", { class: "comparison", "aria-labelledby": "compare-title" });
  container.append(h("article", { class: "history-page" }, head, notices, timeline, comparison));

  async function load(event = null) {
    try {
      const history = await allVersions(id);
      doc = currentOf(history) ?? (await loadDocument(id));
      versions = history.versions;
      clear(head, documentHeader(doc, "history"));
      document.title = `History of ${doc.title || "(untitled)"} · docservice`;
      clear(timeline, timelineForm(history.truncated));
      if (event) clear(notices, changeNotice(event));
    } catch (error) {
      showError(timeline, error);
    }
  }

  function selected() {
    const latest = Number(doc.version);
    const to = Number(query.get("to")) || latest;
    const from = query.has("from") ? Number(query.get("from")) : to - 1;
    return { from, to };
  }

  function timelineForm(truncated) {
    const { from, to } = selected();
    const rows = versions.toReversed().map((v) => versionRow(v, from, to));
    return h(
      "form",
      { class: "compare-form", "aria-label": "Versions", onsubmit: compare },
      h("h2", {}, "Versions"),
      truncated
        ? h("p", { class: "notice" }, `Showing the first ${versions.length} versions.`)
        : null,
      h(
        "div",
        { class: "table-scroll" },
        h(
          "table",
          { class: "versions" },
          h(
            "thead",
            {},
            h(
              "tr",
              {},
              ["Version", "Change", "By", "When", "Message", "From", "To", ""].map((label) =>
                h("th", { scope: "col" }, label),
              ),
            ),
          ),
          h("tbody", {}, rows),
        ),
      ),
      h(
        "div",
        { class: "actions" },
        h("button", { type: "submit", class: "primary" }, "Compare selected versions"),
      ),
    );
  }

  function versionRow(v, from, to) {
    const number = Number(v.version);
    const current = number === Number(doc.version);
    const kind = v.changeKind.toLowerCase();
    const radio = (name, checked) =>
      h("input", {
        type: "radio",
        name,
        value: String(number),
        checked,
        "aria-label": `${name === "from" ? "Compare from" : "Compare to"} version ${number}`,
      });
    return h(
      "tr",
      { dataset: { version: String(number) }, class: current ? "current" : null },
      h("th", { scope: "row", "data-label": "Version" }, `v${number}`, current ? " (current)" : ""),
      h(
        "td",
        { "data-label": "Change" },
        h("span", { class: `badge kind-${kind}` }, kind),
        v.revertedFrom !== "0" ? ` to v${v.revertedFrom}` : "",
      ),
      h("td", { "data-label": "By" }, v.changedBy || h("span", { class: "muted" }, "unknown")),
      h("td", { "data-label": "When", title: formatTime(v.timestamp) }, time(v.timestamp)),
      h("td", { "data-label": "Message" }, v.changeMessage || h("span", { class: "muted" }, "—")),
      h("td", { "data-label": "From", class: "pick" }, radio("from", number === from)),
      h("td", { "data-label": "To", class: "pick" }, radio("to", number === to)),
      h(
        "td",
        { class: "row-actions" },
        h(
          "a",
          {
            href: href(`/documents/${id}/history`, { from: number - 1, to: number }),
            "aria-label": `Changes in version ${number}`,
          },
          "Changes",
        ),
        h(
          "a",
          {
            href: href(`/documents/${id}/blame`, { version: number }),
            "aria-label": `Blame of version ${number}`,
          },
          "Blame",
        ),
        current || doc.isDeleted
          ? null
          : h("button", { type: "button", onclick: () => revert(number) }, `Revert to v${number}`),
      ),
    );
  }

  function compare(event) {
    event.preventDefault();
    const data = new FormData(event.target);
    navigate(href(`/documents/${id}/history`, { from: data.get("from"), to: data.get("to") }));
  }

  async function showComparison() {
    if (!query.has("to")) {
      clear(comparison);
      return;
    }
    const { from, to } = selected();
    const title = h(
      "h2",
      { id: "compare-title", tabindex: "-1" },
      from > 0 ? `Changes from version ${from} to version ${to}` : `Version ${to} as created`,
    );
    clear(comparison, title, h("p", { "aria-busy": "true" }, "Loading…"));
    try {
      const diff = await api.diffVersions(id, from, to);
      clear(comparison, title, diffView(diff));
      title.focus();
    } catch (error) {
      const where = h("div");
      clear(comparison, title, where);
      showError(where, error);
    }
  }

  async function revert(number) {
    const answer = await confirmDialog({
      title: `Revert to version ${number}?`,
      text: `A new version is added whose fields equal version ${number}'s; the history is kept.`,
      confirm: "Revert",
      message: `Revert to version ${number}`,
    });
    if (!answer) return;
    try {
      const reverted = await api.revertDocument(id, doc.etag, number, answer.message);
      if (reverted.version === doc.version) {
        toast(`Nothing to revert: version ${doc.version} already equals version ${number}.`);
      } else {
        toast(`Reverted: version ${reverted.version} equals version ${number}.`, "success");
      }
      const target = href(`/documents/${id}/history`, { from: number, to: reverted.version });
      if (location.hash !== target) {
        navigate(target); // update() reloads
        return;
      }
    } catch (error) {
      toast(
        error.stale ? "It changed meanwhile: the history is reloaded." : error.message,
        "error",
      );
    }
    await load();
  }

  const stop = onChange((event) => {
    if (event === null || event.documentId === id) load(event);
  });
  load().then(showComparison);
  return {
    async update(next) {
      query = next.query;
      await load();
      await showComparison();
    },
    unmount: stop,
  };
}
