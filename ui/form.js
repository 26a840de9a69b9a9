// From a task's structured signature (GET /api/task-types) to typed inputs, and from what was
// typed to {args, kwargs}: pure functions, no DOM, so each rule is checked on its own.

// What an annotation asks for: int, float, bool, str, list, object, choice (Literal) or json (anything).
export function fieldKind(type) {
  let t = (type || "").trim().replace(/^typing\./, "");
  let nullable = false;
  const opt = /^Optional\[(.*)\]$/.exec(t);
  if (opt) { t = opt[1].trim(); nullable = true; }
  const parts = splitTop(t, "|").map((p) => p.trim()).filter((p) => {
    if (p === "None" || p === "NoneType") { nullable = true; return false; }
    return true;
  });
  if (parts.length !== 1) return { kind: "json", nullable };
  const base = parts[0];
  const lit = /^Literal\[(.*)\]$/.exec(base);
  if (lit) {
    const choices = splitTop(lit[1], ",").map((c) => pyLiteral(c.trim()));
    if (choices.every((c) => c !== undefined)) return { kind: "choice", choices, nullable };
  }
  const head = base.split("[")[0].replace(/^(typing|collections\.abc)\./, "");
  if (head === "int") return { kind: "int", nullable };
  if (head === "float") return { kind: "float", nullable };
  if (head === "bool") return { kind: "bool", nullable };
  if (head === "str") return { kind: "str", nullable };
  if (/^(list|List|tuple|Tuple|set|Set|frozenset|FrozenSet|Sequence|MutableSequence|Iterable|Collection)$/.test(head)) return { kind: "list", nullable };
  if (/^(dict|Dict|Mapping|MutableMapping)$/.test(head)) return { kind: "object", nullable };
  return { kind: "json", nullable };
}

// Split on sep outside brackets and quotes: "dict[str, int] | None" on "|".
function splitTop(text, sep) {
  const out = [];
  let depth = 0, quote = null, cur = "";
  for (const ch of text) {
    if (quote) { if (ch === quote) quote = null; cur += ch; continue; }
    if (ch === "'" || ch === '"') { quote = ch; cur += ch; continue; }
    if (ch === "[" || ch === "(") depth++;
    if (ch === "]" || ch === ")") depth--;
    if (ch === sep && depth === 0) { out.push(cur); cur = ""; continue; }
    cur += ch;
  }
  if (cur.trim()) out.push(cur);
  return out;
}

// A Python literal as written in Literal[...]: 'a', "b", 3, True, None.
function pyLiteral(s) {
  if (/^'.*'$/.test(s)) return s.slice(1, -1);
  if (/^".*"$/.test(s)) return s.slice(1, -1);
  if (s === "True") return true;
  if (s === "False") return false;
  if (s === "None") return null;
  if (/^-?\d+(\.\d+)?$/.test(s)) return Number(s);
  return undefined;
}

const typeName = { int: "a whole number", float: "a number", bool: "true or false", list: "a JSON list", object: "a JSON object" };

// The value typed for one parameter: {empty} (nothing typed), {value}, or {error}.
export function parseField(kind, text, { choices = [] } = {}) {
  const raw = text ?? "";
  const v = raw.trim();
  if (kind === "str") {
    if (raw === "") return { empty: true };
    return { value: raw === '""' ? "" : raw };  // typed "" sends an empty string
  }
  if (v === "") return { empty: true };
  if (kind === "int" || kind === "float") {
    if (v === "None" || v === "null") return { value: null };
    const n = Number(v);
    if (!/^[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?$/.test(v) || !Number.isFinite(n)) return { error: `must be ${typeName[kind]}, not ${JSON.stringify(v)}` };
    if (kind === "int" && !Number.isInteger(n)) return { error: `must be a whole number, not ${v}` };
    return { value: n };
  }
  if (kind === "bool") {
    if (v === "true") return { value: true };
    if (v === "false") return { value: false };
    if (v === "null") return { value: null };
    return { error: "must be true or false" };
  }
  if (kind === "choice") {
    const i = Number(v);
    if (!Number.isInteger(i) || i < 0 || i >= choices.length) return { error: "choose one of the values" };
    return { value: choices[i] };
  }
  let parsed;
  try { parsed = JSON.parse(v); }
  catch (err) {
    if (kind === "json" && !/^[[{"]/.test(v)) return { value: raw };  // plain text: a string
    return { error: `is not valid JSON (${err.message.replace(/^JSON\.parse: /, "")})` };
  }
  if (kind === "list" && !Array.isArray(parsed) && parsed !== null) return { error: "must be a JSON list, e.g. [1, 2]" };
  if (kind === "object" && (parsed === null || typeof parsed !== "object" || Array.isArray(parsed))) return { error: 'must be a JSON object, e.g. {"key": 1}' };
  return { value: parsed };
}

// The extra positional values of *args: a JSON list (spread), one JSON value, or plain values
// separated by commas ("1, 2, x"). Text that looks like JSON is never split on its commas.
export function parseVariadic(text) {
  const v = (text ?? "").trim();
  if (v === "") return { value: [] };
  try {
    const parsed = JSON.parse(v);
    return { value: Array.isArray(parsed) ? parsed : [parsed] };
  } catch (err) {
    if (/[[\]{}"]/.test(v)) return { error: `is not valid JSON (${err.message})` };
    return { value: v.split(",").map((x) => x.trim()).filter((x) => x !== "").map((x) => {
      try { return JSON.parse(x); } catch { return x; }
    }) };
  }
}

// The inputs a task type needs, in order; without a signature: one JSON list and one JSON object.
export function fieldsOf(taskType) {
  const ps = taskType && taskType.params;
  if (!ps) return [{ name: "args", kind: "variadic", param: "var_positional", required: false, label: "Arguments (JSON list)" },
                   { name: "kwargs", kind: "object", param: "var_keyword", required: false, label: "Keyword arguments (JSON object)" }];
  return ps.map((p) => {
    if (p.kind === "var_positional") return { name: p.name, kind: "variadic", param: p.kind, required: false, type: p.type };
    if (p.kind === "var_keyword") return { name: p.name, kind: "object", param: p.kind, required: false, type: p.type };
    const k = fieldKind(p.type);
    return { name: p.name, kind: k.kind, choices: k.choices, nullable: k.nullable, param: p.kind, required: p.required,
             default: p.default, type: p.type };
  });
}

// The signature as the source reads: add(a: float, b: float) -> float (never quoted types).
export function signatureText(taskType) {
  if (!taskType) return "";
  if (!taskType.params) return taskType.signature || taskType.name;
  const parts = [];
  let star = false;
  const lastPositionalOnly = taskType.params.map((p) => p.kind).lastIndexOf("positional_only");
  taskType.params.forEach((p, i) => {
    const ann = p.type ? `: ${p.type}` : "";
    if (p.kind === "var_positional") { parts.push(`*${p.name}${ann}`); star = true; return; }
    if (p.kind === "var_keyword") { parts.push(`**${p.name}${ann}`); return; }
    if (p.kind === "keyword_only" && !star) { parts.push("*"); star = true; }
    const dflt = p.required ? "" : ` = ${p.default === null || p.default === undefined ? "None" : JSON.stringify(p.default)}`;
    parts.push(`${p.name}${ann}${dflt}`);
    if (i === lastPositionalOnly) parts.push("/");
  });
  return `${taskType.name}(${parts.join(", ")})${taskType.returns ? ` -> ${taskType.returns}` : ""}`;
}

// {args, kwargs} from what was typed (values: name -> text), or {errors: {name: message}}. An
// empty optional field is left out (the function's default applies); positional parameters after
// one left out go by keyword; a required one left empty is an error.
export function collect(fields, values) {
  const args = [], kwargs = {}, errors = {};
  let skipped = null;  // the first positional parameter left out
  for (const f of fields) {
    const text = values[f.name] ?? "";
    if (f.kind === "variadic") {
      const r = parseVariadic(text);
      if (r.error) { errors[f.name] = r.error; continue; }
      if (r.value.length && skipped) { errors[skipped] = `give ${skipped} too: the extra values of ${f.name} come after it`; continue; }
      args.push(...r.value);
      continue;
    }
    const r = parseField(f.kind, text, { choices: f.choices });
    if (r.error) { errors[f.name] = r.error; continue; }
    if (f.param === "var_keyword") {
      if (r.empty) continue;
      for (const [k, v] of Object.entries(r.value)) {
        if (k in kwargs) errors[f.name] = `${k} is given twice`; else kwargs[k] = v;
      }
      continue;
    }
    if (r.empty) {
      if (f.required) errors[f.name] = "is required";
      else if (f.param !== "keyword_only" && !skipped) skipped = f.name;
      continue;
    }
    if (f.param === "keyword_only") kwargs[f.name] = r.value;
    else if (!skipped) args.push(r.value);
    else if (f.param === "positional_only") errors[skipped] = `give ${skipped} too: ${f.name} comes after it and can only be given by position`;
    else kwargs[f.name] = r.value;
  }
  return Object.keys(errors).length ? { errors } : { args, kwargs };
}
