// The documents page: search (SearchDocuments when there is a query, else ListDocuments),
// filters, sorting and pages. The filters live in the URL (#/?author=ann&sort=title), so a
// filtered list can be bookmarked and comes back with the browser's Back button; page tokens
// stay in memory (each is bound to its query). The page refreshes itself from the change feed.

import * as api from "./api.js";
import { activityPanel } from "./activity.js";
import { clear, h, showError } from "./dom.js";
import { onChange } from "./feed.js";
import { filterForm, filtersQuery, readFilters } from "./list-filters.js";
import { resultsTable } from "./list-table.js";
import { href, navigate } from "./router.js";
import { noteDeleted } from "./versions.js";

const REFRESH_DELAY_MS = 250;

export function mount(container, route) {
  document.title = "Documents · docservice";
  let state = readFilters(route.query);
  let tokens = [""]; // the token of each page seen so far; the last one is shown
  let loading = 0;
  let refreshTimer = null;
  const changed = new Set(); // ids the feed reported since the last refresh, to highlight

  const summary = h("div", { class: "summary", role: "status" });
  const results = h("div", { class: "results" });
  const previous = h("button", { type: "button", onclick: () => turn(-1) }, "← Previous");
  const next = h("button", { type: "button", onclick: () => turn(+1) }, "Next →");
  const pageLabel = h("span", { class: "page-label" });
  const form = filterForm(state, go);
  const activity = activityPanel();

  container.append(
    h(
      "div",
      { class: "list-layout" },
      h(
        "section",
        { class: "list-main", "aria-labelledby": "list-title" },
        h(
          "div",
          { class: "page-head" },
          h("h1", { id: "list-title" }, "Documents"),
          h("a", { class: "button primary", href: "#/new" }, "New document"),
        ),
        form.element,
        summary,
        results,
        h("nav", { class: "pager", "aria-label": "Pages" }, previous, pageLabel, next),
      ),
      activity.element,
    ),
  );

  async function load({ quiet = false } = {}) {
    const ticket = ++loading;
    const token = tokens.at(-1);
    if (!quiet) results.setAttribute("aria-busy", "true");
    try {
      const page = state.q
        ? await api.searchDocuments({ ...searchQuery(state), pageToken: token })
        : await api.listDocuments({ ...listQuery(state), pageToken: token });
      if (ticket !== loading) return;
      show(page);
    } catch (error) {
      if (ticket !== loading) return;
      showError(summary, error, form.element);
      clear(results);
      next.disabled = true;
    } finally {
      if (ticket === loading) results.removeAttribute("aria-busy");
    }
  }

  function show(page) {
    const rows = state.q
      ? page.results.map((r) => ({ document: r.document, snippets: r.snippets }))
      : page.documents.map((document) => ({ document, snippets: [] }));
    const sorting = state.q ? null : { sort: state.sort, onSort: sortBy };
    for (const { document } of rows) noteDeleted(document.id, document.isDeleted);
    clear(results, resultsTable(rows, sorting, changed));
    changed.clear();
    const number = tokens.length;
    const total = page.totalSize;
    let text;
    if (state.q) text = rows.length ? `Results for “${state.q}”, best first` : "No matches.";
    else if (total) text = `${total} document${total === 1 ? "" : "s"}`;
    else text = "No documents match. Create one with “New document”.";
    if (summary.textContent !== text) summary.textContent = text; // a live region
    const pages = state.q ? null : Math.max(1, Math.ceil(page.totalSize / state.size));
    pageLabel.textContent = pages ? `Page ${number} of ${pages}` : `Page ${number}`;
    previous.disabled = number === 1;
    next.disabled = !page.nextPageToken;
    next.dataset.token = page.nextPageToken;
  }

  function turn(step) {
    if (step > 0 && next.dataset.token) tokens.push(next.dataset.token);
    if (step < 0 && tokens.length > 1) tokens.pop();
    load();
  }

  function sortBy(sort) {
    go(filtersQuery({ ...state, sort }));
  }

  function go(query) {
    const target = href("/", query);
    if (target === href("/", filtersQuery(state))) {
      tokens = [""]; // the same filters again: reload from the first page
      load();
    } else {
      navigate(target);
    }
  }

  // Several changes in a burst make one refresh of the page on screen.
  const stop = onChange((event) => {
    if (event) changed.add(event.documentId);
    clearTimeout(refreshTimer);
    refreshTimer = setTimeout(() => load({ quiet: true }), REFRESH_DELAY_MS);
  });

  load();
  return {
    update(next) {
      state = readFilters(next.query);
      form.fill(state);
      tokens = [""];
      load();
    },
    unmount() {
      stop();
      activity.dispose();
      clearTimeout(refreshTimer);
    },
  };
}

/** An AIP-160 filter from the form. The typed filter comes first, unbracketed, so that the
 * positions in the server's error messages are its own (AND binds loosest, so this is safe). */
export function filterExpression(state) {
  const parts = [];
  if (state.filter) parts.push(state.filter);
  if (state.author) parts.push(`author = ${quote(state.author)}`);
  if (state.tag) parts.push(`tags:${quote(state.tag)}`);
  if (state.category) parts.push(`category = ${quote(state.category)}`);
  if (state.status) parts.push(`status = ${state.status}`);
  return parts.join(" AND ");
}

function quote(text) {
  return `"${text.replace(/[\\"]/g, (c) => `\\${c}`)}"`;
}

function listQuery(state) {
  return {
    filter: filterExpression(state),
    orderBy: state.sort,
    showDeleted: state.deleted,
    pageSize: state.size,
    view: "BASIC",
  };
}

function searchQuery(state) {
  return {
    query: state.q,
    filter: filterExpression(state),
    showDeleted: state.deleted,
    pageSize: state.size,
    view: "BASIC",
  };
}
