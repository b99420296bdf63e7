// The head of a document's pages: where it sits, its title and state, and the tabs between its
// content, its history and its blame.

import { h, statusBadge } from "./dom.js";
import { href } from "./router.js";

const TABS = [
  ["document", "Document", ""],
  ["history", "History", "/history"],
  ["blame", "Blame", "/blame"],
];

export function documentHeader(doc, active) {
  return h(
    "header",
    { class: "doc-head" },
    h(
      "nav",
      { class: "crumbs", "aria-label": "Breadcrumb" },
      h("a", { href: "#/" }, "Documents"),
      h("span", { "aria-hidden": "true" }, " / "),
    ),
    h(
      "div",
      { class: "doc-title" },
      h("h1", {}, doc.title || "(untitled)"),
      statusBadge(doc.status, doc.isDeleted),
      h("span", { class: "badge version" }, `v${doc.version}`),
    ),
    h(
      "nav",
      { class: "tabs", "aria-label": "Document pages" },
      TABS.map(([name, label, suffix]) =>
        h(
          "a",
          {
            href: href(`/documents/${doc.id}${suffix}`),
            "aria-current": name === active ? "page" : null,
          },
          label,
        ),
      ),
    ),
  );
}

/** A notice that the document changed while it was open (from the live feed). */
export function changeNotice(event, extra = "") {
  const who = event.changedBy ? ` by ${event.changedBy}` : "";
  const verb = event.kind.toLowerCase();
  return h(
    "p",
    { class: "notice", role: "status" },
    `Version ${event.version}: ${verb}${who} just now.${extra ? ` ${extra}` : ""}`,
  );
}
