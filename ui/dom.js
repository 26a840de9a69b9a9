// Small DOM helpers the views share. Text always goes in as text nodes, never as HTML.
export const $ = (sel) => document.querySelector(sel);
export const el = (tag, attrs = {}, ...children) => {
  const n = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === "class") n.className = v; else if (k.startsWith("on")) n.addEventListener(k.slice(2), v); else n.setAttribute(k, v);
  }
  for (const c of children) n.append(c instanceof Node ? c : document.createTextNode(c ?? ""));
  return n;
};
export const badge = (s) => el("span", { class: `badge ${s}` }, s);
export const json = (v) => JSON.stringify(v);
export const fmtTime = (t) => (t ? new Date(t * 1000).toLocaleTimeString([], { hour12: false }) + "." + String(Math.floor((t % 1) * 1000)).padStart(3, "0") : "–");
export const fmtDur = (a, b) => (a && b ? `${((b - a) * 1000).toFixed(b - a < 1 ? 1 : 0)} ms` : "–");
