// The Scheduled view (#/scheduled): delayed tasks and retries with their due times, soonest first
// (GET /api/scheduled), with a countdown and Cancel.
import { api } from "./api.js";
import { $, badge, el, fmtMoment, json, num } from "./dom.js";
import { markFresh, markStale } from "./health.js";
import { go, link } from "./router.js";
import { session, throttle } from "./shared.js";

const PAGE = 50;
let cursor = "";
let items = [];

function why(t) {
  if (t.status === "retrying") return [badge("retrying", `retry, attempt ${t.attempts + 1}`)];
  if (t.waiting_for) return [badge("queued", `held: ${t.waiting_for}`)];
  if (t.due_at <= Date.now() / 1000 + 0.5) return [badge("queued", "due now")];
  return [badge("delayed", "delayed")];
}

async function cancel(id) {
  try { await api(`/api/tasks/${encodeURIComponent(id)}/cancel`, { method: "POST" }); $("#scheduled-error").textContent = ""; }
  catch (err) { $("#scheduled-error").textContent = `${id}: ${err.message}`; }
  loadScheduled();
}

function render() {
  $("#scheduled-empty").hidden = items.length > 0;
  $("#scheduled-table tbody").replaceChildren(...items.map((t) => {
    const tr = el("tr", { tabindex: "0", "data-id": t.id, "data-status": t.status },
      el("td", { "data-field": "due" }, fmtMoment(t.due_at)), el("td", { "data-field": "why" }, why(t)), el("td", {}, t.task),
      el("td", { class: "mono col-id" }, el("a", { href: link("tasks", t.id), tabindex: "-1", title: t.id }, t.id)),
      el("td", { class: "mono col-args" }, json(t.args)), el("td", { class: "mono col-result" }, t.error || ""),
      el("td", { class: "needs-write" }, session.canWrite ? el("button", { class: "secondary small", onclick: (e) => { e.stopPropagation(); cancel(t.id); } }, "Cancel") : ""));
    tr.addEventListener("click", (e) => { if (!e.target.closest("a, button")) go(link("tasks", t.id)); });
    tr.addEventListener("keydown", (e) => { if (e.key === "Enter" && !e.target.closest("button")) go(link("tasks", t.id)); });
    return tr;
  }));
}

export async function loadScheduled() {
  const q = new URLSearchParams({ limit: String(PAGE) });
  if (cursor) q.set("cursor", cursor);
  let res;
  try { res = await api(`/api/scheduled?${q}`); }
  catch (err) { markStale($("#view-scheduled"), err.message); return; }
  items = res.items;
  render();
  $("#scheduled-total").textContent = `${num(res.later)} due later${res.total > res.later ? ` · ${num(res.total - res.later)} due now` : ""}`;
  $("#scheduled-next").disabled = !res.next_cursor;
  $("#scheduled-next").onclick = () => go(link("scheduled", "", { cursor: res.next_cursor }));
  $("#scheduled-first").disabled = !cursor;
  markFresh($("#view-scheduled"));
}

export function showScheduled(params) {
  cursor = params.get("cursor") || "";
  return loadScheduled();
}

export const onTaskEvent = throttle(() => { if (!$("#view-scheduled").hidden) loadScheduled(); }, 1000);

export function initScheduled() {
  $("#scheduled-first").addEventListener("click", () => go(link("scheduled")));
  // The countdowns move every second; the list itself every few.
  setInterval(() => {
    if ($("#view-scheduled").hidden) return;
    for (const tr of document.querySelectorAll("#scheduled-table tbody tr")) {
      const t = items.find((x) => x.id === tr.dataset.id);
      if (t) tr.querySelector("[data-field=due]").textContent = fmtMoment(t.due_at);
    }
  }, 1000);
  setInterval(() => { if (!$("#view-scheduled").hidden && !document.hidden) loadScheduled(); }, 5000);
}
