// The Workflows view: the newest workflows, and one workflow's graph with each node's state, live.
import { api } from "./api.js";
import { $, badge, el, fmtTime, json } from "./dom.js";
import { markFresh, markStale } from "./health.js";
import { go, link } from "./router.js";
import { session } from "./shared.js";

let shown = "";  // the workflow whose graph is open ("" for none)
let timer = null;

// A chain reads left to right with arrows, a group stacks its members in a box.
function graph(rec) {
  const byIndex = new Map(rec.nodes.map((n) => [n.index, n]));
  const draw = (index) => {
    const n = byIndex.get(index);
    const state = n.state || "pending";
    if (n.kind === "task") {
      const body = n.state === "success" ? json(n.result) : (n.error || "");
      const card = el("div", { class: `wf-task ${state}`, "data-node": String(n.index), "data-state": state },
        el("div", {}, el("b", {}, n.task), " ", badge(state)),
        el("div", { class: "mono wf-value", title: body }, body));
      if (n.task_id) card.append(el("a", { href: link("tasks", n.task_id), class: "mono wf-id", title: n.task_id }, n.task_id.slice(-12)));
      return card;
    }
    const kids = n.children.map(draw);
    if (n.kind === "chain") {
      const row = el("div", { class: "wf-chain", "data-node": String(n.index), "data-state": state });
      kids.forEach((k, i) => { if (i) row.append(el("span", { class: "wf-arrow", "aria-hidden": "true" }, "→")); row.append(k); });
      return row;
    }
    return el("div", { class: `wf-group ${state}`, "data-node": String(n.index), "data-state": state },
      el("div", { class: "muted" }, `group · on failure: ${n.on_failure}`), ...kids);
  };
  return draw(1);
}

async function act(id, what) {
  try { await api(`/api/workflows/${id}/${what}`, { method: "POST" }); await loadDetail(); loadList(); }
  catch (err) { $("#workflow-detail").prepend(el("p", { class: "error", role: "alert" }, err.message)); }
}

async function loadDetail() {
  const box = $("#workflow-detail");
  if (!shown) { box.hidden = true; return; }
  let rec;
  try { rec = await api(`/api/workflows/${encodeURIComponent(shown)}`); }
  catch (err) {
    box.hidden = false;
    if (box.querySelector("#workflow-status") && err.status !== 404) { markStale(box, err.message); return; }
    box.replaceChildren(el("h2", {}, "Workflow"), el("p", { class: "error", role: "alert" }, err.message));
    return;
  }
  const actions = el("div", { class: "needs-write" });
  if (session.canWrite && rec.status === "running") actions.append(el("button", { class: "secondary", onclick: () => act(rec.id, "cancel") }, "Cancel workflow"));
  if (session.canWrite && rec.status === "failed") actions.append(el("button", { class: "secondary", onclick: () => act(rec.id, "retry") }, "Retry from failed steps"));
  box.hidden = false;
  box.replaceChildren(
    el("h2", {}, "Workflow ", el("span", { class: "mono" }, rec.id), " ", el("span", { id: "workflow-status" }, badge(rec.status))),
    el("dl", { class: "kv" },
      el("dt", {}, "result"), el("dd", { class: "mono", "data-field": "result" }, rec.status === "success" ? json(rec.result) : "–"),
      el("dt", {}, "error"), el("dd", { class: "mono" }, rec.error || "–"),
      el("dt", {}, "created"), el("dd", {}, fmtTime(rec.created_at)),
      el("dt", {}, "finished"), el("dd", {}, fmtTime(rec.finished_at))),
    el("div", { class: "wf-graph", role: "group", "aria-label": "workflow graph" }, graph(rec)),
    actions);
  markFresh(box);
}

async function loadList() {
  let recs;
  try { recs = await api("/api/workflows?limit=50"); } catch (err) { markStale($("#view-workflows"), err.message); return; }
  markFresh($("#view-workflows"));
  $("#workflows-empty").hidden = recs.length > 0;
  $("#workflow-table tbody").replaceChildren(...recs.map((r) => {
    const tasks = r.nodes.filter((n) => n.kind === "task");
    const done = tasks.filter((n) => n.state && n.state !== "running").length;
    const tr = el("tr", { tabindex: "0", "data-id": r.id },
      el("td", {}, badge(r.status)), el("td", { class: "mono" }, r.id), el("td", {}, `${done} / ${tasks.length}`),
      el("td", {}, fmtTime(r.created_at)), el("td", { class: "mono" }, r.error || ""));
    const open = () => go(link("workflows", r.id));
    tr.addEventListener("click", open);
    tr.addEventListener("keydown", (e) => { if (e.key === "Enter") open(); });
    return tr;
  }));
}

export function showWorkflows(id) {
  shown = id || "";
  loadList();
  loadDetail();
  // Refreshed in place while the view is open: a running workflow's nodes change state live.
  if (!timer) {
    timer = setInterval(() => {
      if ($("#view-workflows").hidden) { clearInterval(timer); timer = null; return; }
      loadList();
      loadDetail();
    }, 1000);
  }
}
