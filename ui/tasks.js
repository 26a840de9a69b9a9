// The Tasks view: filters, totals and pages that live in the URL (#/tasks?status=dead&task=add
// &cursor=…), the visible page kept live, and bulk actions on the whole filter.
import { api } from "./api.js";
import { $, $$, el, fmtDur, fmtTime, json, num } from "./dom.js";
import { markFresh, markStale } from "./health.js";
import { go, link } from "./router.js";
import { confirmAction, session, statusBadges, throttle, workers } from "./shared.js";

const FILTERS = ["status", "task", "task_prefix", "worker", "range", "since", "until", "q"];
const RANGES = { "15m": 900, "1h": 3600, "24h": 86400, "7d": 604800 };
const PAGE = 25;
const RETRYABLE = ["failed", "dead", "cancelled"], CANCELLABLE = ["queued", "retrying"];
const FINISHED = ["success", "failed", "dead", "cancelled"];

let params = new URLSearchParams();
let shownKey = null;  // the filter the rows on screen were loaded for
let shownIds = new Set();
let seq = 0;
let namesAt = 0;

const section = () => $("#view-tasks");
const filterKey = (p) => FILTERS.map((k) => `${k}=${p.get(k) || ""}`).join("&");

// The API's filter for the URL's: a relative range ("last hour") becomes `since` as of now.
function apiFilter(p) {
  const f = {};
  for (const k of ["status", "task", "task_prefix", "worker", "q"]) if (p.get(k)) f[k] = p.get(k);
  const range = p.get("range");
  if (RANGES[range]) f.since = Math.floor(Date.now() / 1000 - RANGES[range]);
  else if (range === "custom" || p.get("since") || p.get("until")) {
    if (p.get("since")) f.since = Number(p.get("since"));
    if (p.get("until")) f.until = Number(p.get("until"));
  }
  return f;
}

const toLocalInput = (t) => {
  if (!t) return "";
  const d = new Date(Number(t) * 1000);
  return new Date(d.getTime() - d.getTimezoneOffset() * 60000).toISOString().slice(0, 19);
};
const fromLocalInput = (v) => (v ? String(Math.floor(new Date(v).getTime() / 1000)) : "");

function syncInputs(p) {
  $("#filter-status").value = p.get("status") || "";
  const task = p.get("task") || "";
  const sel = $("#filter-task");
  if (task && ![...sel.options].some((o) => o.value === task)) sel.append(el("option", { value: task }, task));
  sel.value = task;
  for (const [id, k] of [["#filter-prefix", "task_prefix"], ["#filter-worker", "worker"], ["#filter-q", "q"]]) {
    if (document.activeElement !== $(id)) $(id).value = p.get(k) || "";
  }
  const custom = p.get("range") === "custom" || (!p.get("range") && (p.get("since") || p.get("until")));
  $("#filter-range").value = custom ? "custom" : p.get("range") || "";
  for (const n of $$(".custom-range")) n.hidden = !custom;
  $("#filter-since").value = toLocalInput(p.get("since"));
  $("#filter-until").value = toLocalInput(p.get("until"));
}

// The URL from the filter inputs (back to the first page: a cursor belongs to its filter).
function fromInputs({ replace }) {
  const range = $("#filter-range").value;
  const p = {
    status: $("#filter-status").value, task: $("#filter-task").value, task_prefix: $("#filter-prefix").value.trim(),
    worker: $("#filter-worker").value.trim(), q: $("#filter-q").value.trim(), range,
  };
  if (range === "custom") { p.since = fromLocalInput($("#filter-since").value); p.until = fromLocalInput($("#filter-until").value); }
  go(link("tasks", "", p), { replace });
}

function row(t) {
  const open = () => go(link("tasks", t.id));
  const tr = el("tr", { tabindex: "0", "data-id": t.id, "data-status": t.status },
    el("td", { "data-field": "status" }, statusBadges(t)), el("td", {}, t.task),
    el("td", { class: "mono col-id" }, el("a", { href: link("tasks", t.id), tabindex: "-1", title: t.id }, t.id)),
    el("td", { class: "mono col-args", title: json(t.args) }, json(t.args) + (t.kwargs && Object.keys(t.kwargs).length ? " " + json(t.kwargs) : "")),
    el("td", { class: "mono col-result" }, t.status === "success" ? json(t.result) : (t.error || "")),
    el("td", {}, String(t.attempts)), el("td", { class: "col-worker" }, t.worker || ""),
    el("td", { class: "col-created" }, fmtTime(t.created_at)), el("td", { class: "col-ran" }, fmtDur(t.started_at, t.finished_at)));
  tr.addEventListener("click", (e) => { if (!e.target.closest("a")) open(); });
  tr.addEventListener("keydown", (e) => { if (e.key === "Enter") { e.preventDefault(); open(); } });
  return tr;
}

function setPager(res) {
  const cursor = params.get("cursor");
  $("#page-first").disabled = !cursor;
  $("#page-prev").disabled = !res || !res.prev_cursor;
  $("#page-next").disabled = !res || !res.next_cursor;
  $("#page-prev").onclick = () => res && res.prev_cursor && go(pageLink(res.prev_cursor));
  $("#page-next").onclick = () => res && res.next_cursor && go(pageLink(res.next_cursor));
}
function pageLink(cursor) { const p = new URLSearchParams(params); if (cursor) p.set("cursor", cursor); else p.delete("cursor"); return link("tasks", "", p); }

export async function loadTasks() {
  const mine = ++seq;
  const key = filterKey(params);
  const q = new URLSearchParams({ ...apiFilter(params), limit: String(PAGE) });
  if (params.get("cursor")) q.set("cursor", params.get("cursor"));
  let res;
  try {
    res = await api(`/api/tasks?${q}`);
  } catch (err) {
    if (mine !== seq) return;
    if (key !== shownKey) {
      // The rows on screen are another filter's: never show them under this one.
      $("#task-table tbody").replaceChildren();
      $("#tasks-total").textContent = "";
      shownKey = key;
      shownIds = new Set();
      setPager(null);
    }
    markStale(section(), err.message);
    return;
  }
  if (mine !== seq) return;  // a newer filter's answer is on its way
  const focused = document.activeElement && document.activeElement.closest && document.activeElement.closest("#task-table tr[data-id]");
  const focusId = focused && focused.dataset.id;
  shownKey = key;
  shownIds = new Set(res.items.map((t) => t.id));
  $("#task-table tbody").replaceChildren(...res.items.map(row));
  if (focusId) { const again = $(`#task-table tr[data-id="${CSS.escape(focusId)}"]`); if (again) again.focus(); }
  $("#tasks-empty").hidden = res.items.length > 0;
  $("#tasks-empty").textContent = res.next_cursor ? "No match among the tasks examined here: try older →" : "No task matches.";
  const total = res.total ?? null;
  $("#tasks-total").textContent = total === null ? "" : `${num(total)}${res.total_exact === false ? "+" : ""} task${total === 1 && res.total_exact !== false ? "" : "s"}`;
  $("#tasks-total").title = res.total_exact === false ? "at least this many: counting stopped after examining 10,000 tasks" : "";
  setPager(res);
  markFresh(section());
  updateBulk();
}

async function loadNames() {
  if (Date.now() - namesAt < 30000) return;
  namesAt = Date.now();
  let names;
  try { names = (await api("/api/tasks/names")).names; }
  catch { try { names = (await api("/api/task-types")).map((t) => ({ name: t.name })); } catch { namesAt = 0; return; } }
  const sel = $("#filter-task");
  const was = params.get("task") || "";
  sel.replaceChildren(el("option", { value: "" }, "any"),
    ...names.map((n) => el("option", { value: n.name }, n.total !== undefined ? `${n.name} (${num(n.total)})` : n.name)));
  if (was && !names.some((n) => n.name === was)) sel.append(el("option", { value: was }, was));
  sel.value = was;
}

function updateWorkerNames() {
  $("#worker-names").replaceChildren(...[...workers.keys()].sort().map((id) => el("option", { value: id })));
}

// --- bulk actions ----------------------------------------------------------
function describe(action) {
  const f = apiFilter(params);
  const parts = [];
  const status = f.status || { retry: "failed or dead", cancel: "queued or retrying", purge: "finished" }[action];
  parts.push(`state ${status}`);
  if (f.task) parts.push(`task ${f.task}`);
  if (f.task_prefix) parts.push(`task name starting with “${f.task_prefix}”`);
  if (f.worker) parts.push(`last run on ${f.worker}`);
  if (f.since || f.until) parts.push(`created ${f.since ? `from ${fmtTime(f.since)}` : ""}${f.until ? ` until ${fmtTime(f.until)}` : ""}`.trim());
  if (f.q) parts.push(`matching “${f.q}”`);
  return parts.join(" · ");
}

function updateBulk() {
  const s = params.get("status") || "";
  $("#bulk-retry").hidden = !!s && !RETRYABLE.includes(s);
  $("#bulk-cancel").hidden = !!s && !CANCELLABLE.includes(s);
  $("#bulk-purge").hidden = !!s && !FINISHED.includes(s);
}

const WHAT = {
  retry: { title: "Retry every matching task", verb: "Retry", note: "Each is queued again with a fresh retry budget (recorded as “manual retry”)." },
  cancel: { title: "Cancel every matching task", verb: "Cancel", note: "Queued, delayed and retrying tasks are cancelled; running ones are not matched." },
  purge: { title: "Purge finished tasks", verb: "Purge", note: "Their records are deleted for good." },
};

async function bulk(action) {
  const w = WHAT[action];
  let extra = null, olderThan = () => undefined;
  if (action === "purge") {
    extra = el("div", { class: "with-unit" },
      el("label", { for: "purge-age" }, "Finished more than"),
      el("input", { id: "purge-age", inputmode: "decimal", value: "7", size: "5" }),
      el("select", { id: "purge-unit", "aria-label": "unit" }, el("option", { value: "60" }, "minutes"), el("option", { value: "3600" }, "hours"),
        el("option", { value: "86400", selected: true }, "days")),
      el("span", {}, "ago"));
    olderThan = () => {
      const v = Number($("#purge-age").value);
      if (!Number.isFinite(v) || v < 0 || $("#purge-age").value.trim() === "") throw new Error("the age must be a number ≥ 0");
      return v * Number($("#purge-unit").value);
    };
  }
  const body = (dryRun) => {
    const b = { ...apiFilter(params), dry_run: dryRun };
    if (action === "purge") b.older_than = olderThan();
    return b;
  };
  const call = (dryRun) => api(`/api/tasks/bulk/${action}`, { method: "POST", body: body(dryRun) });
  const result = await confirmAction({
    title: w.title, describe: `${describe(action)}. ${w.note}`, extra,
    count: () => call(true), okLabel: (n) => `${w.verb} ${num(n)} task${n === 1 ? "" : "s"}`, run: () => call(false),
  });
  if (!result) return;
  $("#bulk-result").textContent = `${w.verb}: ${num(result.done)} done${result.skipped ? `, ${num(result.skipped)} skipped (they changed meanwhile)` : ""}${result.capped ? "; more may match: run it again" : ""}.`;
  loadTasks();
}

// --- view ------------------------------------------------------------------
export function showTasks(p) {
  params = p;
  syncInputs(p);
  updateBulk();
  updateWorkerNames();
  loadNames();
  return loadTasks();
}

const live = throttle(() => { if (!section().hidden && !document.hidden) loadTasks(); }, 1000);
export function onTaskEvent(data) {
  // The first page shows new tasks as they come; any page shows its own tasks' changes.
  if (!params.get("cursor") || shownIds.has(data.id)) live();
}

export function initTasks() {
  $("#filters").addEventListener("submit", (e) => e.preventDefault());
  for (const id of ["#filter-status", "#filter-task", "#filter-range", "#filter-since", "#filter-until"]) {
    $(id).addEventListener("change", () => fromInputs({ replace: false }));
  }
  let typing = null;
  for (const id of ["#filter-prefix", "#filter-worker", "#filter-q"]) {
    $(id).addEventListener("input", () => { clearTimeout(typing); typing = setTimeout(() => fromInputs({ replace: true }), 300); });
    $(id).addEventListener("change", () => { clearTimeout(typing); fromInputs({ replace: true }); });
  }
  $("#filter-range").addEventListener("change", () => { for (const n of $$(".custom-range")) n.hidden = $("#filter-range").value !== "custom"; });
  $("#filters-clear").addEventListener("click", () => go(link("tasks")));
  $("#page-first").addEventListener("click", () => go(pageLink(null)));
  $("#open-form").addEventListener("submit", (e) => {
    e.preventDefault();
    const id = $("#open-id").value.trim();
    if (id) go(link("tasks", id));
  });
  $("#bulk-retry").addEventListener("click", () => session.canWrite && bulk("retry"));
  $("#bulk-cancel").addEventListener("click", () => session.canWrite && bulk("cancel"));
  $("#bulk-purge").addEventListener("click", () => session.canWrite && bulk("purge"));
}
