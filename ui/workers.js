// The Workers view: each worker's state, heartbeat, slots and the tasks it is running now; a lost
// worker's tasks are flagged, since Kafka hands them to another worker to run again.
import { api } from "./api.js";
import { $, badge, el, fmtTime, now } from "./dom.js";
import { signatureText } from "./form.js";
import { markFresh, markStale } from "./health.js";
import { link } from "./router.js";
import { session, workers } from "./shared.js";

const RUNNING_MAX = 500;  // running tasks read at once to list them under their workers

// Refresh the shared list of workers (every view's "worker lost" flag reads it).
export async function refreshWorkers() {
  const ws = await api("/api/workers");
  workers.clear();
  for (const w of ws) workers.set(w.id, w);
  return ws;
}

function current(w, running) {
  const mine = running ? running.filter((t) => t.worker === w.id) : null;
  if (!mine) return w.current_tasks ? el("a", { href: link("tasks", "", { status: "running", worker: w.id }) }, `${w.current_tasks} running →`) : "–";
  if (!mine.length) return "–";
  const list = el("ul", { class: "current" }, ...mine.slice(0, 8).map((t) => el("li", {},
    el("a", { href: link("tasks", t.id), class: "mono", title: t.id }, t.id.slice(0, 12)), " ", t.task,
    w.status !== "alive" ? el("span", { class: "tag warn", "data-flag": "worker-lost" }, " worker lost — will be redelivered") : "")));
  if (mine.length > 8) list.append(el("li", {}, el("a", { href: link("tasks", "", { status: "running", worker: w.id }) }, `all ${mine.length} →`)));
  return list;
}

async function act(path, what) {
  try { await api(path, { method: "POST" }); $("#workers-error").textContent = ""; }
  catch (err) { $("#workers-error").textContent = `${what}: ${err.message}`; }
  loadWorkers();
}

// Quiet (take no new tasks, finish the running ones: before a deploy) and resume a worker.
function workerActions(w) {
  if (!session.canWrite || w.status !== "alive" || w.quiet === undefined) return "";
  const what = w.quiet ? "resume" : "quiet";
  return el("button", { class: "secondary small", onclick: () => act(`/api/workers/${encodeURIComponent(w.id)}/${what}`, `${w.id}`) },
    w.quiet ? "Resume" : "Quiet");
}

// Task types, cluster-wide: paused ones are kept (never lost) and run in order once resumed.
async function loadTypes() {
  let types;
  try { types = await api("/api/task-types"); } catch { return; }
  $("#types-empty").hidden = types.length > 0;
  $("#type-table tbody").replaceChildren(...types.map((t) => el("tr", { "data-type": t.name },
    el("td", {}, t.name), el("td", { class: "mono col-args" }, signatureText(t)),
    el("td", { "data-field": "state" }, t.paused ? [badge("paused"), t.held ? ` ${t.held} held` : ""] : badge("alive", "active")),
    el("td", { class: "needs-write" }, session.canWrite && t.paused !== undefined
      ? el("button", { class: "secondary small", onclick: () => act(`/api/task-types/${encodeURIComponent(t.name)}/${t.paused ? "resume" : "pause"}`, t.name) },
        t.paused ? "Resume" : "Pause") : ""))));
}

const secs = (v) => (v === null || v === undefined ? "–" : v < 1 ? `${Math.round(v * 1000)} ms` : `${v.toFixed(v < 10 ? 2 : 0)} s`);
// Each percentile comes from a sketch within ±relative_error of the true value: say so with it.
const triple = (t) => {
  const text = [t.p50, t.p95, t.p99].map(secs).join(" / ");
  if (t.p50 === null || t.p50 === undefined || !t.relative_error) return text;
  const pct = `±${Math.round(t.relative_error * 100)} %`;
  return el("span", { title: `each percentile is within ${pct} of the true value; the mean is exact` },
    text, " ", el("span", { class: "muted", "data-field": "error" }, pct));
};

// Per task type over a window: GET /api/task-types/metrics (bounded aggregates, never a task scan).
async function loadMetrics() {
  let rows;
  try { rows = await api(`/api/task-types/metrics?window=${encodeURIComponent($("#metrics-window").value)}`); } catch { return; }
  $("#metrics-empty").hidden = rows.length > 0;
  $("#metrics-table tbody").replaceChildren(...rows.map((m) => el("tr", { "data-type": m.task },
    el("td", {}, el("a", { href: link("tasks", "", { task: m.task }) }, m.task)),
    el("td", { "data-field": "finished" }, String(m.finished)),
    el("td", {}, ...Object.entries(m.counts).flatMap(([st, n]) => [badge(st, `${st} ${n}`), " "])),
    el("td", { "data-field": "failure-rate" }, m.failure_rate === null ? "–" : `${(m.failure_rate * 100).toFixed(1)} %`),
    el("td", { "data-field": "run" }, triple(m.run)),
    el("td", { "data-field": "wait" }, triple(m.wait)))));
}
document.addEventListener("change", (e) => { if (e.target && e.target.id === "metrics-window") loadMetrics(); });

export async function loadWorkers() {
  loadTypes();
  loadMetrics();
  let ws, running = null;
  try {
    ws = await refreshWorkers();
    // One read for every worker (a lost worker's tasks stay "running" until another takes them).
    if (ws.length) {
      try { running = (await api(`/api/tasks?status=running&limit=${RUNNING_MAX}`)).items; } catch { running = null; }
    }
  } catch (err) { markStale($("#view-workers"), err.message); return; }
  const t = now();
  $("#workers-empty").hidden = ws.length > 0;
  $("#worker-table tbody").replaceChildren(...ws.map((w) => el("tr", { "data-worker": w.id },
    el("td", { class: "mono" }, w.id),
    el("td", { "data-field": "status" }, badge(w.status), w.quiet ? [" ", badge("quiet")] : ""),
    el("td", {}, w.last_heartbeat ? `${(t - w.last_heartbeat).toFixed(1)} s ago` : "–"),
    el("td", { "data-field": "slots" }, `${w.current_tasks} / ${w.concurrency}`),
    el("td", { "data-field": "current" }, current(w, running)),
    el("td", {}, String(w.processed)), el("td", {}, String(w.failed)),
    el("td", { "data-field": "partitions" }, w.partitions.length ? w.partitions.join(", ")
      : w.lost_partitions && w.lost_partitions.length
        ? el("span", { class: "tag warn" }, `${w.lost_partitions.join(", ")} — no live worker holds them yet`) : "–"),
    el("td", {}, fmtTime(w.started_at)),
    el("td", { class: "needs-write" }, workerActions(w)))));
  markFresh($("#view-workers"));
}
