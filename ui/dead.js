// The Dead letters view (#/dead): tasks that ended dead and messages that could never run, newest
// first (GET /api/dead-letters), each with its reason, its place in the dead-letter topic, a preview
// and the raw bytes to download; Replay submits it again as a new task, corrected if need be.
import { api } from "./api.js";
import { $, badge, el, fmtTime, json } from "./dom.js";
import { markFresh, markStale } from "./health.js";
import { link } from "./router.js";
import { session } from "./shared.js";

let items = [];
let replaying = null;

function raw(d) {
  return `/api/dead-letters/${d.partition}/${d.offset}/raw`;
}

function openReplay(d) {
  replaying = d;
  $("#dead-replay-title").textContent = `Replay ${d.position}`;
  $("#dead-replay-task").value = d.task || "";
  $("#dead-replay-args").value = d.args ? json(d.args) : "";
  $("#dead-replay-kwargs").value = d.kwargs ? json(d.kwargs) : "";
  $("#dead-replay-note").textContent = d.kind === "task"
    ? "Submits the task again under a new id; correct the arguments first if they were the problem."
    : "This message never decoded: give the task and its arguments to submit in its place.";
  $("#dead-replay-error").textContent = "";
  $("#dead-replay-done").replaceChildren();
  $("#dead-replay").hidden = false;
  $("#dead-replay-task").focus();
}

function parseField(id, want) {
  const text = $(id).value.trim();
  if (!text) return undefined;
  let v;
  try { v = JSON.parse(text); } catch (err) { throw new Error(`${id.slice(13)}: not JSON (${err.message})`); }
  if (want === "list" ? !Array.isArray(v) : (typeof v !== "object" || v === null || Array.isArray(v))) {
    throw new Error(`${id.slice(13)}: must be a JSON ${want}`);
  }
  return v;
}

async function replay(e) {
  e.preventDefault();
  const d = replaying;
  if (!d) return;
  let body;
  try {
    body = { task: $("#dead-replay-task").value.trim() || undefined, args: parseField("#dead-replay-args", "list"),
             kwargs: parseField("#dead-replay-kwargs", "object") };
  } catch (err) { $("#dead-replay-error").textContent = err.message; return; }
  try {
    const r = await api(`/api/dead-letters/${d.partition}/${d.offset}/replay`, { method: "POST", body });
    $("#dead-replay-error").textContent = "";
    $("#dead-replay-done").replaceChildren("Submitted as ", el("a", { href: link("tasks", r.id), class: "mono" }, r.id));
  } catch (err) { $("#dead-replay-error").textContent = err.message; }
}

function render() {
  $("#dead-empty").hidden = items.length > 0;
  $("#dead-table tbody").replaceChildren(...items.map((d) => el("tr", { "data-position": d.position, "data-kind": d.kind },
    el("td", { class: "mono" }, d.position),
    el("td", {}, fmtTime(d.at)),
    el("td", {}, badge(d.kind === "task" ? "dead" : "failed", d.kind)),
    el("td", { "data-field": "reason" }, d.reason, d.error ? el("div", { class: "muted" }, d.error) : ""),
    el("td", {}, d.kind === "task" && d.task_id
      ? [d.task || "", " ", el("a", { href: link("tasks", d.task_id), class: "mono" }, d.task_id)]
      : el("span", { class: "mono muted" }, d.source || "")),
    el("td", { class: "mono col-args", "data-field": "preview" }, d.preview),
    el("td", {}, el("a", { href: raw(d), download: "", class: "secondary small button" }, "Download"),
      session.canWrite ? el("button", { type: "button", class: "secondary small", onclick: () => openReplay(d) }, "Replay…") : ""),
  )));
}

export async function loadDead() {
  let res;
  try { res = await api(`/api/dead-letters?limit=${encodeURIComponent($("#dead-limit").value || "50")}`); }
  catch (err) { markStale($("#view-dead"), err.message); return; }
  items = res.items;
  render();
  $("#dead-total").textContent = `${items.length} newest`;
  markFresh($("#view-dead"));
}

export function initDead() {
  $("#dead-limit").addEventListener("change", loadDead);
  $("#dead-refresh").addEventListener("click", loadDead);
  $("#dead-replay-form").addEventListener("submit", replay);
  $("#dead-replay-close").addEventListener("click", () => { $("#dead-replay").hidden = true; replaying = null; });
}
