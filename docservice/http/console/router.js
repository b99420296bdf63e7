// Hash routing (#/documents/ID/history?from=1&to=3): the server serves only static files.
// A view is mount(container, route) -> {update?(route), unmount?()}; a change of the query
// string alone goes to the mounted view's update(), so its form keeps focus and state.

const routes = [];
let current = null; // {view, key, instance}

/** pattern: "/documents/:id/history"; view: a module with mount(). */
export function route(pattern, view) {
  const names = [];
  const source = pattern.replace(/:(\w+)/g, (_, name) => {
    names.push(name);
    return "([^/]+)";
  });
  routes.push({ regex: new RegExp(`^${source}$`), names, view });
}

export function parse(hash) {
  const [path, search = ""] = hash.replace(/^#/, "").split("?", 2);
  return { path: path || "/", query: new URLSearchParams(search) };
}

export function href(path, query = {}) {
  const search = new URLSearchParams();
  for (const [key, value] of Object.entries(query)) {
    if (value !== undefined && value !== null && value !== "" && value !== false) {
      search.set(key, String(value));
    }
  }
  const text = search.toString();
  return `#${path}${text ? `?${text}` : ""}`;
}

/** Go to a route; `replace` keeps the history entry (a filter change, not a new page). */
export function navigate(target, { replace = false } = {}) {
  if (location.hash === target) return;
  if (replace) {
    history.replaceState(null, "", target);
    dispatch();
  } else {
    location.hash = target;
  }
}

export function dispatch(container = document.getElementById("main"), fallback) {
  const { path, query } = parse(location.hash);
  for (const { regex, names, view } of routes) {
    const match = regex.exec(path);
    if (!match) continue;
    const params = Object.fromEntries(names.map((n, i) => [n, decodeURIComponent(match[i + 1])]));
    const key = `${path}`;
    const request = { params, query };
    if (current && current.view === view && current.key === key && current.instance.update) {
      current.instance.update(request);
      return;
    }
    show(container, view, key, request);
    return;
  }
  show(container, fallback, path, { params: {}, query });
}

function show(container, view, key, request) {
  current?.instance.unmount?.();
  container.replaceChildren();
  current = { view, key, instance: view.mount(container, request) ?? {} };
  const first = container.querySelector("[data-autofocus]") ?? container;
  first.focus({ preventScroll: true });
  window.scrollTo(0, 0);
}

export function start(fallback) {
  const run = () => dispatch(undefined, fallback);
  window.addEventListener("hashchange", run);
  run();
}
