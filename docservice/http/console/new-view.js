// The "New document" page. The form carries one request id (AIP-155) for its lifetime, so a
// submit repeated after a lost response creates the document once.

import * as api from "./api.js";
import { clear, field, h, parseTags, showError, statusSelect, toast } from "./dom.js";
import { href, navigate } from "./router.js";
import { actor } from "./settings.js";

export function mount(container) {
  document.title = "New document · docservice";
  const requestId = uuid();
  const content = h("textarea", { name: "content", rows: 12, spellcheck: "true" });
  const problems = h("div", { class: "problems" });
  const submit = h("button", { type: "submit", class: "primary" }, "Create");
  const form = h(
    "form",
    { class: "document-form", onsubmit: create },
    field("Title", h("input", { name: "title", required: true, dataset: { autofocus: "" } })),
    h(
      "div",
      { class: "field-row" },
      field("Author", h("input", { name: "author", required: true, value: actor() })),
      field("Category", h("input", { name: "category" })),
      field("Status", statusSelect("status", "DRAFT")),
    ),
    field("Tags", h("input", { name: "tags" }), "Comma-separated, e.g. ops, runbook"),
    field("Content", content, "Ctrl+Enter saves."),
    field(
      "Change message",
      h("input", { name: "changeMessage" }),
      "Optional, kept in the history.",
    ),
    problems,
    h("div", { class: "actions" }, submit, h("a", { class: "button", href: "#/" }, "Cancel")),
  );
  content.addEventListener("keydown", (e) => {
    if (e.key === "Enter" && (e.ctrlKey || e.metaKey)) form.requestSubmit();
  });
  container.append(
    h(
      "section",
      { class: "narrow", "aria-labelledby": "new-title" },
      h("h1", { id: "new-title" }, "New document"),
      form,
    ),
  );

  async function create(event) {
    event.preventDefault();
    const values = Object.fromEntries(new FormData(form));
    submit.disabled = true;
    clear(problems);
    try {
      const created = await api.createDocument({
        ...values,
        title: values.title.trim(),
        author: values.author.trim(),
        category: values.category.trim(),
        tags: parseTags(values.tags),
        requestId,
      });
      toast(`Created “${created.title}”.`, "success");
      navigate(href(`/documents/${created.id}`));
    } catch (error) {
      showError(problems, error, form);
      submit.disabled = false;
    }
  }
}

function uuid() {
  if (crypto.randomUUID) return crypto.randomUUID(); // only in secure contexts (https, localhost)
  const bytes = crypto.getRandomValues(new Uint8Array(16));
  bytes[6] = (bytes[6] & 0x0f) | 0x40;
  bytes[8] = (bytes[8] & 0x3f) | 0x80;
  const hex = [...bytes].map((b) => b.toString(16).padStart(2, "0")).join("");
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
}
