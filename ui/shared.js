// What the views share: who is signed in, the workers last seen, a throttle, the confirmation dialog.
import { $, badge, el } from "./dom.js";

export const session = { canWrite: true, role: "write", authRequired: false };
export const workers = new Map();  // id -> the worker as GET /api/workers last said

// A running task whose worker's heartbeat expired is not running any more: Kafka hands its
// message to another worker, which runs it again.
export function statusBadges(t) {
  const out = [badge(t.status)];
  const w = t.worker && workers.get(t.worker);
  if (t.status === "running" && w && w.status !== "alive") out.push(" ", el("span", { class: "tag warn", "data-flag": "worker-lost" }, "worker lost — will be redelivered"));
  if (t.waiting_for) out.push(" ", el("span", { class: "tag" }, `waiting: ${t.waiting_for}`));
  if (t.status === "running" && t.progress !== null && t.progress !== undefined) out.push(" ", el("span", { class: "tag", "data-flag": "progress" }, `${Math.round(t.progress * 100)} %`));
  return out;
}

// Call fn at most every `ms`, the last call always honoured (live updates under heavy traffic).
export function throttle(fn, ms) {
  let last = 0, timer = null;
  return () => {
    const wait = last + ms - Date.now();
    if (timer) return;
    if (wait <= 0) { last = Date.now(); fn(); return; }
    timer = setTimeout(() => { timer = null; last = Date.now(); fn(); }, wait);
  };
}

// The confirmation every bulk action goes through: what it will do, how many tasks it takes
// (`count` runs the dry run, again whenever `extra` changes), then the action itself.
export function confirmAction({ title, describe, extra = null, count, okLabel, run }) {
  const dialog = $("#confirm-dialog");
  const ok = $("#confirm-ok");
  $("#confirm-title").textContent = title;
  $("#confirm-body").replaceChildren(el("p", {}, describe), ...(extra ? [extra] : []));
  $("#confirm-error").textContent = "";
  let seq = 0;
  const recount = async () => {
    const mine = ++seq;
    ok.disabled = true;
    $("#confirm-count").textContent = "Counting…";
    try {
      const r = await count();
      if (mine !== seq) return;
      $("#confirm-count").textContent = r.matched
        ? `${r.matched.toLocaleString("en-US")} task${r.matched === 1 ? "" : "s"} match${r.matched === 1 ? "es" : ""}.${r.capped ? ` One call acts on at most ${r.limit.toLocaleString("en-US")}: run it again for the rest.` : ""}`
        : "No task matches: nothing to do.";
      ok.textContent = okLabel(r.matched);
      ok.disabled = !r.matched;
      $("#confirm-error").textContent = "";
    } catch (err) {
      if (mine !== seq) return;
      $("#confirm-count").textContent = "";
      $("#confirm-error").textContent = err.message;
    }
  };
  let debounce = null;
  if (extra) extra.addEventListener("input", () => { clearTimeout(debounce); debounce = setTimeout(recount, 300); });
  return new Promise((resolve) => {
    const close = (value) => { cleanup(); dialog.close(); resolve(value); };
    const onSubmit = async (e) => {
      e.preventDefault();
      ok.disabled = true;
      try { close(await run()); }
      catch (err) { $("#confirm-error").textContent = err.message; ok.disabled = false; }
    };
    const onCancel = () => close(null);
    const onClose = () => { cleanup(); resolve(null); };
    const cleanup = () => {
      $("#confirm-form").removeEventListener("submit", onSubmit);
      $("#confirm-cancel").removeEventListener("click", onCancel);
      dialog.removeEventListener("close", onClose);
    };
    $("#confirm-form").addEventListener("submit", onSubmit);
    $("#confirm-cancel").addEventListener("click", onCancel);
    dialog.addEventListener("close", onClose);
    dialog.showModal();
    recount();
  });
}
