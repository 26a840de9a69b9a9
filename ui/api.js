// The UI's only way to the server: taskq's public HTTP API.
const TOKEN_KEY = "taskq.token";

export class ApiError extends Error {
  constructor(status, detail) {
    super(typeof detail === "string" ? detail : JSON.stringify(detail));
    this.status = status;
  }
}

export function token() { return sessionStorage.getItem(TOKEN_KEY) || ""; }
export function setToken(t) { sessionStorage.setItem(TOKEN_KEY, t); }

let onUnauthorized = () => {};
export function whenUnauthorized(fn) { onUnauthorized = fn; }

export async function api(path, { method = "GET", body } = {}) {
  const headers = { Accept: "application/json" };
  if (body !== undefined) headers["Content-Type"] = "application/json";
  if (token()) headers.Authorization = `Bearer ${token()}`;
  const res = await fetch(path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
  let data = null;
  try { data = await res.json(); } catch { /* empty body */ }
  if (res.status === 401) onUnauthorized();
  if (!res.ok) throw new ApiError(res.status, (data && data.detail) || res.statusText);
  return data;
}

// Live changes. `onResync` runs whenever the stream (re)subscribes after a gap — a reconnect or a
// Redis outage — so the caller reloads what it shows and misses nothing.
export function events(onEvent, onState, onResync = () => {}) {
  let lastId = null;
  let source = null;
  let subscribed = false;
  const open = () => {
    const q = new URLSearchParams();
    if (token()) q.set("token", token());
    if (lastId) q.set("since", lastId);
    source = new EventSource(`/api/events?${q}`);
    const handle = (e) => { lastId = e.lastEventId || lastId; onEvent(e.type, JSON.parse(e.data)); };
    source.addEventListener("task", handle);
    source.addEventListener("worker", handle);
    source.addEventListener("ready", () => {
      onState(true);
      if (subscribed) onResync();
      subscribed = true;
    });
    source.addEventListener("error", (e) => { if (e.data) onState(false); });  // Redis down, stream kept
    source.onerror = () => { onState(false); source.close(); setTimeout(open, 2000); };
  };
  open();
  return () => source && source.close();
}
