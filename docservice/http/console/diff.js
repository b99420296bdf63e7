// A DiffDocumentVersions answer on screen: the field changes as a table, the content's hunks
// side by side (old left, new right) or unified, each line numbered as in `diff -u`.

import { clear, h } from "./dom.js";

const LAYOUT_KEY = "docservice.diffLayout";
const FIELD_NAMES = { is_deleted: "deleted" };

export function preferredLayout() {
  const chosen = localStorage.getItem(LAYOUT_KEY);
  if (chosen === "split" || chosen === "unified") return chosen;
  return matchMedia("(max-width: 700px)").matches ? "unified" : "split";
}

/** The diff; the layout toggle re-renders it in place. */
export function diffView(diff) {
  const holder = h("div", { class: "diff" });
  const render = (layout) => {
    clear(
      holder,
      layoutToggle(layout, (next) => {
        localStorage.setItem(LAYOUT_KEY, next);
        render(next);
        holder.querySelector(`input[value="${next}"]`).focus();
      }),
      fieldChanges(diff.fieldChanges),
      diff.hunks.length
        ? (layout === "split" ? splitTable : unifiedTable)(diff.hunks)
        : h("p", { class: "muted" }, "The content is the same."),
    );
  };
  if (!diff.fieldChanges.length && !diff.hunks.length) {
    holder.append(h("p", { class: "muted" }, "No differences."));
  } else {
    render(preferredLayout());
  }
  return holder;
}

function layoutToggle(layout, onChange) {
  const name = `layout-${Math.random().toString(36).slice(2, 8)}`;
  const option = (value, label) =>
    h(
      "label",
      {},
      h("input", {
        type: "radio",
        name,
        value,
        checked: layout === value,
        onchange: () => onChange(value),
      }),
      label,
    );
  return h(
    "fieldset",
    { class: "layout-toggle" },
    h("legend", { class: "visually-hidden" }, "Diff layout"),
    option("split", "Side by side"),
    option("unified", "Unified"),
  );
}

function fieldChanges(changes) {
  if (!changes.length) return null;
  return h(
    "table",
    { class: "field-changes" },
    h("caption", {}, "Fields"),
    h(
      "thead",
      {},
      h(
        "tr",
        {},
        h("th", { scope: "col" }, "Field"),
        h("th", { scope: "col" }, "Before"),
        h("th", { scope: "col" }, "After"),
      ),
    ),
    h(
      "tbody",
      {},
      changes.map((c) => {
        const list = c.added.length || c.removed.length;
        return h(
          "tr",
          {},
          h("th", { scope: "row" }, FIELD_NAMES[c.field] ?? c.field),
          h("td", { class: "del" }, list ? items(c.removed, "−") : value(c.oldValue)),
          h("td", { class: "ins" }, list ? items(c.added, "+") : value(c.newValue)),
        );
      }),
    ),
  );
}

function value(text) {
  return text === "" ? h("span", { class: "muted" }, "(empty)") : text;
}

function items(list, sign) {
  if (!list.length) return h("span", { class: "muted" }, "—");
  return h(
    "ul",
    { class: "tags" },
    list.map((item) => h("li", {}, `${sign} ${item}`)),
  );
}

/** Rows of [old number, old text, new number, new text, kind] for one hunk: a run of removed
 * lines faces the run of added lines after it. */
export function splitRows(hunk) {
  const rows = [];
  let oldNo = Number(hunk.oldStart);
  let newNo = Number(hunk.newStart);
  const lines = hunk.lines;
  for (let i = 0; i < lines.length; ) {
    if (lines[i].kind === "EQUAL") {
      rows.push({ old: [oldNo++, lines[i].text], new: [newNo++, lines[i].text], kind: "equal" });
      i++;
      continue;
    }
    const removed = [];
    const added = [];
    while (i < lines.length && lines[i].kind === "REMOVED") removed.push(lines[i++].text);
    while (i < lines.length && lines[i].kind === "ADDED") added.push(lines[i++].text);
    for (let k = 0; k < Math.max(removed.length, added.length); k++) {
      const before = k < removed.length ? [oldNo++, removed[k]] : null;
      const after = k < added.length ? [newNo++, added[k]] : null;
      // The same text on both sides: only the line's end changed (a newline at the end).
      const eol = before && after && before[1] === after[1];
      rows.push({ old: before, new: after, kind: "change", eol });
    }
  }
  return rows;
}

// Widths come from <col>: a fixed-layout table takes them from its first row, a hunk header.
function columns(kinds) {
  return h(
    "colgroup",
    {},
    kinds.map((kind) => h("col", { class: `col-${kind}` })),
  );
}

function hunkHeader(hunk, columns) {
  const text = `@@ -${hunk.oldStart},${hunk.oldLines} +${hunk.newStart},${hunk.newLines} @@`;
  return h("tr", { class: "hunk" }, h("td", { colspan: columns }, text));
}

function splitTable(hunks) {
  const rows = hunks.map(splitRows);
  const eol = rows.some((hunkRows) => hunkRows.some((row) => row.eol));
  const side = (cell, kind) =>
    cell
      ? [
          h("td", { class: `no ${kind}` }, String(cell[0])),
          h("td", { class: `text ${kind}` }, cell[1]),
        ]
      : [h("td", { class: "no empty" }), h("td", { class: "text empty" })];
  return h(
    "div",
    { class: "diff-scroll" },
    h(
      "table",
      { class: "diff-table split" },
      h("caption", { class: "visually-hidden" }, "Content, side by side"),
      columns(["no", "text", "no", "text"]),
      h(
        "thead",
        { class: "visually-hidden" },
        h(
          "tr",
          {},
          ["Old line", "Old text", "New line", "New text"].map((t) => h("th", { scope: "col" }, t)),
        ),
      ),
      hunks.map((hunk, index) =>
        h(
          "tbody",
          {},
          hunkHeader(hunk, 4),
          rows[index].map((row) =>
            h(
              "tr",
              {
                class: row.eol ? "eol" : null,
                title: row.eol ? "Only the line ending changed" : null,
              },
              side(row.old, row.kind === "equal" ? "" : "del"),
              side(row.new, row.kind === "equal" ? "" : "ins"),
            ),
          ),
        ),
      ),
    ),
    eol ? h("p", { class: "hint" }, "⏎ the same text: only the newline at its end changed.") : null,
  );
}

function unifiedTable(hunks) {
  const SIGNS = { EQUAL: " ", REMOVED: "−", ADDED: "+" };
  const CLASSES = { EQUAL: "", REMOVED: "del", ADDED: "ins" };
  return h(
    "div",
    { class: "diff-scroll" },
    h(
      "table",
      { class: "diff-table unified" },
      h("caption", { class: "visually-hidden" }, "Content, unified"),
      columns(["no", "no", "sign", "text"]),
      hunks.map((hunk) => {
        let oldNo = Number(hunk.oldStart);
        let newNo = Number(hunk.newStart);
        return h(
          "tbody",
          {},
          hunkHeader(hunk, 4),
          hunk.lines.map((line) => {
            const kind = CLASSES[line.kind];
            const oldCell = line.kind === "ADDED" ? "" : String(oldNo++);
            const newCell = line.kind === "REMOVED" ? "" : String(newNo++);
            return h(
              "tr",
              { class: kind || null },
              h("td", { class: "no" }, oldCell),
              h("td", { class: "no" }, newCell),
              h("td", { class: "sign", "aria-hidden": "true" }, SIGNS[line.kind]),
              h("td", { class: `text ${kind}` }, line.text),
            );
          }),
        );
      }),
    ),
  );
}
