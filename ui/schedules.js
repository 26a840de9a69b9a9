// The Schedules view: periodic schedules with their next run, last run and its outcome, and
// pause / resume / run-now buttons. Like every view it only talks to the public HTTP API.
import { api } from "./api.js";
import { $, badge, el, fmtMoment } from "./dom.js";
import { markFresh, markStale } from "./health.js";
import { session } from "./shared.js";

function when(s) {
  if (s.every !== null) return `every ${s.every} s`;
  return s.timezone === "UTC" ? s.cron : `${s.cron} (${s.timezone})`;
}

async function act(name, what) {
  $("#schedule-error").textContent = "";
  try { await api(`/api/schedules/${encodeURIComponent(name)}/${what}`, { method: "POST" }); }
  catch (err) { $("#schedule-error").textContent = `${name}: ${err.message}`; }
  loadSchedules();
}

function row(s) {
  const button = (label, what) => el("button", { class: "secondary small", onclick: () => act(s.name, what) }, label);
  const toggle = s.paused ? button("Resume", "resume") : button("Pause", "pause");
  return el("tr", { "data-schedule": s.name },
    el("td", {}, s.name), el("td", {}, s.task), el("td", { class: "mono" }, when(s)),
    el("td", { "data-field": "next" }, s.paused ? badge("paused") : fmtMoment(s.next_at)),
    el("td", { "data-field": "last" }, fmtMoment(s.last_at)),
    el("td", { "data-field": "outcome" }, s.last_status ? badge(s.last_status) : "–"),
    el("td", { "data-field": "runs" }, String(s.runs)), el("td", {}, s.source),
    el("td", { class: "actions needs-write" }, session.canWrite ? [toggle, " ", button("Run now", "run")] : ""));
}

export async function loadSchedules() {
  let list;
  try { list = await api("/api/schedules"); } catch (err) { markStale($("#view-schedules"), err.message); return; }
  $("#schedules-empty").hidden = list.length > 0;
  $("#schedule-table tbody").replaceChildren(...list.map(row));
  markFresh($("#view-schedules"));
}

setInterval(() => { if (!$("#view-schedules").hidden) loadSchedules(); }, 1000);
