// The Overview (#/overview) and the header's summary: what finishes now (the last 10 s, by
// outcome), counts by state, lag, workers, the oldest waiting task, what is scheduled; charts.
import { api } from "./api.js";
import { barChart, lineChart } from "./charts.js";
import { $, badge, el, fmtRate, fmtSpan, num } from "./dom.js";
import { markFresh, markStale } from "./health.js";
import { link } from "./router.js";
import { workers } from "./shared.js";

const lagHistory = [];
let seriesAt = 0;
export let stats = null;

function renderSummary(s) {
  const parts = [`${s.workers_alive} worker${s.workers_alive === 1 ? "" : "s"} alive`, `${num(s.counts.queued)} queued`,
                 `${num(s.counts.running - (s.running_lost || 0))} running`, `${fmtRate(s.finished_per_second)}/s finished`];
  // Runs of a worker whose heartbeat expired are not busy slots: Kafka hands them to another worker.
  if (s.running_lost) parts.splice(3, 0, `${num(s.running_lost)} on lost workers (to be redelivered)`);
  if (s.lag_total !== null) parts.push(`lag ${num(s.lag_total)}`);
  $("#summary").textContent = parts.join(" · ");
}

function renderOverview(s) {
  $("#ov-rate").textContent = `${fmtRate(s.finished_per_second)}/s`;
  $("#ov-rate-note").textContent = s.rate_window ? `tasks finished per second, last ${s.rate_window.toFixed(0)} s` : "tasks finished per second";
  $("#ov-rate-by").replaceChildren(...["success", "failed", "dead", "retrying"].map((k) =>
    el("span", { "data-rate": k }, badge(k), ` ${fmtRate(s.rate[k] || 0)}/s`)));
  $("#ov-lag").textContent = s.lag_total === null ? "unknown" : num(s.lag_total);
  $("#lag-now").textContent = s.lag_total === null ? "lag unavailable (Kafka unreachable)" : `now: ${num(s.lag_total)} messages not yet processed`;
  $("#ov-oldest").textContent = s.oldest_queued_age === null ? "none" : fmtSpan(s.oldest_queued_age);
  $("#ov-workers").textContent = String(s.workers_alive);
  const alive = [...workers.values()].filter((w) => w.status === "alive");
  $("#ov-busy").textContent = alive.length ? `${alive.reduce((a, w) => a + w.current_tasks, 0)} of ${alive.reduce((a, w) => a + w.concurrency, 0)} slots busy` : "";
  $("#ov-scheduled").textContent = num(s.scheduled);
  $("#counts").replaceChildren(...Object.entries(s.counts).map(([k, v]) =>
    el("a", { href: link("tasks", "", { status: k }), class: "count", "data-state": k }, badge(k), el("b", {}, num(v)))));
  lineChart($("#chart-lag"), lagHistory);
}

// Stats for the header every couple of seconds; the Overview's tiles when it is open.
export async function loadStats() {
  let s;
  try { s = await api("/api/stats"); }
  catch (err) {
    $("#summary").classList.add("stale");
    markStale($("#view-overview"), err.message);
    return;
  }
  stats = s;
  $("#summary").classList.remove("stale");
  renderSummary(s);
  if (s.lag_total !== null) { lagHistory.push({ t: Date.now() / 1000, v: s.lag_total }); if (lagHistory.length > 300) lagHistory.shift(); }
  if (!$("#view-overview").hidden) { renderOverview(s); markFresh($("#view-overview")); }
}

export async function showOverview() {
  if (stats) renderOverview(stats);
  await loadStats();
  if (Date.now() - seriesAt > 10000) {
    try {
      const series = await api("/api/stats/series");
      seriesAt = Date.now();
      barChart($("#chart-throughput"), series.map((b) => ({ t: b.t, a: (b.success || 0) / 10, b: ((b.failed || 0) + (b.dead || 0)) / 10 })));
    } catch { /* the stats call above marks the view stale */ }
  }
}
