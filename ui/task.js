// A task's own page (#/tasks/<id>): its request, state, outcome with the full error, due time,
// every attempt, and Cancel / Retry. It is refreshed in place: after an action, and whenever the
// event stream says the task changed.
import { api } from "./api.js";
import { $, badge, el, fmtDur, fmtMoment, fmtSpan, fmtTime, json, pretty } from "./dom.js";
import { markFresh, markStale } from "./health.js";
import { link } from "./router.js";
import { session, statusBadges, throttle } from "./shared.js";

let shown = "";  // the id on the page
let record = null;
let note = null;  // what the last action said ({text, error}), kept across refreshes of the page
let meta = { cancellable: ["queued", "retrying"], retryable: ["failed", "dead", "cancelled"] };
export function setMeta(m) { meta = m; }

const box = () => $("#task-page");
const row = (label, value, field) => [el("dt", {}, label), el("dd", field ? { "data-field": field } : {}, value)];
const block = (label, value, cls = "") => el("div", { class: "block" }, el("h3", {}, label), el("pre", { class: `mono ${cls}` }, value));

function due(t) {
  if (!t.eta) return null;
  const future = t.eta > Date.now() / 1000;
  if (t.status === "queued" && future) return ["due", fmtMoment(t.eta), "delayed"];
  if (t.status === "retrying") return ["next attempt", fmtMoment(t.eta), "retry"];
  return [future ? "was scheduled for" : "was due", fmtMoment(t.eta), ""];
}

// The last attempt it may make: after a manual retry its retry_limit + 1, else max_retries + 1.
const most = (t) => (t.retry_limit ? t.retry_limit + 1 : t.max_retries !== null && t.max_retries !== undefined ? t.max_retries + 1 : null);

function attempts(t) {
  if (!t.history || !t.history.length) return el("p", { class: "muted" }, "No attempt yet.");
  const head = ["#", "Worker", "Started", "Ended", "Duration", "Why", "Outcome", "Error"];
  const rows = t.history.map((h) => el("tr", { "data-attempt": String(h.attempt) },
    el("td", {}, String(h.attempt)), el("td", {}, h.worker || "–"), el("td", {}, fmtTime(h.started_at)),
    el("td", {}, fmtTime(h.finished_at)), el("td", {}, fmtDur(h.started_at, h.finished_at)),
    el("td", { "data-field": "reason" }, h.reason || ""),
    el("td", { "data-field": "outcome" }, h.outcome ? badge(h.outcome) : badge("running")),
    el("td", { class: "mono" }, h.error ? (h.error.length > 80 || h.error.includes("\n")
      ? el("details", {}, el("summary", {}, h.error.split("\n")[0].slice(0, 80)), el("pre", { class: "mono traceback" }, h.error)) : h.error) : "")));
  return el("div", { class: "table-wrap" }, el("table", { id: "attempts" },
    el("thead", {}, el("tr", {}, ...head.map((h) => el("th", {}, h)))), el("tbody", {}, ...rows)));
}

function render(t) {
  record = t;
  const actions = el("div", { class: "actions needs-write" });
  if (session.canWrite && meta.cancellable.includes(t.status)) actions.append(el("button", { class: "secondary", onclick: () => act("cancel") }, "Cancel"));
  // A running task is asked to stop: it sees the request (taskq.current().is_cancelled()) and ends cancelled if it stops.
  if (session.canWrite && t.status === "running" && !t.cancel_requested) actions.append(el("button", { class: "secondary", onclick: () => act("cancel") }, "Ask to stop"));
  if (session.canWrite && meta.retryable.includes(t.status)) actions.append(el("button", { class: "secondary", onclick: () => act("retry") }, "Retry"));
  const d = due(t);
  const kv = el("dl", { class: "kv" },
    row("task", t.task, "task"),
    row("status", statusBadges(t), "status"),
    ...(d ? row(d[0], d[1], "due") : []),
    row("created", fmtTime(t.created_at), "created"),
    row("started", fmtTime(t.started_at)),
    row("finished", fmtTime(t.finished_at)),
    row("waited", fmtDur(t.created_at, t.started_at)),
    row("ran", fmtDur(t.started_at, t.finished_at)),
    row("attempts", `${t.attempts}${most(t) ? ` of at most ${most(t)}` : ""}`, "attempts"),
    row("worker", t.worker || "–", "worker"),
    ...(t.timeout ? row("time limit", fmtSpan(t.timeout)) : []),
    ...(t.priority && t.priority !== "normal" ? row("priority", t.priority) : []),
    ...(t.progress !== null && t.progress !== undefined ? row("progress", el("span", {},
      el("progress", { max: "1", value: String(t.progress) }), ` ${Math.round(t.progress * 100)} %${t.progress_message ? ` — ${t.progress_message}` : ""}`), "progress") : []),
    ...(t.progress === null && t.progress_message ? row("progress", t.progress_message, "progress") : []),
    ...(t.cancel_requested ? row("cancel", "requested while running") : []),
    ...(t.workflow ? row("workflow", el("a", { href: link("workflows", t.workflow), class: "mono" }, t.workflow)) : []));
  const blocks = [block("Arguments", pretty(t.args), "args")];
  if (t.kwargs && Object.keys(t.kwargs).length) blocks.push(block("Keyword arguments", pretty(t.kwargs), "kwargs"));
  if (t.status === "success" || (t.result !== null && t.result !== undefined)) blocks.push(block("Result", pretty(t.result), "result"));
  if (t.error) blocks.push(block("Error", t.traceback || t.error, "traceback error-text"));
  box().replaceChildren(
    el("p", { class: "crumbs" }, el("a", { href: "#/tasks" }, "← Tasks")),
    el("div", { class: "title" }, el("h2", { id: "task-title" }, "Task ", el("span", { class: "mono", "data-field": "id" }, t.id)), actions),
    el("p", { id: "task-action-result", role: "status", class: note && note.error ? "error" : "" }, note ? note.text : ""),
    kv, el("div", { class: "blocks" }, ...blocks), el("h3", {}, "Attempts"), attempts(t));
}

async function act(what) {
  try {
    const t = await api(`/api/tasks/${encodeURIComponent(shown)}/${what}`, { method: "POST" });
    note = { text: what === "retry" ? "Queued again." : t.status === "running" ? "Asked to stop: the task decides when." : "Cancelled." };
    render(t);
  } catch (err) {
    note = { text: err.message, error: true };
    if (record) render(record);
  }
}

async function load() {
  const id = shown;
  try {
    const t = await api(`/api/tasks/${encodeURIComponent(id)}`);
    if (id !== shown) return;
    render(t);
    markFresh($("#view-task"));
  } catch (err) {
    if (id !== shown) return;
    if (err.status === 404) {
      record = null;
      box().replaceChildren(el("p", { class: "crumbs" }, el("a", { href: "#/tasks" }, "← Tasks")),
        el("h2", { id: "task-title" }, "Task ", el("span", { class: "mono" }, id)),
        el("p", { class: "error", role: "alert" }, err.message));
      markFresh($("#view-task"));
    } else if (!record || record.id !== id) {
      box().replaceChildren(el("h2", { id: "task-title" }, "Task ", el("span", { class: "mono" }, id)), el("p", { class: "error", role: "alert" }, err.message));
      markStale($("#view-task"), err.message);
    } else {
      markStale($("#view-task"), err.message);
    }
  }
}

export function showTask(id) {
  if (id !== shown) { shown = id; record = null; note = null; box().replaceChildren(el("p", { class: "muted" }, "Loading…")); window.scrollTo(0, 0); }
  return load();
}
export const reloadTask = () => { if (shown && !$("#view-task").hidden) load(); };

const live = throttle(reloadTask, 300);
export function onTaskEvent(data) { if (data.id === shown && !$("#view-task").hidden) live(); }
// Between events the due countdown and a lost worker's flag still move.
setInterval(() => {
  if (!record || $("#view-task").hidden) return;
  const d = due(record), dueField = $("#task-page [data-field=due]"), status = $("#task-page [data-field=status]");
  if (d && dueField) dueField.textContent = d[1];
  if (status) status.replaceChildren(...statusBadges(record));
}, 1000);
