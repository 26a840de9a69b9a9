// Small DOM helpers the views share. Text always goes in as text nodes, never as HTML.
export const $ = (sel, root = document) => root.querySelector(sel);
export const $$ = (sel, root = document) => [...root.querySelectorAll(sel)];
export const el = (tag, attrs = {}, ...children) => {
  const n = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === false || v === null || v === undefined) continue;
    if (k === "class") n.className = v;
    else if (k.startsWith("on") && typeof v === "function") n.addEventListener(k.slice(2), v);
    else n.setAttribute(k, v === true ? "" : v);
  }
  for (const c of children.flat()) if (c !== null && c !== undefined && c !== false) n.append(c instanceof Node ? c : document.createTextNode(String(c)));
  return n;
};
// Every state and outcome has a colour (style.css); an unknown one still gets the neutral badge.
export const badge = (s, label = s) => el("span", { class: `badge ${s}`, "data-badge": s }, label);
export const json = (v) => JSON.stringify(v);
export const pretty = (v) => JSON.stringify(v, null, 2);
export const num = (n) => Number(n).toLocaleString("en-US");
export const now = () => Date.now() / 1000;

const pad3 = (t) => String(Math.floor((t % 1) * 1000)).padStart(3, "0");
// A local clock time with milliseconds; the date too when it is not today.
export const fmtTime = (t) => {
  if (!t) return "–";
  const d = new Date(t * 1000);
  const time = d.toLocaleTimeString([], { hour12: false }) + "." + pad3(t);
  return d.toDateString() === new Date().toDateString() ? time : `${d.toLocaleDateString()} ${time}`;
};
// A span of seconds the way people read it: 850 ms, 12.3 s, 4 min 10 s, 2 h 5 min, 3 d 4 h.
export const fmtSpan = (s) => {
  if (s === null || s === undefined || Number.isNaN(s)) return "–";
  const a = Math.abs(s);
  if (a < 1) return `${(a * 1000).toFixed(a < 0.01 ? 1 : 0)} ms`;
  if (a < 60) return `${a.toFixed(a < 10 ? 1 : 0)} s`;
  if (a < 3600) return `${Math.floor(a / 60)} min ${Math.round(a % 60)} s`;
  if (a < 86400) return `${Math.floor(a / 3600)} h ${Math.round((a % 3600) / 60)} min`;
  return `${Math.floor(a / 86400)} d ${Math.round((a % 86400) / 3600)} h`;
};
export const fmtDur = (a, b) => (a && b ? fmtSpan(b - a) : "–");
// "14:03:00.000 (in 12 s)" or "(3 min 2 s ago)".
export const fmtMoment = (t) => {
  if (!t) return "–";
  const delta = t - now();
  return `${fmtTime(t)} (${Math.abs(delta) < 0.5 ? "now" : delta > 0 ? `in ${fmtSpan(delta)}` : `${fmtSpan(delta)} ago`})`;
};
export const fmtRate = (r) => (r >= 100 ? r.toFixed(0) : r >= 10 ? r.toFixed(1) : r.toFixed(2));
