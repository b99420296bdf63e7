// The edit form of a document. What it submits is an edit: the fields that differ from the
// version the user started from (`base`), sent with that version's etag and named in the
// update mask, so a field the user did not touch is never written back (and an emptied one is
// cleared).

import { clear, clearFieldErrors, field, h, parseTags, showError, statusSelect } from "./dom.js";

export const EDITABLE = ["title", "content", "tags", "status", "category"];

/** {fields: {title?, ...}, message}: what the form changes relative to `base`. */
export function readEdit(form, base) {
  const data = new FormData(form);
  const values = {
    title: data.get("title").trim(),
    content: data.get("content"),
    tags: parseTags(data.get("tags")),
    status: data.get("status"),
    category: data.get("category").trim(),
  };
  const fields = {};
  for (const name of EDITABLE) {
    if (!same(values[name], base[name])) fields[name] = values[name];
  }
  return { fields, message: data.get("changeMessage").trim() };
}

function same(a, b) {
  return Array.isArray(a) ? a.length === b.length && a.every((x, i) => x === b[i]) : a === b;
}

/**
 * The form, filled with `base` and then `values` (an edit being re-done on a newer version).
 * onSubmit(edit) runs the save; it may call showError() on the returned handle.
 */
export function editorForm(base, { values = {}, message = "", onSubmit, onCancel }) {
  const start = { ...base, ...values };
  const content = h("textarea", {
    name: "content",
    rows: Math.min(30, Math.max(10, start.content.split("\n").length + 2)),
    value: start.content,
  });
  const problems = h("div", { class: "problems" });
  const save = h("button", { type: "submit", class: "primary" }, "Save");
  const form = h(
    "form",
    { class: "document-form editor", "aria-label": "Edit document" },
    field("Title", h("input", { name: "title", value: start.title, required: true })),
    h(
      "div",
      { class: "field-row" },
      field("Status", statusSelect("status", start.status)),
      field("Category", h("input", { name: "category", value: start.category })),
      field("Tags", h("input", { name: "tags", value: start.tags.join(", ") }), "Comma-separated"),
    ),
    field("Content", content, "Ctrl+Enter saves."),
    field("Change message", h("input", { name: "changeMessage", value: message }), "Optional."),
    problems,
    h(
      "div",
      { class: "actions" },
      save,
      h("button", { type: "button", onclick: onCancel }, "Cancel"),
      h("span", { class: "muted" }, `Editing version ${base.version}`),
    ),
  );
  content.addEventListener("keydown", (e) => {
    if (e.key === "Enter" && (e.ctrlKey || e.metaKey)) form.requestSubmit();
  });
  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    const edit = readEdit(form, base);
    clearFieldErrors(form);
    if (!Object.keys(edit.fields).length) {
      clear(problems, h("p", { class: "notice" }, "Nothing changed: there is nothing to save."));
      return;
    }
    clear(problems);
    save.disabled = true;
    try {
      await onSubmit(edit);
    } finally {
      save.disabled = false;
    }
  });
  return {
    element: form,
    focus: () => form.elements.namedItem("title").focus(),
    showError: (error) => showError(problems, error, form),
    isDirty: () => Object.keys(readEdit(form, base).fields).length > 0,
  };
}
