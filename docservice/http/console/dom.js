// Building the page: elements from data (never HTML strings, so a document's text cannot become
// markup), dates, toasts, and an API error shown on the form it came from.

/** An element: h("a", {href: "#/", class: "x", onclick: fn}, "text", child, [more]). */
export function h(tag, props = {}, ...children) {
  const element = document.createElement(tag);
  for (const [key, value] of Object.entries(props)) {
    if (value === undefined || value === null || value === false) continue;
    if (key.startsWith("on")) element.addEventListener(key.slice(2), value);
    else if (key === "dataset") Object.assign(element.dataset, value);
    else if (key === "value") element.value = value;
    else if (key in element && typeof value !== "string") element[key] = value;
    else element.setAttribute(key, value === true ? "" : value);
  }
  element.append(...flat(children));
  return element;
}

function flat(children) {
  return children.flat(Infinity).filter((c) => c !== null && c !== undefined && c !== false);
}

export function clear(element, ...children) {
  element.replaceChildren(...flat(children));
  return element;
}

const absolute = new Intl.DateTimeFormat(undefined, { dateStyle: "medium", timeStyle: "medium" });
const relative = new Intl.RelativeTimeFormat(undefined, { numeric: "auto" });
const UNITS = [
  ["year", 31536000],
  ["month", 2592000],
  ["day", 86400],
  ["hour", 3600],
  ["minute", 60],
  ["second", 1],
];

/** "3 minutes ago", with the exact time as its tooltip and machine-readable datetime. */
export function time(iso) {
  if (!iso) return h("span", { class: "muted" }, "—");
  const date = new Date(iso);
  return h("time", { datetime: iso, title: absolute.format(date) }, ago(date));
}

/** Brings every relative time in the page up to date (the console stays open for hours). */
export function refreshTimes() {
  for (const element of document.querySelectorAll("time[datetime]")) {
    element.textContent = ago(new Date(element.dateTime));
  }
}

export function ago(date) {
  const seconds = (date.getTime() - Date.now()) / 1000;
  for (const [unit, size] of UNITS) {
    if (Math.abs(seconds) >= size || unit === "second") {
      return relative.format(Math.round(seconds / size), unit);
    }
  }
  return "";
}

export function formatTime(iso) {
  return iso ? absolute.format(new Date(iso)) : "—";
}

export function statusBadge(status, deleted = false) {
  return [
    h("span", { class: `badge status-${status.toLowerCase()}` }, status.toLowerCase()),
    deleted ? h("span", { class: "badge deleted" }, "deleted") : null,
  ];
}

export function tagList(tags) {
  if (!tags.length) return h("span", { class: "muted" }, "—");
  return h(
    "ul",
    { class: "tags" },
    tags.map((tag) => h("li", {}, tag)),
  );
}

/** A short-lived message in the page's live region. */
export function toast(message, kind = "info") {
  const region = document.getElementById("toasts");
  const item = h("p", { class: `toast ${kind}` }, message);
  region.append(item);
  setTimeout(() => item.remove(), 5000);
}

/** An error for the user: the server's message, and each field violation on its input. */
export function showError(where, error, form = null) {
  if (form) clearFieldErrors(form);
  const unplaced = [];
  for (const violation of error.fieldViolations ?? []) {
    const input = form?.elements.namedItem(inputName(violation.field));
    if (input instanceof HTMLElement) {
      input.setAttribute("aria-invalid", "true");
      const note = h(
        "span",
        { class: "field-error", id: `${input.id}-error` },
        violation.description,
      );
      input.setAttribute("aria-describedby", note.id);
      input.after(note);
    } else {
      unplaced.push(`${violation.field}: ${violation.description}`);
    }
  }
  const text = unplaced.length ? unplaced.join("; ") : error.message;
  clear(where, h("p", { class: "error", role: "alert" }, text));
}

/** The form input a violation names: "change_message" and "tags[2]" are changeMessage, tags. */
function inputName(field) {
  return field.replace(/\[\d+\]$/, "").replace(/_([a-z])/g, (_, c) => c.toUpperCase());
}

export function clearFieldErrors(form) {
  for (const note of form.querySelectorAll(".field-error")) note.remove();
  for (const input of form.querySelectorAll("[aria-invalid]")) {
    input.removeAttribute("aria-invalid");
    input.removeAttribute("aria-describedby");
  }
}

/** A labelled control: <label for=id>text</label><control id=id>. */
export function field(label, control, hint = null) {
  control.id ||= `f-${control.name}-${Math.random().toString(36).slice(2, 8)}`;
  return h(
    "div",
    { class: "field" },
    h("label", { for: control.id }, label),
    control,
    hint ? h("small", { class: "hint" }, hint) : null,
  );
}

/** "a, b ,a,," → ["a", "b"]: tags typed as one comma-separated line. */
export function parseTags(text) {
  return [
    ...new Set(
      text
        .split(",")
        .map((t) => t.trim())
        .filter(Boolean),
    ),
  ];
}

export const STATUSES = ["DRAFT", "PUBLISHED", "ARCHIVED"];

export function statusSelect(name, value, { any = false } = {}) {
  const options = any ? [h("option", { value: "" }, "Any")] : [];
  for (const status of STATUSES) {
    options.push(h("option", { value: status, selected: status === value }, status.toLowerCase()));
  }
  return h("select", { name }, options);
}
