// A modal confirmation (native <dialog>: focus moves into it, Escape cancels, Enter confirms),
// optionally asking for a change message for the history.

import { field, h } from "./dom.js";

/** Resolves to {message} when confirmed, null when cancelled. */
export function confirmDialog({ title, text, confirm, danger = false, message = null }) {
  const input = message === null ? null : h("input", { name: "message", value: message });
  const dialog = h(
    "dialog",
    { class: "dialog", "aria-labelledby": "confirm-title" },
    h(
      "form",
      { method: "dialog" },
      h("h2", { id: "confirm-title" }, title),
      h("p", {}, text),
      input ? field("Change message (optional)", input) : null,
      h(
        "div",
        { class: "actions" },
        h("button", { type: "submit", value: "ok", class: danger ? "danger" : "primary" }, confirm),
        h("button", { type: "submit", value: "cancel", autofocus: true }, "Cancel"),
      ),
    ),
  );
  const opener = document.activeElement;
  document.body.append(dialog);
  dialog.showModal();
  return new Promise((resolve) => {
    dialog.addEventListener("close", () => {
      dialog.remove();
      opener?.focus?.();
      resolve(dialog.returnValue === "ok" ? { message: input?.value.trim() ?? "" } : null);
    });
  });
}
