// Every view, filter and page is a URL: "#/tasks?status=dead&task=add&cursor=…", "#/tasks/<id>",
// "#/workers", "#/workflows/<id>". The older "#tasks", "#workers", "#workflows/<id>", "#charts"
// still open what they named (they are replaced by the new form).
export const VIEWS = ["overview", "tasks", "scheduled", "dead", "workers", "schedules", "workflows", "audit", "submit"];
const LEGACY = { charts: "overview" };

export function parse(hash = location.hash) {
  const h = hash.replace(/^#/, "");
  if (!h.startsWith("/")) {
    if (!h) return { redirect: "#/overview" };
    const [view, ...rest] = h.split("/");
    const name = LEGACY[view] || view;
    return { redirect: `#/${VIEWS.includes(name) ? name : "overview"}${rest.length ? "/" + rest.join("/") : ""}` };
  }
  const qAt = h.indexOf("?");
  const path = qAt < 0 ? h.slice(1) : h.slice(1, qAt);
  const [view, ...rest] = path.split("/");
  if (!VIEWS.includes(view)) return { redirect: "#/overview" };
  return { view, id: decodeURIComponent(rest.join("/")), params: new URLSearchParams(qAt < 0 ? "" : h.slice(qAt + 1)) };
}

// The hash of a view, an item of it and query parameters (empty ones left out).
export function link(view, id = "", params = {}) {
  let h = `#/${view}`;
  if (id) h += `/${encodeURIComponent(id)}`;
  const entries = params instanceof URLSearchParams ? [...params] : Object.entries(params);
  const q = new URLSearchParams(entries.filter(([, v]) => v !== "" && v !== null && v !== undefined)).toString();
  return q ? `${h}?${q}` : h;
}

// Go to a hash: a new history entry, or (replace) in place — a filter being typed is one entry.
export function go(hash, { replace = false } = {}) {
  if (hash === location.hash) return;
  if (replace) {
    history.replaceState(history.state, "", hash);
    window.dispatchEvent(new HashChangeEvent("hashchange"));
  } else {
    location.hash = hash;
  }
}
