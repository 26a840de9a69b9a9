// Whether the API and what it depends on (Kafka, Redis: /readyz) are up. A banner says what is
// down and since when, and goes once all is back; views mark what they could not refresh as stale
// instead of showing it as if it were current.
import { on } from "./api.js";
import { $, el, fmtTime, now } from "./dom.js";

const state = { api: true, checks: {}, since: null, lastGood: now() };
const recovered = [];
let timer = null;

// Runs once everything is up again after an outage (the caller reloads what it shows).
export function onRecovered(fn) { recovered.push(fn); }
export const isDown = () => !state.api || Object.values(state.checks).some((v) => v !== "ok");

function render() {
  const banner = $("#banner");
  const problems = [];
  if (!state.api) problems.push("The taskq API is unreachable.");
  else for (const [name, v] of Object.entries(state.checks)) if (v !== "ok") problems.push(`${name === "redis" ? "Redis" : name === "kafka" ? "Kafka" : name}: ${v}`);
  document.body.classList.toggle("outage", problems.length > 0);
  if (!problems.length) { banner.hidden = true; banner.replaceChildren(); return; }
  banner.hidden = false;
  banner.replaceChildren(
    el("strong", {}, state.api ? "Degraded" : "Outage"), " ",
    el("span", { "data-field": "problems" }, problems.join(" ")), " ",
    el("span", { class: "muted" }, `Since ${fmtTime(state.since)}; what is shown was last refreshed at ${fmtTime(state.lastGood)} and is marked stale. It refreshes on its own once the service is back.`));
}

function set(api, checks) {
  const wasDown = isDown();
  state.api = api;
  if (checks) state.checks = checks;
  const down = isDown();
  if (down && !wasDown) state.since = now();
  if (!down) state.lastGood = now();
  render();
  schedule(down ? 2000 : 10000);
  if (wasDown && !down) recovered.forEach((fn) => fn());
}

async function check() {
  try {
    const res = await fetch("/readyz", { headers: { Accept: "application/json" }, cache: "no-store" });
    if (res.status === 502 || res.status === 504) { set(false); return; }
    const body = await res.json().catch(() => ({}));
    const checks = {};
    for (const [k, v] of Object.entries(body)) if (k !== "status") checks[k] = v;
    set(true, checks);
  } catch {
    set(false);
  }
}

function schedule(ms) { clearTimeout(timer); timer = setTimeout(check, ms); }

export function startHealth() {
  // Any request that cannot reach the API says so at once; one that can asks /readyz soon after
  // an outage, so the banner goes as soon as everything is back.
  on("reachable", (ok) => {
    if (!ok && state.api) set(false);
    else if (ok && !state.api) check();
    else if (ok && !isDown()) state.lastGood = now();
  });
  check();
}

// Mark a view's data as not current (with why), or as fresh again.
export function markStale(section, why) {
  section.dataset.stale = "1";
  let note = section.querySelector(":scope > .stale-note");
  if (!note) { note = el("p", { class: "stale-note", role: "status" }); section.prepend(note); }
  const at = Number(section.dataset.loadedAt) || null;
  note.textContent = at ? `Not up to date: ${why}. Last refreshed ${fmtTime(at)}.` : `Could not load: ${why}.`;
}
export function markFresh(section) {
  delete section.dataset.stale;
  section.dataset.loadedAt = String(now());
  const note = section.querySelector(":scope > .stale-note");
  if (note) note.remove();
}
