// The Schedules view: periodic schedules with their next run, last run and its outcome, and
// pause / resume / run-now buttons. Like every view it only talks to the public HTTP API.
import { api } from "./api.js";
import { $, el } from "./dom.js";

function when(s) {
  if (s.every !== null) return `every ${s.every} s`;
  return s.timezone === "UTC" ? s.cron : `${s.cron} (${s.timezone})`;
}

// An absolute local time with how far it is from now: "14:03:00 (in 12 s)".
function moment(t) {
  if (!t) return "–";
  const d = new Date(t * 1000);
  const today = d.toDateString() === new Date().toDateString();
  const text = today ? d.toLocaleTimeString([], { hour12: false }) : d.toLocaleString([], { hour12: false });
  const delta = t - Date.now() / 1000;
  const span = Math.abs(delta) < 120 ? `${Math.round(Math.abs(delta))} s` : Math.abs(delta) < 7200
    ? `${Math.round(Math.abs(delta) / 60)} min` : `${(Math.abs(delta) / 3600).toFixed(1)} h`;
  return `${text} (${delta > 0 ? "in " + span : span + " ago"})`;
}

async function act(name, what) {
  $("#schedule-error").textContent = "";
  try { await api(`/api/schedules/${encodeURIComponent(name)}/${what}`, { method: "POST" }); }
  catch (err) { $("#schedule-error").textContent = `${name}: ${err.message}`; }
  loadSchedules();
}

function row(s) {
  // The buttons sit in a table row: no top margin (the stylesheet gives form buttons one).
  const button = (label, what) => el("button", { class: "secondary", style: "margin-top:0", onclick: () => act(s.name, what) }, label);
  const toggle = s.paused ? button("Resume", "resume") : button("Pause", "pause");
  return el("tr", { "data-schedule": s.name },
    el("td", {}, s.name), el("td", {}, s.task), el("td", { class: "mono" }, when(s)),
    el("td", { "data-field": "next" }, s.paused ? el("span", { class: "badge cancelled" }, "paused") : moment(s.next_at)),
    el("td", { "data-field": "last" }, moment(s.last_at)),
    el("td", { "data-field": "outcome" }, s.last_status ? el("span", { class: `badge ${s.last_status}` }, s.last_status) : "–"),
    el("td", { "data-field": "runs" }, String(s.runs)), el("td", {}, s.source),
    el("td", { class: "actions" }, toggle, " ", button("Run now", "run")));
}

export async function loadSchedules() {
  let list;
  try { list = await api("/api/schedules"); } catch { return; }
  $("#schedules-empty").hidden = list.length > 0;
  $("#schedule-table tbody").replaceChildren(...list.map(row));
}

setInterval(() => { if (!$("#view-schedules").hidden) loadSchedules(); }, 1000);
