// The Submit view: inputs typed from the task's signature, checked as they are typed, and the
// options POST /api/tasks takes (max_retries, timeout, delay, idempotency_key, key).
import { api, ApiError } from "./api.js";
import { $, $$, badge, el, json } from "./dom.js";
import { collect, fieldsOf, parseField, signatureText } from "./form.js";
import { link } from "./router.js";

let taskTypes = [];
let limits = { max_retries: 1000, timeout: 86400, delay: 30 * 86400, key_length: 200 };
let terminal = new Set(["success", "failed", "dead", "cancelled"]);
let fields = [];
let watching = null;

export function setMeta(meta) {
  limits = { ...limits, ...meta.limits };
  terminal = new Set(meta.terminal);
}

const current = () => taskTypes.find((x) => x.name === $("#task-type").value);

function hint(f) {
  if (f.kind === "variadic") return "extra values: a JSON list, one JSON value, or plain values separated by commas";
  if (f.param === "var_keyword") return "more keyword arguments: a JSON object";
  return { int: "whole number", float: "number", str: 'text (type "" for an empty string)', bool: "", list: "JSON list",
           object: "JSON object", choice: "", json: "JSON value, or plain text for a string" }[f.kind] || "";
}

function input(f) {
  const id = `arg-${f.name}`;
  const common = { id, "data-arg": f.name, autocomplete: "off", "aria-describedby": `${id}-error ${id}-hint`,
                   required: f.required || undefined, "aria-required": f.required ? "true" : undefined };
  if (f.kind === "bool" || f.kind === "choice") {
    const values = f.kind === "bool" ? [["true", "true"], ["false", "false"]] : f.choices.map((c, i) => [String(i), json(c)]);
    const blank = f.required ? "choose…" : `default${f.default !== null && f.default !== undefined ? ` (${json(f.default)})` : ""}`;
    const sel = el("select", common, el("option", { value: "" }, blank), ...values.map(([v, label]) => el("option", { value: v }, label)));
    return sel;
  }
  const multi = ["list", "object", "json", "variadic"].includes(f.kind);
  const attrs = { ...common, spellcheck: "false" };
  if (f.kind === "int") attrs.inputmode = "numeric";
  if (f.kind === "float") attrs.inputmode = "decimal";
  if (!f.required && f.default !== null && f.default !== undefined) attrs.placeholder = `default: ${json(f.default)}`;
  else if (!f.required && f.kind !== "variadic" && f.param !== "var_keyword") attrs.placeholder = "optional";
  return multi ? el("textarea", { ...attrs, rows: "1", class: "mono" }) : el("input", attrs);
}

function renderFields() {
  const t = current();
  $("#task-signature").textContent = t ? signatureText(t) : "";
  $("#task-doc").textContent = (t && t.doc) || "";
  fields = fieldsOf(t && t.params ? t : null);
  const box = $("#arg-inputs");
  box.replaceChildren(...fields.map((f) => {
    const id = `arg-${f.name}`;
    const label = f.label || (f.kind === "variadic" ? `*${f.name}` : f.param === "var_keyword" ? `**${f.name}` : f.name);
    const type = f.type && !f.label ? el("span", { class: "type" }, f.type) : null;
    return el("div", { class: "field", "data-field-for": f.name },
      el("div", { class: "field-head" }, el("label", { for: id }, label), type,
        f.required ? el("span", { class: "req" }, "required") : ""),
      input(f),
      el("p", { class: "hint muted", id: `${id}-hint` }, hint(f)),
      el("p", { class: "field-error", id: `${id}-error`, role: "alert" }));
  }));
  const retries = $("#opt-retries");
  retries.placeholder = t && t.max_retries !== null && t.max_retries !== undefined ? `task's own: ${t.max_retries}` : "task's default";
}

function values() {
  const out = {};
  for (const n of $$("#arg-inputs [data-arg]")) out[n.dataset.arg] = n.value;
  return out;
}

function showError(id, message) {
  const n = document.getElementById(id);
  const err = document.getElementById(`${id}-error`);
  if (err) err.textContent = message ? `${n.closest(".field") ? n.dataset.arg + " " : ""}${message}` : "";
  n.setAttribute("aria-invalid", message ? "true" : "false");
  n.setCustomValidity(message || "");
}

// One field as it is typed: its own rule only (required-ness is checked on submit).
function checkField(n) {
  const f = fields.find((x) => x.name === n.dataset.arg);
  if (!f) return;
  const r = collect([{ ...f, required: false }], { [f.name]: n.value });
  showError(n.id, r.errors ? r.errors[f.name] : "");
}

const OPTIONS = [
  ["opt-retries", "max_retries", (v) => parseField("int", v), (x) => (x < 0 || x > limits.max_retries ? `must be from 0 to ${limits.max_retries}` : "")],
  ["opt-timeout", "timeout", (v) => parseField("float", v), (x) => (x <= 0 || x > limits.timeout ? `must be above 0 and at most ${limits.timeout} s` : "")],
  ["opt-delay", "delay", (v) => parseField("float", v), (x) => (x < 0 || x > limits.delay ? `must be from 0 to ${limits.delay} s` : "")],
  ["opt-idempotency", "idempotency_key", (v) => parseField("str", v.trim()), (x) => (x.length > limits.key_length ? `is longer than ${limits.key_length} characters` : "")],
  ["opt-key", "key", (v) => parseField("str", v.trim()), (x) => (x.length > limits.key_length ? `is longer than ${limits.key_length} characters` : "")],
];
function options() {
  const body = {}, errors = {};
  for (const [id, name, parse, bound] of OPTIONS) {
    const r = parse($(`#${id}`).value);
    let value = r.value;
    if (name === "delay" && !r.error && !r.empty && value !== null) value *= Number($("#opt-delay-unit").value);
    const why = r.error || (r.empty || value === null ? "" : bound(value));
    if (why) errors[id] = why;
    else if (!r.empty && value !== null && value !== "") body[name] = value;
  }
  return { body, errors };
}

export async function loadTaskTypes() {
  taskTypes = await api("/api/task-types");
  const sel = $("#task-type");
  const was = sel.value;
  sel.replaceChildren(...taskTypes.map((t) => el("option", { value: t.name }, t.name)));
  if (!taskTypes.length) sel.append(el("option", { value: "" }, "no worker alive"));
  if (was && taskTypes.some((t) => t.name === was)) sel.value = was;
  if (!fields.length || was !== sel.value) renderFields();
  return taskTypes;
}
export const knownTaskTypes = () => taskTypes;

function renderSubmitted(t) {
  $("#submit-result").replaceChildren(el("dl", { class: "kv", id: "submitted" },
    el("dt", {}, "id"), el("dd", { class: "mono" }, el("a", { href: link("tasks", t.id), "data-field": "id" }, t.id)),
    el("dt", {}, "status"), el("dd", { "data-field": "status" }, badge(t.status)),
    el("dt", {}, "result"), el("dd", { class: "mono", "data-field": "result" }, t.status === "success" ? json(t.result) : (t.error || "–"))));
}

async function pollTask(id) {
  for (let i = 0; i < 600 && watching === id; i++) {
    try {
      const t = await api(`/api/tasks/${encodeURIComponent(id)}`);
      renderSubmitted(t);
      if (terminal.has(t.status)) return;
    } catch (err) { if (!(err instanceof ApiError && (err.status === 404 || err.network))) return; }
    await new Promise((r) => setTimeout(r, i < 20 ? 100 : 500));
  }
}

export function initSubmit() {
  $("#task-type").addEventListener("change", renderFields);
  $("#arg-inputs").addEventListener("input", (e) => { if (e.target.dataset.arg) checkField(e.target); });
  $("#arg-inputs").addEventListener("change", (e) => { if (e.target.dataset.arg) checkField(e.target); });
  for (const [id] of OPTIONS) $(`#${id}`).addEventListener("input", () => { const { errors } = options(); showError(id, errors[id] || ""); });
  $("#opt-delay-unit").addEventListener("change", () => { const { errors } = options(); showError("opt-delay", errors["opt-delay"] || ""); });

  $("#submit-form").addEventListener("submit", async (e) => {
    e.preventDefault();
    const out = $("#submit-result");
    const task = $("#task-type").value;
    const r = collect(fields, values());
    const opts = options();
    for (const f of fields) showError(`arg-${f.name}`, (r.errors && r.errors[f.name]) || "");
    for (const [id] of OPTIONS) showError(id, opts.errors[id] || "");
    const bad = [...Object.keys(r.errors || {}).map((n) => `arg-${n}`), ...Object.keys(opts.errors)];
    if (!task) { out.replaceChildren(el("p", { class: "error", role: "alert" }, "No task type: start a worker first.")); return; }
    if (bad.length) {
      if (Object.keys(opts.errors).length) $("#options").open = true;
      out.replaceChildren(el("p", { class: "error", role: "alert" }, "Fix the fields marked above."));
      document.getElementById(bad[0]).focus();
      return;
    }
    const body = { task, args: r.args, ...(Object.keys(r.kwargs).length ? { kwargs: r.kwargs } : {}), ...opts.body };
    $("#submit-button").disabled = true;
    try {
      const res = await api("/api/tasks", { method: "POST", body });
      watching = res.id;
      renderSubmitted({ id: res.id, status: res.status, task });
      pollTask(res.id);
    } catch (err) {
      out.replaceChildren(el("p", { class: "error", role: "alert" }, `${err.status || ""} ${err.message}`.trim()));
    } finally { $("#submit-button").disabled = false; }
  });
}
