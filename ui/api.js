// The UI's only way to the server: taskq's public HTTP API.
//
// Signing in trades the token for an HttpOnly, SameSite=Strict session cookie (POST /api/login):
// the page never keeps the token, and nothing puts it in a URL. The event stream rides on the
// same cookie.
export class ApiError extends Error {
  constructor(status, detail, { network = false } = {}) {
    super(typeof detail === "string" ? detail : JSON.stringify(detail));
    this.status = status;
    this.network = network;  // the API itself did not answer
  }
}

const listeners = { unauthorized: [], reachable: [] };
// "unauthorized" (a 401), "reachable" (true / false: whether the API answered at all).
export function on(kind, fn) { listeners[kind].push(fn); }
const emit = (kind, ...args) => listeners[kind].forEach((fn) => fn(...args));

// A proxy in front of the API answers these when the API behind it is gone.
const GATEWAY = new Set([502, 504]);

export async function api(path, { method = "GET", body, signal } = {}) {
  const headers = { Accept: "application/json" };
  if (body !== undefined) headers["Content-Type"] = "application/json";
  let res;
  try {
    res = await fetch(path, { method, headers, credentials: "same-origin", signal,
                              body: body === undefined ? undefined : JSON.stringify(body) });
  } catch (err) {
    if (err.name === "AbortError") throw err;
    emit("reachable", false);
    throw new ApiError(0, "the taskq API is unreachable", { network: true });
  }
  emit("reachable", !GATEWAY.has(res.status));
  let data = null;
  try { data = await res.json(); } catch { /* empty body */ }
  if (res.status === 401) emit("unauthorized");
  if (!res.ok) throw new ApiError(res.status, (data && data.detail) || res.statusText || `HTTP ${res.status}`, { network: GATEWAY.has(res.status) });
  return data;
}

export const session = () => api("/api/session");
export const login = (token) => api("/api/login", { method: "POST", body: { token } });
export const logout = () => api("/api/logout", { method: "POST" });

// Live changes. `onResync` runs whenever the stream (re)subscribes after a gap — a reconnect or a
// Redis outage — so the caller reloads what it shows and misses nothing. Returns a stop function.
export function events(onEvent, onState, onResync = () => {}) {
  let lastId = null;
  let source = null;
  let subscribed = false;
  let stopped = false;
  let retry = null;
  const open = () => {
    if (stopped) return;
    const q = lastId ? `?${new URLSearchParams({ since: lastId })}` : "";
    source = new EventSource(`/api/events${q}`, { withCredentials: true });
    const handle = (e) => { lastId = e.lastEventId || lastId; onEvent(e.type, JSON.parse(e.data)); };
    for (const kind of ["task", "worker", "workflow", "progress"]) source.addEventListener(kind, handle);
    source.addEventListener("ready", () => {
      onState(true);
      if (subscribed) onResync();
      subscribed = true;
    });
    source.addEventListener("error", (e) => { if (e.data) onState(false); });  // Redis down, stream kept
    source.onerror = () => {
      onState(false);
      source.close();
      if (!stopped) retry = setTimeout(open, 2000);
    };
  };
  open();
  return () => { stopped = true; clearTimeout(retry); if (source) source.close(); onState(false); };
}
