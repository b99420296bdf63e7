// Who the console acts as: the name sent as `x-actor` (recorded as `changed_by` when the server
// runs without auth) and, when auth is on, a bearer token. The name is kept in localStorage; the
// token only for this tab (sessionStorage), so it does not outlive the session.

import { field, h } from "./dom.js";

const ACTOR_KEY = "docservice.actor";
const TOKEN_KEY = "docservice.token";

export function actor() {
  return localStorage.getItem(ACTOR_KEY) ?? "";
}

export function token() {
  return sessionStorage.getItem(TOKEN_KEY) ?? "";
}

function save(name, bearer) {
  if (name) localStorage.setItem(ACTOR_KEY, name);
  else localStorage.removeItem(ACTOR_KEY);
  if (bearer) sessionStorage.setItem(TOKEN_KEY, bearer);
  else sessionStorage.removeItem(TOKEN_KEY);
  showActor();
}

export function showActor() {
  document.getElementById("actor-name").textContent = actor() || "nobody";
}

/** The settings dialog (modal, Escape closes it, Enter saves). */
export function openSettings() {
  // gRPC metadata is printable ASCII; the server records the header as it reads it.
  const name = h("input", {
    name: "actor",
    value: actor(),
    autocomplete: "username",
    maxlength: "256",
    pattern: "[ -~]*",
    title: "Printable ASCII characters only",
  });
  const bearer = h("input", { name: "token", type: "password", value: token() });
  const dialog = h(
    "dialog",
    { class: "dialog", "aria-labelledby": "settings-title" },
    h(
      "form",
      { method: "dialog" },
      h("h2", { id: "settings-title" }, "Settings"),
      field("Your name", name, "Sent as x-actor (printable ASCII): the history records it."),
      field("Bearer token", bearer, "Only when the server requires auth; kept for this tab only."),
      h(
        "div",
        { class: "actions" },
        h("button", { type: "submit", value: "save", class: "primary" }, "Save"),
        h("button", { type: "submit", value: "cancel", formnovalidate: true }, "Cancel"),
      ),
    ),
  );
  dialog.addEventListener("close", () => {
    if (dialog.returnValue === "save") save(name.value.trim(), bearer.value.trim());
    dialog.remove();
    document.getElementById("settings-button").focus();
  });
  document.body.append(dialog);
  dialog.showModal();
}
