// Recent activity: the changes the live feed reported since the console was opened, newest
// first (the feed starts from "now"; the full history of a document is on its History page).

import { clear, h, time } from "./dom.js";
import { onChange } from "./feed.js";
import { href } from "./router.js";

const KEEP = 30;
const recent = [];
const panels = new Set();

const VERBS = {
  CREATED: "created",
  UPDATED: "updated",
  DELETED: "deleted",
  RESTORED: "restored",
  REVERTED: "reverted",
};

export function recordActivity() {
  onChange((event) => {
    if (!event) return;
    recent.unshift(event);
    recent.length = Math.min(recent.length, KEEP);
    for (const render of panels) render();
  });
}

/** The panel, following the feed until dispose(). */
export function activityPanel() {
  const list = h("ol", { class: "activity-list" });
  const panel = h(
    "aside",
    { class: "activity", "aria-labelledby": "activity-title" },
    h("h2", { id: "activity-title" }, "Live activity"),
    list,
  );
  const render = () =>
    clear(
      list,
      recent.length
        ? recent.map(item)
        : h("li", { class: "muted" }, "Changes made from now on appear here."),
    );
  panels.add(render);
  render();
  return { element: panel, dispose: () => panels.delete(render) };
}

function item(event) {
  const title = event.document?.title || event.documentId.slice(0, 8);
  return h(
    "li",
    {},
    h("a", { href: href(`/documents/${event.documentId}`) }, title),
    " ",
    VERBS[event.kind] ?? event.kind.toLowerCase(),
    event.changedBy ? ` by ${event.changedBy}` : "",
    h("span", { class: "meta" }, ` · v${event.version} · `, time(event.timestamp)),
  );
}
