// The documents page's search and filter form, and the filters' URL form (#/?q=...&sort=...).

import { field, h, statusSelect } from "./dom.js";

export const SORTS = [
  ["update_time desc", "Updated: newest"],
  ["update_time", "Updated: oldest"],
  ["create_time desc", "Created: newest"],
  ["create_time", "Created: oldest"],
  ["title", "Title: A–Z"],
  ["title desc", "Title: Z–A"],
];
const DEFAULT_SORT = SORTS[0][0];
const SIZES = [10, 20, 50, 100];
const DEFAULT_SIZE = 20;

/** The filters in a URL query; unknown or missing values fall back to the defaults. */
export function readFilters(query) {
  const sort = query.get("sort");
  const size = Number(query.get("size"));
  return {
    q: query.get("q")?.trim() ?? "",
    author: query.get("author") ?? "",
    tag: query.get("tag") ?? "",
    category: query.get("category") ?? "",
    status: query.get("status") ?? "",
    filter: query.get("filter") ?? "",
    deleted: query.get("deleted") === "1",
    sort: SORTS.some(([value]) => value === sort) ? sort : DEFAULT_SORT,
    size: SIZES.includes(size) ? size : DEFAULT_SIZE,
  };
}

/** For href(): defaults left out, so the plain list is plain "#/". */
export function filtersQuery(state) {
  return {
    ...state,
    deleted: state.deleted ? "1" : "",
    sort: state.sort === DEFAULT_SORT ? "" : state.sort,
    size: state.size === DEFAULT_SIZE ? "" : state.size,
  };
}

/** The form; onApply(filters) on submit (Enter in any field), on a select's change, on Clear. */
export function filterForm(initial, onApply) {
  const inputs = {
    query: h("input", {
      type: "search",
      name: "query",
      placeholder: 'words, "a phrase", -without, prefix*',
    }),
    author: h("input", { name: "author" }),
    tag: h("input", { name: "tag" }),
    category: h("input", { name: "category" }),
    status: statusSelect("status", "", { any: true }),
    filter: h("input", {
      name: "filter",
      placeholder: 'e.g. version > 3 OR title = "Plan"',
      spellcheck: "false",
    }),
    deleted: h("input", { type: "checkbox", name: "deleted" }),
    sort: h(
      "select",
      { name: "sort" },
      SORTS.map(([value, label]) => h("option", { value }, label)),
    ),
    size: h(
      "select",
      { name: "size" },
      SIZES.map((n) => h("option", { value: String(n) }, `${n} per page`)),
    ),
  };
  const read = () => ({
    q: inputs.query.value.trim(),
    author: inputs.author.value.trim(),
    tag: inputs.tag.value.trim(),
    category: inputs.category.value.trim(),
    status: inputs.status.value,
    filter: inputs.filter.value.trim(),
    deleted: inputs.deleted.checked,
    sort: inputs.sort.value,
    size: Number(inputs.size.value),
  });
  const apply = () => onApply(filtersQuery(read()));
  const advanced = h(
    "details",
    { class: "advanced" },
    h("summary", {}, "Advanced filter"),
    field("Filter expression (AIP-160)", inputs.filter, "Combined with the fields above by AND."),
  );
  const element = h(
    "form",
    {
      class: "filters",
      role: "search",
      "aria-label": "Search and filter documents",
      onsubmit: (e) => {
        e.preventDefault();
        apply();
      },
    },
    h(
      "div",
      { class: "search-row" },
      field("Search", inputs.query),
      field("Sort", inputs.sort),
      field("Page size", inputs.size),
    ),
    h(
      "div",
      { class: "filter-row" },
      field("Author", inputs.author),
      field("Tag", inputs.tag),
      field("Category", inputs.category),
      field("Status", inputs.status),
    ),
    advanced,
    h(
      "div",
      { class: "actions" },
      h("label", { class: "check" }, inputs.deleted, "Show deleted"),
      h("button", { type: "submit", class: "primary" }, "Apply"),
      h("button", { type: "button", onclick: () => onApply({}) }, "Clear"),
    ),
  );
  for (const name of ["status", "sort", "size", "deleted"]) {
    inputs[name].addEventListener("change", apply);
  }

  function fill(state) {
    inputs.query.value = state.q;
    for (const name of ["author", "tag", "category", "status", "filter", "sort"]) {
      inputs[name].value = state[name];
    }
    inputs.size.value = String(state.size);
    inputs.deleted.checked = state.deleted;
    inputs.sort.disabled = Boolean(state.q); // search results come best first
    advanced.open ||= Boolean(state.filter);
  }
  fill(initial);
  return { element, fill };
}
