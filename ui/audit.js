// The Audit view (#/audit): who did what through the API, newest first (GET /api/audit): actions,
// sign-ins, and submissions made in this console. Tokens appear only as their short ids.
import { api } from "./api.js";
import { $, el, fmtMoment } from "./dom.js";
import { markFresh, markStale } from "./health.js";
import { go, link } from "./router.js";

const PAGE = 100;

function who(e) {
  const token = e.token ? ` ${e.token}` : "";
  return `${e.role}${token} · ${e.via}`;
}

function outcome(e) {
  const ok = e.status < 400;
  return el("span", { class: `badge ${ok ? "success" : "failed"}`, title: `HTTP ${e.status}` }, String(e.status));
}

function render(items) {
  $("#audit-empty").hidden = items.length > 0;
  $("#audit-table tbody").replaceChildren(...items.map((e) => el("tr", { "data-id": e.id },
    el("td", { "data-field": "at" }, fmtMoment(e.at)),
    el("td", { "data-field": "who", class: "mono" }, who(e)),
    el("td", { "data-field": "ip", class: "mono" }, e.ip),
    el("td", { "data-field": "action", class: "mono", title: `${e.method} ${e.path}` }, `${e.method} ${e.path}`),
    el("td", { "data-field": "status" }, outcome(e)),
    el("td", { "data-field": "detail", class: "mono col-result" }, e.detail))));
}

export async function showAudit(params) {
  const before = params.get("before") || "";
  const q = new URLSearchParams({ limit: String(PAGE) });
  if (before) q.set("before", before);
  let res;
  try { res = await api(`/api/audit?${q}`); }
  catch (err) { markStale($("#view-audit"), err.message); return; }
  render(res.items);
  $("#audit-older").disabled = !res.next_before;
  $("#audit-older").onclick = () => go(link("audit", "", { before: res.next_before }));
  $("#audit-newest").disabled = !before;
  $("#audit-newest").onclick = () => go(link("audit"));
  markFresh($("#view-audit"));
}
