// A save refused for a stale etag (412): someone changed the document after the user started
// editing. The panel shows what changed meanwhile (the diff from the version the edit started
// from to the current one), the user's own edit, and the fields both touched; the user then
// re-applies the edit on the current version, edits again from it, or discards the edit.

import * as api from "./api.js";
import { diffView } from "./diff.js";
import { clear, h, showError, time } from "./dom.js";
import { loadDocument } from "./versions.js";

/**
 * conflictPanel(base, edit, handlers) -> element, filled in once the current state is loaded.
 * handlers: onCurrent(current) once it is known, onReapply(current), onEditAgain(current),
 * onDiscard().
 */
export function conflictPanel(base, edit, handlers) {
  const body = h(
    "div",
    { class: "conflict-body" },
    h("p", { "aria-busy": "true" }, "Loading the current version…"),
  );
  const panel = h(
    "section",
    { class: "conflict", "aria-labelledby": "conflict-title" },
    h(
      "h2",
      { id: "conflict-title", tabindex: "-1" },
      "This document changed while you were editing",
    ),
    body,
  );
  load(base, edit, body, handlers);
  return panel;
}

async function load(base, edit, body, handlers) {
  try {
    const current = await loadDocument(base.id);
    if (current.isDeleted) {
      handlers.onCurrent(current);
      clear(
        body,
        h("p", {}, "It was deleted meanwhile: restore it first to apply your edit."),
        yourEdit(edit),
        actions([["Discard my edit", handlers.onDiscard, "danger"]]),
      );
      return;
    }
    const [diff, latest] = await Promise.all([
      api.diffVersions(base.id, base.version, current.version),
      api.getVersion(base.id, current.version),
    ]);
    show(body, { base, edit, current, diff, latest }, handlers);
  } catch (error) {
    showError(body, error);
  }
}

function show(body, { base, edit, current, diff, latest }, handlers) {
  const theirs = new Set(diff.fieldChanges.map((c) => c.field));
  if (diff.hunks.length) theirs.add("content");
  const both = Object.keys(edit.fields).filter((name) => theirs.has(name));
  const who = latest.changedBy || "someone";
  const since =
    Number(current.version) - Number(base.version) > 1
      ? `versions ${Number(base.version) + 1} to ${current.version}, the last by ${who}`
      : `version ${current.version} by ${who}`;
  handlers.onCurrent(current);
  clear(
    body,
    h(
      "p",
      {},
      `You started from version ${base.version}. Since then: ${since} (`,
      time(latest.timestamp),
      "). Your edit is not saved yet.",
    ),
    h("h3", {}, `What changed meanwhile (version ${base.version} → ${current.version})`),
    diffView(diff),
    yourEdit(edit),
    both.length
      ? h(
          "p",
          { class: "warning" },
          `You both changed: ${both.join(", ")}. Re-applying your edit replaces their ${
            both.length > 1 ? "values" : "value"
          } with yours.`,
        )
      : h("p", {}, "You changed different fields: re-applying keeps both changes."),
    actions([
      [
        `Re-apply my edit on version ${current.version}`,
        () => handlers.onReapply(current),
        "primary",
      ],
      ["Edit again from the current version", () => handlers.onEditAgain(current)],
      ["Discard my edit", handlers.onDiscard, "danger"],
    ]),
  );
  body.parentElement.querySelector("h2").focus();
}

function yourEdit(edit) {
  return [
    h("h3", {}, "Your edit"),
    h(
      "dl",
      { class: "your-edit" },
      Object.entries(edit.fields).map(([name, value]) => [
        h("dt", {}, name),
        h("dd", {}, name === "content" ? h("pre", { class: "content" }, value) : shown(value)),
      ]),
    ),
  ];
}

function shown(value) {
  if (Array.isArray(value)) return value.length ? value.join(", ") : "(none)";
  return value === "" ? "(empty)" : value;
}

/** The choices, as buttons; while one runs (a save), none can be pressed again. */
function actions(choices) {
  const buttons = choices.map(([label, run, kind]) =>
    h(
      "button",
      {
        type: "button",
        class: kind || null,
        onclick: async () => {
          for (const button of buttons) button.disabled = true;
          try {
            await run();
          } finally {
            for (const button of buttons) button.disabled = false;
          }
        },
      },
      label,
    ),
  );
  return h("div", { class: "actions" }, buttons);
}
