// The table of documents (and of search results, with their snippets). Below 700 px each row
// becomes a card (CSS), its cells labelled by data-label.

import { h, statusBadge, tagList, time } from "./dom.js";
import { href } from "./router.js";

// Sortable columns: each header toggles between its two orders, the first click giving `first`.
const SORTABLE = {
  title: { asc: "title", desc: "title desc", first: "title" },
  created: { asc: "create_time", desc: "create_time desc", first: "create_time desc" },
  updated: { asc: "update_time", desc: "update_time desc", first: "update_time desc" },
};

/** rows: [{document, snippets}]; sorting: {sort, onSort} or null (search: best first). */
export function resultsTable(rows, sorting, highlighted = new Set()) {
  if (!rows.length) return h("p", { class: "empty" }, "Nothing to show.");
  const head = h(
    "tr",
    {},
    header("Title", "title", sorting),
    h("th", { scope: "col" }, "Status"),
    h("th", { scope: "col" }, "Author"),
    h("th", { scope: "col" }, "Tags"),
    h("th", { scope: "col" }, "Category"),
    header("Updated", "updated", sorting),
    header("Created", "created", sorting),
    h("th", { scope: "col", class: "num" }, "Version"),
  );
  return h(
    "table",
    { class: "documents" },
    h("caption", { class: "visually-hidden" }, "Documents"),
    h("thead", {}, head),
    h(
      "tbody",
      {},
      rows.map((row) => documentRow(row, highlighted.has(row.document.id))),
    ),
  );
}

function header(label, column, sorting) {
  if (!sorting) return h("th", { scope: "col" }, label);
  const orders = SORTABLE[column];
  const direction =
    sorting.sort === orders.asc ? "ascending" : sorting.sort === orders.desc ? "descending" : null;
  const nextSort = direction
    ? direction === "ascending"
      ? orders.desc
      : orders.asc
    : orders.first;
  const arrow = direction === "ascending" ? " ↑" : direction === "descending" ? " ↓" : "";
  return h(
    "th",
    { scope: "col", "aria-sort": direction ?? "none" },
    h(
      "button",
      {
        type: "button",
        class: "sort",
        title: `Sort by ${label.toLowerCase()}`,
        onclick: () => sorting.onSort(nextSort),
      },
      label,
      h("span", { "aria-hidden": "true" }, arrow),
    ),
  );
}

function documentRow({ document: d, snippets }, highlighted) {
  const title = snippets.find((s) => s.field === "title");
  return h(
    "tr",
    { class: highlighted ? "flash" : null, dataset: { id: d.id } },
    h(
      "td",
      { class: "title-cell", "data-label": "Title" },
      h("a", { href: href(`/documents/${d.id}`) }, title ? marked(title) : d.title || "(untitled)"),
      snippets
        .filter((s) => s.field === "content")
        .map((s) => h("p", { class: "snippet" }, marked(s))),
    ),
    h("td", { "data-label": "Status" }, statusBadge(d.status, d.isDeleted)),
    h("td", { "data-label": "Author" }, d.author),
    h("td", { "data-label": "Tags" }, tagList(d.tags)),
    h("td", { "data-label": "Category" }, d.category || "—"),
    h("td", { "data-label": "Updated" }, time(d.updatedAt)),
    h("td", { "data-label": "Created" }, time(d.createdAt)),
    h("td", { "data-label": "Version", class: "num" }, d.version),
  );
}

/** A snippet's text with its matches marked; matches are code-point ranges, not UTF-16 ones. */
export function marked({ text, matches }) {
  const chars = Array.from(text);
  const parts = [];
  let at = 0;
  for (const { start, end } of matches) {
    if (start < at) continue;
    parts.push(chars.slice(at, start).join(""), h("mark", {}, chars.slice(start, end).join("")));
    at = end;
  }
  parts.push(chars.slice(at).join(""));
  return parts;
}
