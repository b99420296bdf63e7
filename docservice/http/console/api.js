// The HTTP/JSON API (see /openapi.json): one function per method, JSON in and out, errors as
// ApiError. URLs are relative to the console's own, so the console works behind a path prefix.

import { actor, token } from "./settings.js";

export class ApiError extends Error {
  constructor(status, body) {
    super(body?.message || `HTTP ${status}`);
    this.status = status; // 0: the server could not be reached
    this.code = body?.code;
    this.details = body?.details ?? [];
  }

  get fieldViolations() {
    return this.details
      .filter((d) => d["@type"]?.endsWith("/google.rpc.BadRequest"))
      .flatMap((d) => d.fieldViolations ?? []);
  }

  get stale() {
    return this.status === 412;
  }
}

export function url(path, query = {}) {
  const target = new URL(path, document.baseURI);
  for (const [key, value] of Object.entries(query)) {
    if (value !== undefined && value !== null && value !== "" && value !== false) {
      target.searchParams.set(key, String(value));
    }
  }
  return target;
}

async function call(method, path, { query, body, etag } = {}) {
  const headers = { Accept: "application/json" };
  if (body !== undefined) headers["Content-Type"] = "application/json";
  if (etag) headers["If-Match"] = etag;
  if (actor()) headers["x-actor"] = actor();
  if (token()) headers.Authorization = `Bearer ${token()}`;
  let response;
  try {
    response = await fetch(url(path, query), {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
    });
  } catch {
    throw new ApiError(0, { message: "The server cannot be reached." });
  }
  const text = await response.text();
  let data = null;
  try {
    data = text ? JSON.parse(text) : null;
  } catch {
    data = { message: `HTTP ${response.status}: ${text.slice(0, 200)}` };
  }
  if (!response.ok) throw new ApiError(response.status, data);
  return data;
}

const doc = (id) => `v1/documents/${encodeURIComponent(id)}`;

export const listDocuments = (query) => call("GET", "v1/documents", { query });
export const searchDocuments = (query) => call("GET", "v1/documents:search", { query });
export const createDocument = (fields) => call("POST", "v1/documents", { body: fields });
export const getDocument = (id) => call("GET", doc(id));

/** Sets exactly `fields` (named in updateMask, so an emptied field is cleared too). */
export function updateDocument(id, etag, fields, changeMessage = "") {
  const body = { ...fields, updateMask: Object.keys(fields).join(","), changeMessage };
  return call("PATCH", doc(id), { body, etag });
}

export const deleteDocument = (id, etag, changeMessage = "") =>
  call("DELETE", doc(id), { etag, query: { changeMessage } });
export const restoreDocument = (id, etag, changeMessage = "") =>
  call("POST", `${doc(id)}:restore`, { etag, body: { changeMessage } });
export const revertDocument = (id, etag, version, changeMessage = "") =>
  call("POST", `${doc(id)}:revert`, { etag, body: { version: String(version), changeMessage } });

export const listVersions = (id, query) => call("GET", `${doc(id)}/versions`, { query });
export const getVersion = (id, version) => call("GET", `${doc(id)}/versions/${version}`);
export const diffVersions = (id, fromVersion, toVersion) =>
  call("GET", `${doc(id)}:diff`, { query: { fromVersion, toVersion } });
export const blame = (id, version) => call("GET", `${doc(id)}:blame`, { query: { version } });

export const watchUrl = (query) => url("v1/events:watch", query);
