import { api, ApiError, events, setToken, token, whenUnauthorized } from "./api.js";
import { barChart, lineChart } from "./charts.js";
import { $, badge, el, fmtDur, fmtTime, json } from "./dom.js";
import { loadSchedules } from "./schedules.js";
import { showWorkflows } from "./workflows.js";

// The server's own state sets (GET /api/meta); this default only covers the first moments.
let TERMINAL = new Set(["success", "failed", "dead", "cancelled"]);
async function loadMeta() {
  const meta = await api("/api/meta");
  TERMINAL = new Set(meta.terminal);
}

// --- token ---------------------------------------------------------------
whenUnauthorized(() => { const d = $("#token-dialog"); if (!d.open) d.showModal(); });
$("#token-form").addEventListener("submit", async (e) => {
  e.preventDefault();
  setToken($("#token-input").value.trim());
  try { await api("/api/stats"); $("#token-dialog").close(); refreshAll(); }
  catch (err) { $("#token-error").textContent = err.message; }
});

// --- views -----------------------------------------------------------------
function showView() {
  // A view's own path follows a slash: #workflows/<id> opens that workflow.
  const [view, ...rest] = (location.hash || "#tasks").slice(1).split("/");
  for (const s of document.querySelectorAll(".view")) s.hidden = s.id !== `view-${view}`;
  for (const a of document.querySelectorAll("nav a")) a.classList.toggle("active", a.dataset.view === view);
  if (view === "workers") loadWorkers();
  if (view === "charts") loadCharts();
  if (view === "schedules") loadSchedules();
  if (view === "workflows") showWorkflows(rest.join("/"));
}
window.addEventListener("hashchange", showView);

// --- submit ----------------------------------------------------------------
let taskTypes = [];
// Positional inputs from the structured parameters the workers advertise (keyword-only ones go
// in the keyword-arguments box).
function params(taskType) {
  return (taskType.params || []).filter((p) => ["positional_only", "positional_or_keyword", "var_positional"].includes(p.kind))
    .map((p) => ({ name: p.name, variadic: p.kind === "var_positional", optional: !p.required && p.kind !== "var_positional" }));
}
function parseValue(text) { try { return JSON.parse(text); } catch { return text; } }

function renderArgInputs() {
  const t = taskTypes.find((x) => x.name === $("#task-type").value);
  const box = $("#arg-inputs");
  box.replaceChildren();
  $("#task-signature").textContent = t ? t.signature : "";
  const ps = t ? params(t) : [{ name: "args", variadic: true }];
  for (const p of ps) {
    const id = `arg-${p.name}`;
    box.append(el("label", { for: id }, p.variadic ? `${p.name} (JSON list, or values separated by commas)` : `${p.name}${p.optional ? " (optional)" : ""}`),
      el("input", { id, "data-arg": p.name, "data-variadic": p.variadic ? "1" : "", "data-optional": p.optional ? "1" : "", autocomplete: "off" }));
  }
}
async function loadTaskTypes() {
  taskTypes = await api("/api/task-types");
  const sel = $("#task-type");
  const current = sel.value;
  sel.replaceChildren(...taskTypes.map((t) => el("option", { value: t.name }, t.name)));
  if (!taskTypes.length) sel.append(el("option", { value: "" }, "no workers alive"));
  if (current && taskTypes.some((t) => t.name === current)) sel.value = current;
  renderArgInputs();
}
$("#task-type").addEventListener("change", renderArgInputs);

function collectArgs() {
  const args = [];
  for (const input of document.querySelectorAll("#arg-inputs input")) {
    const v = input.value.trim();
    if (input.dataset.variadic) {
      if (!v) continue;
      const parsed = parseValue(v);
      if (Array.isArray(parsed)) args.push(...parsed); else args.push(...v.split(",").map((x) => parseValue(x.trim())));
    } else if (v === "" && input.dataset.optional) { break; } else { args.push(parseValue(v)); }
  }
  return args;
}

let watching = null;
$("#submit-form").addEventListener("submit", async (e) => {
  e.preventDefault();
  const out = $("#submit-result");
  const body = { task: $("#task-type").value, args: collectArgs() };
  const kw = $("#opt-kwargs").value.trim();
  if (kw) { try { body.kwargs = JSON.parse(kw); } catch { out.replaceChildren(el("p", { class: "error", role: "alert" }, "Keyword arguments must be a JSON object.")); return; } }
  if ($("#opt-retries").value !== "") body.max_retries = Number($("#opt-retries").value);
  if ($("#opt-timeout").value !== "") body.timeout = Number($("#opt-timeout").value);
  $("#submit-button").disabled = true;
  try {
    const res = await api("/api/tasks", { method: "POST", body });
    watching = res.id;
    renderSubmitted({ id: res.id, status: res.status, task: body.task });
    pollTask(res.id);
  } catch (err) {
    out.replaceChildren(el("p", { class: "error", role: "alert" }, `${err.status || ""} ${err.message}`));
  } finally { $("#submit-button").disabled = false; }
});
function renderSubmitted(t) {
  const out = $("#submit-result");
  out.replaceChildren(el("dl", { class: "kv", id: "submitted" },
    el("dt", {}, "id"), el("dd", { class: "mono", "data-field": "id" }, t.id),
    el("dt", {}, "status"), el("dd", { "data-field": "status" }, badge(t.status)),
    el("dt", {}, "result"), el("dd", { class: "mono", "data-field": "result" }, t.status === "success" ? json(t.result) : (t.error || "–"))));
}
async function pollTask(id) {
  for (let i = 0; i < 600 && watching === id; i++) {
    try {
      const t = await api(`/api/tasks/${id}`);
      renderSubmitted(t);
      if (TERMINAL.has(t.status)) return;
    } catch (err) { if (!(err instanceof ApiError && err.status === 404)) return; }
    await new Promise((r) => setTimeout(r, i < 20 ? 100 : 500));
  }
}

// --- lookup and detail -----------------------------------------------------
$("#lookup-form").addEventListener("submit", async (e) => {
  e.preventDefault();
  const id = $("#lookup-id").value.trim();
  const out = $("#lookup-result");
  try { const t = await api(`/api/tasks/${encodeURIComponent(id)}`); out.replaceChildren(detail(t)); }
  catch (err) { out.replaceChildren(el("p", { class: "error", role: "alert" }, err.message)); }
});

function detail(t) {
  const box = el("div", { class: "detail", "data-task": t.id });
  box.append(el("dl", { class: "kv" },
    el("dt", {}, "id"), el("dd", { class: "mono" }, t.id),
    el("dt", {}, "task"), el("dd", {}, t.task),
    el("dt", {}, "arguments"), el("dd", { class: "mono" }, json(t.args) + (Object.keys(t.kwargs).length ? " " + json(t.kwargs) : "")),
    el("dt", {}, "status"), el("dd", { "data-field": "status" }, badge(t.status)),
    el("dt", {}, "result"), el("dd", { class: "mono", "data-field": "result" }, t.result === null ? "–" : json(t.result)),
    el("dt", {}, "error"), el("dd", { class: "mono" }, t.error || "–"),
    el("dt", {}, "attempts"), el("dd", {}, String(t.attempts)),
    el("dt", {}, "worker"), el("dd", {}, t.worker || "–"),
    el("dt", {}, "created"), el("dd", {}, fmtTime(t.created_at)),
    el("dt", {}, "waited"), el("dd", {}, fmtDur(t.created_at, t.started_at)),
    el("dt", {}, "ran"), el("dd", {}, fmtDur(t.started_at, t.finished_at))));
  if (t.workflow) box.querySelector("dl").append(el("dt", {}, "workflow"), el("dd", {}, el("a", { href: `#workflows/${t.workflow}`, class: "mono" }, t.workflow)));
  if (t.history.length) {
    const rows = t.history.map((h) => el("tr", {}, el("td", {}, String(h.attempt)), el("td", {}, h.worker), el("td", {}, h.reason || ""),
      el("td", {}, h.outcome ? badge(h.outcome === "lost" ? "lost" : h.outcome) : "running"), el("td", {}, fmtDur(h.started_at, h.finished_at)), el("td", { class: "mono" }, h.error || "")));
    box.append(el("h3", {}, "Attempts"), el("table", {}, el("thead", {}, el("tr", {}, ...["#", "Worker", "Why", "Outcome", "Ran", "Error"].map((h) => el("th", {}, h)))), el("tbody", {}, ...rows)));
  }
  const actions = el("div", {});
  if (t.status === "queued" || t.status === "retrying") actions.append(el("button", { class: "secondary", onclick: () => act(t.id, "cancel") }, "Cancel"));
  if (["failed", "dead", "cancelled"].includes(t.status)) actions.append(el("button", { class: "secondary", onclick: () => act(t.id, "retry") }, "Retry"));
  box.append(actions);
  return box;
}
async function act(id, what) {
  try { const t = await api(`/api/tasks/${id}/${what}`, { method: "POST" }); showDetail(t); loadTasks(); }
  catch (err) { alert(err.message); }
}
function showDetail(t) { const d = $("#task-detail"); d.hidden = false; d.replaceChildren(el("h2", {}, "Task"), detail(t)); }

// --- task table --------------------------------------------------------------
let cursors = [null];
let page = 0;
async function loadTasks() {
  const q = new URLSearchParams({ limit: "25" });
  if ($("#filter-status").value) q.set("status", $("#filter-status").value);
  if ($("#filter-task").value.trim()) q.set("task", $("#filter-task").value.trim());
  if (cursors[page]) q.set("cursor", cursors[page]);
  let res;
  try { res = await api(`/api/tasks?${q}`); } catch { return; }
  cursors[page + 1] = res.next_cursor;
  $("#page-next").disabled = !res.next_cursor;
  $("#page-first").disabled = page === 0;
  $("#tasks-empty").hidden = res.items.length > 0;
  $("#task-table tbody").replaceChildren(...res.items.map((t) => {
    const tr = el("tr", { tabindex: "0", "data-id": t.id },
      el("td", {}, badge(t.status)), el("td", {}, t.task), el("td", { class: "mono" }, json(t.args)),
      el("td", { class: "mono" }, t.status === "success" ? json(t.result) : (t.error || "")), el("td", {}, String(t.attempts)),
      el("td", {}, t.worker || ""), el("td", {}, fmtTime(t.created_at)), el("td", {}, fmtDur(t.started_at, t.finished_at)));
    const open = () => api(`/api/tasks/${t.id}`).then(showDetail);
    tr.addEventListener("click", open);
    tr.addEventListener("keydown", (e) => { if (e.key === "Enter") open(); });
    return tr;
  }));
}
$("#filter-status").addEventListener("change", () => { page = 0; cursors = [null]; loadTasks(); });
$("#filter-task").addEventListener("input", () => { page = 0; cursors = [null]; loadTasks(); });
$("#page-next").addEventListener("click", () => { page += 1; loadTasks(); });
$("#page-first").addEventListener("click", () => { page = 0; cursors = [null]; loadTasks(); });

// --- workers -------------------------------------------------------------
async function loadWorkers() {
  let ws;
  try { ws = await api("/api/workers"); } catch { return; }
  const now = Date.now() / 1000;
  $("#workers-empty").hidden = ws.length > 0;
  $("#worker-table tbody").replaceChildren(...ws.map((w) => el("tr", { "data-worker": w.id },
    el("td", {}, w.id), el("td", { "data-field": "status" }, badge(w.status)),
    el("td", {}, w.last_heartbeat ? `${(now - w.last_heartbeat).toFixed(1)} s ago` : "–"),
    el("td", {}, `${w.current_tasks} / ${w.concurrency}`), el("td", {}, String(w.processed)), el("td", {}, String(w.failed)),
    el("td", {}, w.partitions.join(", ") || "–"), el("td", {}, fmtTime(w.started_at)))));
}

// --- charts & summary ----------------------------------------------------
const lagHistory = [];
async function loadStats() {
  let s;
  try { s = await api("/api/stats"); } catch { return; }
  const tput = Object.values(s.throughput).reduce((a, b) => a + b, 0);
  $("#summary").textContent = `${s.workers_alive} workers alive · ${s.counts.queued} queued · ${s.counts.running} running · ${tput.toFixed(1)} tasks/s` + (s.lag_total !== null ? ` · lag ${s.lag_total}` : "");
  $("#counts").replaceChildren(...Object.entries(s.counts).map(([k, v]) => el("div", {}, badge(k), el("b", {}, String(v)))));
  if (s.lag_total !== null) { lagHistory.push({ t: Date.now() / 1000, v: s.lag_total }); if (lagHistory.length > 300) lagHistory.shift(); }
  $("#lag-now").textContent = s.lag_total === null ? "lag unavailable (Kafka unreachable)" : `now: ${s.lag_total} messages not yet processed`;
}
async function loadCharts() {
  await loadStats();
  try {
    const series = await api("/api/stats/series");
    barChart($("#chart-throughput"), series.map((b) => ({ t: b.t, a: (b.success || 0) / 10, b: ((b.failed || 0) + (b.dead || 0)) / 10 })));
  } catch { /* shown as empty */ }
  lineChart($("#chart-lag"), lagHistory);
}

// --- live updates ----------------------------------------------------------
let pending = null;
function soon(fn, ms = 400) { if (!pending) pending = setTimeout(() => { pending = null; fn(); }, ms); }
function refreshAll() { loadMeta().catch(() => {}); loadTaskTypes().catch(() => {}); loadTasks(); loadStats(); showView(); }

events((type, data) => {
  if (type === "worker") { loadWorkers(); loadTaskTypes().catch(() => {}); }
  if (type === "task") {
    if (page === 0) soon(loadTasks);
    const d = $("#task-detail .detail");
    if (d && d.dataset.task === data.id) api(`/api/tasks/${data.id}`).then(showDetail);
  }
}, (on) => $("#live").classList.toggle("on", on), refreshAll);

setInterval(() => { if (!$("#view-workers").hidden) loadWorkers(); }, 1000);
setInterval(() => { if (!$("#view-charts").hidden) loadCharts(); else loadStats(); }, 2000);
refreshAll();
