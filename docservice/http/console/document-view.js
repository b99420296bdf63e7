// One document: its fields and content; edit (with the etag conflict flow of conflict.js),
// delete and restore. It follows the live feed: a change made elsewhere refreshes the page when
// the user is reading, and only raises a notice while they are editing (their save will then
// show the conflict).

import * as api from "./api.js";
import { conflictPanel } from "./conflict.js";
import { confirmDialog } from "./dialogs.js";
import { changeNotice, documentHeader } from "./doc-header.js";
import { clear, formatTime, h, showError, tagList, time, toast } from "./dom.js";
import { editorForm } from "./editor.js";
import { onChange } from "./feed.js";
import { loadDocument, noteDeleted } from "./versions.js";

export function mount(container, route) {
  const id = route.params.id;
  const head = h("div");
  const notices = h("div", { class: "notices" });
  const body = h("div", { class: "doc-body" });
  container.append(h("article", { class: "document-page" }, head, notices, body));
  let doc = null;
  let mode = "view"; // "view" | "edit" | "conflict"
  let writing = false; // a write of ours is in flight: its own event is not news
  let missed = null; // an event that came during that write

  async function refresh(event = null) {
    try {
      doc = await loadDocument(id);
    } catch (error) {
      clear(head, h("h1", {}, "Document"));
      showError(body, error);
      return;
    }
    if (event) clear(notices, changeNotice(event));
    render();
  }

  function render() {
    clear(head, documentHeader(doc, "document"));
    document.title = `${doc.title || "(untitled)"} · docservice`;
    if (mode === "view") clear(body, reading());
  }

  function reading() {
    const actions = doc.isDeleted
      ? [h("button", { type: "button", class: "primary", onclick: restore }, "Restore")]
      : [
          h("button", { type: "button", class: "primary", onclick: () => edit(doc) }, "Edit"),
          h("button", { type: "button", class: "danger", onclick: remove }, "Delete"),
        ];
    const comments = doc.comments.length
      ? [
          h("h2", {}, "Comments"),
          h(
            "ul",
            { class: "comments" },
            doc.comments.map((c) => h("li", {}, c)),
          ),
        ]
      : null;
    return [
      h("div", { class: "actions doc-actions" }, actions),
      h(
        "div",
        { class: "doc-grid" },
        h(
          "section",
          { class: "doc-content", "aria-label": "Content" },
          doc.content
            ? h("pre", { class: "content" }, doc.content)
            : h("p", { class: "muted" }, "No content."),
          comments,
        ),
        h("aside", { class: "doc-meta", "aria-label": "Details" }, h("dl", {}, metadata(doc))),
      ),
    ];
  }

  function edit(base, values = {}, message = "") {
    mode = "edit";
    clear(notices);
    const editor = editorForm(base, {
      values,
      message,
      onSubmit: (change) => save(base, change, editor),
      onCancel: () => {
        mode = "view";
        render();
      },
    });
    clear(body, editor.element);
    editor.focus();
  }

  async function save(base, change, editor = null) {
    writing = true;
    try {
      doc = await api.updateDocument(id, base.etag, change.fields, change.message);
      mode = "view";
      clear(notices);
      render();
      toast(`Saved version ${doc.version}.`, "success");
    } catch (error) {
      if (!error.stale) {
        if (editor) editor.showError(error);
        else toast(error.message, "error");
        return;
      }
      mode = "conflict";
      clear(notices);
      clear(
        body,
        conflictPanel(base, change, {
          onCurrent: (current) => {
            doc = current;
            render();
          },
          onReapply: (current) => save(current, change),
          onEditAgain: (current) => edit(current, change.fields, change.message),
          onDiscard: () => {
            mode = "view";
            refresh();
          },
        }),
      );
    } finally {
      writing = false;
      if (missed) news(missed);
    }
  }

  async function remove() {
    const answer = await confirmDialog({
      title: "Delete this document?",
      text: "It leaves the list; its history stays, and it can be restored.",
      confirm: "Delete",
      danger: true,
      message: "",
    });
    if (!answer) return;
    await write(async () => {
      await api.deleteDocument(id, doc.etag, answer.message);
      noteDeleted(id, true);
    }, "Deleted.");
  }

  async function restore() {
    await write(async () => {
      await api.restoreDocument(id, doc.etag);
      noteDeleted(id, false);
    }, "Restored.");
  }

  /** A delete or restore: on success or on a stale etag, show the document as it is now. */
  async function write(call, done) {
    writing = true;
    try {
      await call();
      toast(done, "success");
    } catch (error) {
      toast(error.stale ? "It changed meanwhile: here it is now." : error.message, "error");
    } finally {
      writing = false;
      missed = null;
      await refresh();
    }
  }

  function news(event) {
    missed = null;
    if (writing) {
      missed = event;
      return;
    }
    if (doc && Number(event.version) <= Number(doc.version)) return; // ours, or already shown
    if (mode === "view") {
      refresh(event);
    } else {
      const extra = mode === "edit" ? "Saving will show you what changed." : "";
      clear(notices, changeNotice(event, extra));
    }
  }

  const stop = onChange((event) => {
    if (event === null) refresh();
    else if (event.documentId === id) news(event);
  });
  body.append(h("p", { "aria-busy": "true" }, "Loading…"));
  refresh();
  return { unmount: stop };
}

function metadata(doc) {
  const rows = [
    ["Author", doc.author],
    ["Category", doc.category || h("span", { class: "muted" }, "—")],
    ["Tags", tagList(doc.tags)],
    ["Version", doc.version],
    ["Updated", [time(doc.updatedAt), h("small", {}, formatTime(doc.updatedAt))]],
    ["Created", [time(doc.createdAt), h("small", {}, formatTime(doc.createdAt))]],
    doc.isDeleted ? ["Deleted", time(doc.deletedAt)] : null,
    ["ID", h("code", {}, doc.id)],
    ["ETag", h("code", {}, doc.etag)],
  ];
  return rows.filter(Boolean).map(([label, value]) => [h("dt", {}, label), h("dd", {}, value)]);
}
