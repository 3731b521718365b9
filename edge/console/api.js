// api.js - the console's only way to the server. The access token lives in
// this module's closure: never in localStorage, sessionStorage, a cookie or a
// URL, so a reload signs out and nothing outlives the tab.
let token = null;

export function signedIn() {
  return token !== null;
}

export function signOut() {
  token = null;
}

export class ApiError extends Error {
  constructor(status, body) {
    super(body && body.error ? body.error.message : `HTTP ${status}`);
    this.status = status;
    this.code = body && body.error ? body.error.code : "";
  }
}

async function call(method, path, body) {
  const headers = { Accept: "application/json" };
  if (token !== null) headers.Authorization = `Bearer ${token}`;
  if (body !== undefined) headers["Content-Type"] = "application/json";
  const res = await fetch(path, {
    method, headers, body: body === undefined ? undefined : JSON.stringify(body),
    credentials: "omit", cache: "no-store", referrerPolicy: "no-referrer",
  });
  const text = await res.text();
  const json = text ? JSON.parse(text) : null;
  if (!res.ok) throw new ApiError(res.status, json);
  return json;
}

export async function signIn(username, password) {
  const pair = await call("POST", "/api/v1/auth/login", { username, password });
  token = pair.accessToken;
}

function query(params) {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) if (v !== undefined && v !== "") q.set(k, v);
  const s = q.toString();
  return s ? `?${s}` : "";
}

export const admin = {
  sagas: (filter) => call("GET", `/api/v1/admin/sagas${query(filter)}`),
  overview: () => call("GET", "/api/v1/admin/overview"),
  saga: (id, page = {}) => call("GET", `/api/v1/admin/sagas/${encodeURIComponent(id)}${query(page)}`),
  order: (id) => call("GET", `/api/v1/admin/orders/${encodeURIComponent(id)}`),
  deadLetters: (filter) => call("GET", `/api/v1/admin/dead-letters${query(filter)}`),
  deadLetter: (seq) => call("GET", `/api/v1/admin/dead-letters/${encodeURIComponent(seq)}`),
};
