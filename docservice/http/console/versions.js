// A document's whole history, and the document itself even when deleted. GetDocument answers
// NOT_FOUND for a soft-deleted document (which the browser logs as a failed load), while its
// last version still holds its state (to show it and restore it): so the console remembers
// which documents it saw deleted (in the list, from the feed, by its own hand) and reads those
// from their history straight away.

import * as api from "./api.js";
import { onChange } from "./feed.js";

const PAGE = 100;
const MAX_PAGES = 20; // a history longer than 2 000 versions is shown in part (`truncated`)
const deleted = new Set();

export function noteDeleted(id, isDeleted) {
  if (isDeleted) deleted.add(id);
  else deleted.delete(id);
}

onChange((event) => {
  if (event) noteDeleted(event.documentId, event.kind === "DELETED");
});

/** Every version, oldest first (the API's only order), and whether the list stops early. */
export async function allVersions(id) {
  const versions = [];
  let pageToken = "";
  for (let page = 0; page < MAX_PAGES; page++) {
    const answer = await api.listVersions(id, { pageSize: PAGE, pageToken });
    versions.push(...answer.versions);
    pageToken = answer.nextPageToken;
    if (!pageToken) return { versions, truncated: false };
  }
  return { versions, truncated: true };
}

/** The document now: live, or as its last version left it when it is deleted. */
export async function loadDocument(id) {
  if (deleted.has(id)) {
    const latest = await lastVersion(id);
    if (latest) return latest;
  }
  try {
    return await api.getDocument(id);
  } catch (error) {
    if (error.status !== 404) throw error;
    const latest = await lastVersion(id).catch(() => null);
    if (!latest?.isDeleted) throw error;
    return latest;
  }
}

/** The current state from the history: its last version's document. */
export function currentOf({ versions, truncated }) {
  return truncated ? null : (versions.at(-1)?.document ?? null);
}

async function lastVersion(id) {
  const latest = currentOf(await allVersions(id));
  if (latest) noteDeleted(id, latest.isDeleted);
  return latest;
}
