// Blame: each line of a version's content with the version that last changed it, who made that
// version and when (#/documents/ID/blame?version=3; the current version without one). Lines of
// one range share one annotation, as in `git blame` viewers.

import * as api from "./api.js";
import { changeNotice, documentHeader } from "./doc-header.js";
import { clear, h, showError, time } from "./dom.js";
import { onChange } from "./feed.js";
import { href, navigate } from "./router.js";
import { loadDocument } from "./versions.js";

export function mount(container, route) {
  const id = route.params.id;
  let query = route.query;
  const head = h("div");
  const notices = h("div", { class: "notices" });
  const body = h("div", { class: "blame-body" }, h("p", { "aria-busy": "true" }, "Loading…"));
  container.append(h("article", { class: "blame-page" }, head, notices, body));

  async function load() {
    try {
      const doc = await loadDocument(id);
      const version = Number(query.get("version")) || Number(doc.version);
      const [blame, snapshot] = await Promise.all([
        api.blame(id, version),
        api.getVersion(id, version),
      ]);
      clear(head, documentHeader(doc, "blame"));
      document.title = `Blame of ${doc.title || "(untitled)"} · docservice`;
      clear(
        body,
        picker(Number(doc.version), version),
        blameTable(blame, snapshot.document.content),
      );
    } catch (error) {
      showError(body, error);
    }
  }

  function picker(latest, version) {
    const input = h("input", {
      type: "number",
      name: "version",
      id: "blame-version",
      min: "1",
      max: String(latest),
      value: String(version),
      required: true,
    });
    return h(
      "form",
      {
        class: "inline-form",
        onsubmit: (e) => {
          e.preventDefault();
          navigate(href(`/documents/${id}/blame`, { version: input.value }));
        },
      },
      h("label", { for: input.id }, "Blame of version"),
      input,
      h("span", { class: "muted" }, `of ${latest}`),
      h("button", { type: "submit" }, "Show"),
    );
  }

  const stop = onChange((event) => {
    if (event?.documentId !== id || query.get("version")) return; // a past version never changes
    clear(notices, changeNotice(event));
    load();
  });
  load();
  return {
    update(next) {
      query = next.query;
      load();
    },
    unmount: stop,
  };
}

function blameTable(blame, content) {
  if (!blame.ranges.length) return h("p", { class: "muted" }, "This version has no content.");
  const lines = content.split("\n");
  const rows = [];
  blame.ranges.forEach((range, index) => {
    const start = Number(range.startLine);
    const count = Number(range.lineCount);
    for (let n = start; n < start + count; n++) {
      const first = n === start;
      rows.push(
        h(
          "tr",
          { class: `${index % 2 ? "odd" : "even"}${first ? " range-start" : ""}` },
          first
            ? h(
                "td",
                { class: "who", rowspan: String(count) },
                h(
                  "a",
                  {
                    href: href(`/documents/${blame.id}/history`, {
                      from: Number(range.version) - 1,
                      to: range.version,
                    }),
                  },
                  `v${range.version}`,
                ),
                " ",
                range.changedBy || h("span", { class: "muted" }, "unknown"),
                h("br"),
                time(range.timestamp),
              )
            : null,
          h("td", { class: "no" }, String(n)),
          h("td", { class: "text" }, lines[n - 1] ?? ""),
        ),
      );
    }
  });
  return h(
    "div",
    { class: "table-scroll" },
    h(
      "table",
      { class: "blame" },
      h("caption", {}, `Version ${blame.version}: each line with the version that last changed it`),
      h(
        "thead",
        { class: "visually-hidden" },
        h(
          "tr",
          {},
          h("th", { scope: "col" }, "Last changed in"),
          h("th", { scope: "col" }, "Line"),
          h("th", { scope: "col" }, "Text"),
        ),
      ),
      h("tbody", {}, rows),
    ),
  );
}
