// The live change feed: one EventSource on /v1/events:watch for the whole console, shared by
// the views through onChange(). EventSource reconnects by itself and resumes with
// Last-Event-ID (each message's id is a resume token), so a dropped connection loses no event.
// When the server refuses the stream outright (the watcher cap, auth) EventSource gives up;
// we then open a new one from "now" after a pause and tell the views to reload (`resync`),
// since they may have missed events meanwhile.

import { watchUrl } from "./api.js";

const listeners = new Set();
const FIRST_RETRY_MS = 2000;
const LAST_RETRY_MS = 60000;
const REFUSED =
  "The server refused the change feed; retrying. With auth on, browsers can follow it only if " +
  "WatchDocuments is public (AUTH_PUBLIC_METHODS): EventSource cannot send a token.";
let retryMs = FIRST_RETRY_MS;

/** fn(event) for each change (a DocumentEvent with its document), fn(null) on a resync. */
export function onChange(fn) {
  listeners.add(fn);
  return () => listeners.delete(fn);
}

function emit(event) {
  for (const fn of listeners) fn(event);
}

function setState(state, text, title = "") {
  const status = document.getElementById("live-status");
  status.title = title;
  if (status.dataset.state === state) return; // a live region: say only what changed
  status.dataset.state = state;
  status.textContent = text;
}

export function startFeed({ resync = false } = {}) {
  const source = new EventSource(watchUrl({ includeDocument: true }));
  source.addEventListener("open", () => {
    setState("live", "Live");
    retryMs = FIRST_RETRY_MS;
    if (resync) emit(null);
    resync = false; // EventSource's own reconnections resume where they stopped
  });
  source.addEventListener("heartbeat", () => setState("live", "Live"));
  source.addEventListener("message", (message) => {
    const { event } = JSON.parse(message.data);
    if (event) emit(event);
  });
  source.addEventListener("error", () => {
    if (source.readyState !== EventSource.CLOSED) {
      setState("connecting", "Reconnecting…");
      return;
    }
    setState("off", "Live updates off", REFUSED);
    setTimeout(() => startFeed({ resync: true }), retryMs);
    retryMs = Math.min(2 * retryMs, LAST_RETRY_MS);
  });
}
