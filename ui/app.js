// The console's entry: sign-in, the hash router, live updates, and the views' timers.
import * as apiClient from "./api.js";
import { api, events } from "./api.js";
import { showAudit } from "./audit.js";
import { $, $$ } from "./dom.js";
import { isDown, onRecovered, startHealth } from "./health.js";
import { loadStats, showOverview } from "./overview.js";
import { go, parse } from "./router.js";
import { loadSchedules } from "./schedules.js";
import { initScheduled, onTaskEvent as scheduledEvent, showScheduled } from "./scheduled.js";
import { initDead, loadDead } from "./dead.js";
import { session } from "./shared.js";
import { initSubmit, loadTaskTypes, setMeta as submitMeta } from "./submit.js";
import { onTaskEvent as taskEvent, setMeta as taskMeta, showTask } from "./task.js";
import { initTasks, onTaskEvent as tasksEvent, showTasks } from "./tasks.js";
import { loadWorkers, refreshWorkers } from "./workers.js";
import { showWorkflows } from "./workflows.js";

let stopEvents = null;
let route = { view: "overview", id: "", params: new URLSearchParams() };

// --- session -----------------------------------------------------------------
function applySession(s) {
  session.canWrite = s.can_write;
  session.role = s.role;
  session.authRequired = s.auth_required;
  document.body.dataset.canWrite = String(s.can_write);
  $("#session").hidden = !s.auth_required || !s.role;
  $("#role").hidden = s.role !== "read";
  if (!s.can_write && route.view === "submit") go("#/overview", { replace: true });
}

function askToken() {
  const d = $("#token-dialog");
  if (stopEvents) { stopEvents(); stopEvents = null; }
  if (!d.open) { d.showModal(); $("#token-input").focus(); }
}
apiClient.on("unauthorized", askToken);

$("#token-form").addEventListener("submit", async (e) => {
  e.preventDefault();
  $("#token-error").textContent = "";
  try {
    const s = await apiClient.login($("#token-input").value.trim());
    $("#token-input").value = "";
    $("#token-dialog").close();
    applySession(s);
    start();
  } catch (err) { $("#token-error").textContent = err.status === 401 ? "Wrong API token." : err.message; }
});
// The sign-in cannot be dismissed while the API needs it: nothing else would work.
$("#token-dialog").addEventListener("cancel", (e) => e.preventDefault());

$("#sign-out").addEventListener("click", async () => {
  try { await apiClient.logout(); } catch { /* the cookie is gone either way once it expires */ }
  if (stopEvents) { stopEvents(); stopEvents = null; }
  applySession({ can_write: false, role: null, auth_required: true });
  askToken();
});

// --- views -------------------------------------------------------------------
function show() {
  const r = parse();
  if (r.redirect) { go(r.redirect, { replace: true }); return; }
  if (r.view === "submit" && !session.canWrite) { go("#/overview", { replace: true }); return; }
  route = r;
  const section = r.view === "tasks" && r.id ? "task" : r.view;
  for (const s of $$(".view")) s.hidden = s.id !== `view-${section}`;
  for (const a of $$("nav a")) {
    const active = a.dataset.view === r.view;
    a.classList.toggle("active", active);
    if (active) a.setAttribute("aria-current", "page"); else a.removeAttribute("aria-current");
  }
  document.title = `taskq · ${r.id ? r.id : r.view}`;
  refreshView();
}

function refreshView() {
  const r = route;
  if (r.view === "overview") showOverview();
  if (r.view === "tasks") { if (r.id) showTask(r.id); else showTasks(r.params); }
  if (r.view === "scheduled") showScheduled(r.params);
  if (r.view === "dead") loadDead();
  if (r.view === "workers") loadWorkers();
  if (r.view === "schedules") loadSchedules();
  if (r.view === "workflows") showWorkflows(r.id);
  if (r.view === "audit") showAudit(r.params);
  if (r.view === "submit") loadTaskTypes().catch(() => {});
}
window.addEventListener("hashchange", show);

// --- live updates --------------------------------------------------------------
function onEvent(type, data) {
  if (type === "worker") {
    refreshWorkers().catch(() => {});
    if (route.view === "workers") loadWorkers();
    loadTaskTypes().catch(() => {});
  }
  if (type === "task") { tasksEvent(data); taskEvent(data); scheduledEvent(data); }
  if (type === "progress") taskEvent(data);  // a running task's page follows its progress
}

function setLive(on) {
  $("#live").classList.toggle("on", on);
  $("#live").setAttribute("aria-label", on ? "live updates on" : "live updates off");
}

async function loadMeta() {
  const meta = await api("/api/meta");
  submitMeta(meta);
  taskMeta(meta);
}

function start() {
  loadMeta().catch(() => {});
  loadTaskTypes().catch(() => {});
  refreshWorkers().catch(() => {});
  loadStats();
  show();
  if (stopEvents) stopEvents();
  stopEvents = events(onEvent, setLive, () => { refreshWorkers().catch(() => {}); refreshView(); });
}

// Everything back after an outage: reload what is shown.
onRecovered(() => {
  apiClient.session().then(applySession).catch(() => {});
  loadStats();
  refreshWorkers().catch(() => {});
  refreshView();
});

// Before 0.2 the UI kept the token in sessionStorage; it lives in an HttpOnly cookie now.
sessionStorage.removeItem("taskq.token");

initTasks();
initScheduled();
initDead();
initSubmit();
startHealth();

setInterval(() => {
  if (document.hidden || $("#token-dialog").open) return;
  if (route.view === "workers") loadWorkers(); else refreshWorkers().catch(() => {});
}, 2000);
setInterval(() => {
  if (document.hidden || $("#token-dialog").open) return;
  if (route.view === "overview") showOverview(); else loadStats();
  // While the API is down the views are stale: keep trying them, so they come back by themselves.
  if (isDown() && route.view !== "overview") refreshView();
}, 2000);

apiClient.session().then((s) => {
  applySession(s);
  if (s.auth_required && !s.role) { show(); askToken(); } else start();
}).catch(() => { applySession({ can_write: true, role: "write", auth_required: false }); start(); });
