// The API reference: reads /openapi.json and draws every operation, grouped by tag, with
// its parameters, request and response schemas, error codes and a curl example.
// No framework and no CDN: the scheduler serves this file as it is.
"use strict";

const METHODS = ["get", "post", "put", "patch", "delete"];
const MAX_DEPTH = 6; // schema nesting drawn; deeper levels are named, not expanded
let SPEC = null;

const esc = (s) => String(s ?? "").replace(/[&<>"']/g, (c) => ({"&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;"}[c]));
const slug = (s) => String(s).toLowerCase().replace(/[^a-z0-9]+/g, "-").replace(/^-|-$/g, "");

// A little Markdown: paragraphs, "- " lists, **bold**, `code`, [text](url).
function md(text) {
  const inline = (s) => esc(s)
    .replace(/`([^`]+)`/g, "<code>$1</code>")
    .replace(/\*\*([^*]+)\*\*/g, "<strong>$1</strong>")
    .replace(/\[([^\]]+)\]\(([^)\s]+)\)/g, '<a href="$2">$1</a>');
  return String(text || "").trim().split(/\n\s*\n/).map((block) => {
    const lines = block.split("\n");
    if (lines.every((l) => /^\s*- /.test(l))) {
      return "<ul>" + lines.map((l) => `<li>${inline(l.replace(/^\s*- /, ""))}</li>`).join("") + "</ul>";
    }
    return `<p>${inline(lines.join(" "))}</p>`;
  }).join("");
}

function deref(obj, seen = 0) {
  if (!obj || typeof obj !== "object" || !obj.$ref || seen > 20) return obj;
  const target = obj.$ref.replace(/^#\//, "").split("/").reduce((o, k) => o && o[k.replace(/~1/g, "/").replace(/~0/g, "~")], SPEC);
  const { $ref, ...rest } = obj;
  return deref({ ...target, ...rest }, seen + 1);
}

const refName = (obj) => (obj && obj.$ref ? obj.$ref.split("/").pop() : "");

// allOf parts merged into one object schema (properties and required lists joined).
function flatten(schema) {
  schema = deref(schema) || {};
  if (!schema.allOf) return schema;
  const out = { ...schema, properties: { ...(schema.properties || {}) }, required: [...(schema.required || [])] };
  delete out.allOf;
  for (const part of schema.allOf.map(flatten)) {
    Object.assign(out.properties, part.properties || {});
    out.required.push(...(part.required || []));
    if (!out.type && part.type) out.type = part.type;
    if (!out.description && part.description) out.description = part.description;
  }
  return out;
}

function typeLabel(raw) {
  const s = flatten(raw);
  const name = refName(raw);
  if (s.const !== undefined) return `<code>${esc(JSON.stringify(s.const))}</code>`;
  if (s.contentSchema) return "JSON: " + (refName(s.contentSchema) ? esc(refName(s.contentSchema)) : typeLabel(s.contentSchema));
  const variants = s.oneOf || s.anyOf;
  if (variants) return variants.map(typeLabel).join(" | ");
  let types = Array.isArray(s.type) ? s.type : [s.type || (s.properties ? "object" : "any")];
  types = types.map((t) => {
    if (t === "array") return "array of " + typeLabel(s.items || {});
    if (t === "object" && s.additionalProperties && typeof s.additionalProperties === "object") {
      return "map of " + typeLabel(s.additionalProperties);
    }
    if (t === "string" && s.format === "binary") return "file";
    if (t === "object" && name) return esc(name);
    return esc(t + (s.format ? ` (${s.format})` : ""));
  });
  return types.join(" | ");
}

function constraints(raw) {
  const s = flatten(raw);
  const out = [];
  if (s.enum) out.push("one of " + s.enum.map((v) => `<code>${esc(v)}</code>`).join(", "));
  if (s.minimum !== undefined || s.maximum !== undefined) out.push(`${s.minimum ?? "…"} to ${s.maximum ?? "…"}`);
  if (s.minLength && s.maxLength) out.push(`${s.minLength} to ${s.maxLength} characters`);
  else if (s.minLength) out.push(`at least ${s.minLength} characters`);
  else if (s.maxLength) out.push(`at most ${s.maxLength} characters`);
  if (s.minItems || s.maxItems) out.push(`${s.minItems ?? 0} to ${s.maxItems ?? "any"} items`);
  if (s.pattern) out.push(`matches <code>${esc(s.pattern)}</code>`);
  if (s.default !== undefined) out.push(`default <code>${esc(JSON.stringify(s.default))}</code>`);
  return out.join("; ");
}

// Rows of a schema's fields; nested objects (and arrays of objects) as indented rows.
function fieldRows(raw, depth = 0) {
  const s = flatten(raw);
  const inner = s.type === "array" || (Array.isArray(s.type) && s.type.includes("array")) ? flatten(s.items || {}) : s;
  const props = inner.properties || {};
  const required = new Set(inner.required || []);
  let rows = "";
  for (const [name, prop] of Object.entries(props)) {
    const p = flatten(prop);
    const about = [md(p.description || "").replace(/^<p>|<\/p>$/g, ""), constraints(prop)].filter(Boolean).join(" · ");
    rows += `<tr><td class="field" style="padding-left:${8 + depth * 18}px"><code>${esc(name)}</code>` +
      `${required.has(name) ? '<span class="req">required</span>' : ""}</td>` +
      `<td class="type">${typeLabel(prop)}</td><td>${about}</td></tr>`;
    // A string holding JSON (an event's data) is drawn as the JSON it holds.
    const child = p.contentSchema ? flatten(p.contentSchema) : p.type === "array" ? flatten(p.items || {}) : p;
    if (child.properties && depth < MAX_DEPTH) rows += fieldRows(p.contentSchema || p, depth + 1);
  }
  return rows;
}

function schemaBlock(raw, label, withHead = true) {
  const s = flatten(raw);
  const rows = fieldRows(raw);
  const head = withHead ? `<div class="schema-head">${label ? esc(label) + " · " : ""}${typeLabel(raw)}</div>` : "";
  const about = s.description && !rows ? md(s.description) : "";
  const table = rows ? `<table class="fields"><thead><tr><th>field</th><th>type</th><th>about</th></tr></thead><tbody>${rows}</tbody></table>` : "";
  return head + about + table;
}

// An example value for a schema: its own example, else one made from its type.
function sample(raw, depth = 0) {
  const s = flatten(raw);
  if (s.example !== undefined) return s.example;
  if (s.examples && s.examples.length) return s.examples[0];
  if (s.const !== undefined) return s.const;
  if (s.enum) return s.enum[0];
  const t = Array.isArray(s.type) ? s.type.find((x) => x !== "null") : s.type;
  if (t === "object" || s.properties) {
    const out = {};
    for (const name of s.required || Object.keys(s.properties || {}).slice(0, 2)) {
      if (depth < 4 && s.properties && s.properties[name]) out[name] = sample(s.properties[name], depth + 1);
    }
    return out;
  }
  if (t === "array") return depth < 4 ? [sample(s.items || {}, depth + 1)] : [];
  if (t === "integer" || t === "number") return s.minimum ?? 1;
  if (t === "boolean") return true;
  return s.format === "uri" ? "https://example.com/" : "text";
}

function curl(path, method, op) {
  const params = (op.parameters || []).map(deref);
  let url = path.replace(/\{([^}]+)\}/g, (_, name) => {
    const p = params.find((x) => x.in === "path" && x.name === name);
    const v = p ? sample(p.schema || {}) : name;
    return encodeURIComponent(String(v));
  });
  const lines = [];
  const content = op.requestBody ? deref(op.requestBody).content || {} : {};
  const responses = op.responses || {};
  const ok = Object.keys(responses).find((c) => c.startsWith("2"));
  const okTypes = Object.keys((deref(responses[ok]) || {}).content || {});
  const streams = okTypes.includes("text/event-stream");
  const file = okTypes.some((t) => /^(video|image)\/|text\/csv/.test(t));
  let cmd = "curl" + (streams ? " -N" : "") + (file ? " -OJ" : "") + (method !== "get" && !op.requestBody ? ` -X ${method.toUpperCase()}` : "");
  if (method !== "get" && method !== "post" && op.requestBody) cmd += ` -X ${method.toUpperCase()}`;
  lines.push(cmd + ` "${location.origin}${url}"`);
  if (!(op.security && op.security.length === 0)) {
    lines.push(`-H "Authorization: Bearer $${path.startsWith("/v1/admin/") ? "TOONZ_ADMIN_KEY" : "TOONZ_API_KEY"}"`);
  }
  if (params.some((p) => p.in === "header" && p.name === "Idempotency-Key")) lines.push(`-H "Idempotency-Key: $(uuidgen)"`);
  if (content["multipart/form-data"]) {
    const s = flatten(content["multipart/form-data"].schema);
    for (const [name, prop] of Object.entries(s.properties || {})) {
      const p = flatten(prop);
      if ((s.required || []).includes(name) || ["quality", "transcript"].includes(name)) {
        lines.push(p.format === "binary" ? `-F ${name}=@narration.wav` : `-F ${name}='${String(sample(prop)).replace(/'/g, "")}'`);
      }
    }
  } else if (content["application/json"]) {
    const media = content["application/json"];
    const body = media.example !== undefined ? media.example : sample(media.schema || {});
    lines.push(`-H "Content-Type: application/json"`, `-d '${JSON.stringify(body).replace(/'/g, "'\\''")}'`);
  }
  return lines.join(" \\\n     ");
}

function statusClass(code) {
  return code.startsWith("2") ? "ok" : code.startsWith("4") ? "client" : code.startsWith("5") ? "server" : "other";
}

function who(path, op) {
  if (op.security && op.security.length === 0) return '<span class="who public">no key</span>';
  if (path.startsWith("/v1/admin/")) return '<span class="who admin">admin key</span>';
  return '<span class="who tenant">API key</span>';
}

function operation(path, method, op) {
  const id = op.operationId || slug(method + path);
  const params = (op.parameters || []).map(deref);
  let html = `<section class="op" id="${esc(id)}"><h3><span class="method ${method}">${method.toUpperCase()}</span>` +
    `<code class="path">${esc(path)}</code>${who(path, op)}</h3><p class="summary">${esc(op.summary || "")}</p>${md(op.description)}`;
  if (params.length) {
    html += `<h4>Parameters</h4><table class="fields"><thead><tr><th>name</th><th>in</th><th>type</th><th>about</th></tr></thead><tbody>` +
      params.map((p) => `<tr><td class="field"><code>${esc(p.name)}</code>${p.required ? '<span class="req">required</span>' : ""}</td>` +
        `<td>${esc(p.in)}</td><td class="type">${typeLabel(p.schema || {})}</td>` +
        `<td>${[md(p.description).replace(/^<p>|<\/p>$/g, ""), constraints(p.schema || {})].filter(Boolean).join(" · ")}</td></tr>`).join("") +
      "</tbody></table>";
  }
  if (op.requestBody) {
    const body = deref(op.requestBody);
    html += `<h4>Request body${body.required ? "" : " <span class=\"muted\">(optional)</span>"}</h4>`;
    for (const [type, media] of Object.entries(body.content || {})) html += `<div class="media">${schemaBlock(media.schema || {}, type)}</div>`;
  }
  html += "<h4>Responses</h4>";
  for (const [code, raw] of Object.entries(op.responses || {})) {
    const r = deref(raw);
    const media = Object.entries(r.content || {});
    const headers = Object.entries(r.headers || {}).map(([n, h]) => `<code>${esc(n)}</code>`).join(", ");
    const schemas = media.map(([type, m]) => {
      const s = m.itemSchema || m.schema;
      if (!s || refName(s) === "Error") return "";
      return `<details${code.startsWith("2") ? " open" : ""}><summary>${esc(type)}${m.itemSchema ? " (each event)" : ""} · ${typeLabel(s)}</summary>${schemaBlock(s, null, false)}</details>`;
    }).join("");
    html += `<div class="response"><span class="status ${statusClass(code)}">${esc(code)}</span><div class="rbody">` +
      `${md(r.description)}${media.length ? `<div class="muted small">${media.map(([t]) => esc(t)).join(", ")}` +
      `${headers ? " · headers " + headers : ""}</div>` : ""}${schemas}</div></div>`;
  }
  html += `<h4>Example</h4><div class="curl"><button type="button" class="copy">copy</button><pre>${esc(curl(path, method, op))}</pre></div></section>`;
  return html;
}

// Every error code named in a 4xx/5xx response's description, with where it appears.
function errorIndex(ops) {
  const codes = new Map();
  for (const { path, method, op } of ops) {
    for (const [status, raw] of Object.entries(op.responses || {})) {
      if (!/^[45]/.test(status)) continue;
      for (const m of (deref(raw).description || "").matchAll(/`([a-z][a-z_]+)`/g)) {
        const entry = codes.get(m[1]) || { statuses: new Set(), ops: [] };
        entry.statuses.add(status);
        if (!entry.ops.some((o) => o.op === op)) entry.ops.push({ path, method, op });
        codes.set(m[1], entry);
      }
    }
  }
  const rows = [...codes.entries()].sort((a, b) => a[0].localeCompare(b[0])).map(([code, e]) => {
    const where = e.ops.length > 4 ? `${e.ops.length} endpoints` :
      e.ops.map((o) => `<a href="#${esc(o.op.operationId)}">${o.method.toUpperCase()} ${esc(o.path)}</a>`).join(", ");
    return `<tr><td><code>${esc(code)}</code></td><td>${[...e.statuses].sort().join(", ")}</td><td>${where}</td></tr>`;
  }).join("");
  const error = SPEC.components && SPEC.components.schemas && SPEC.components.schemas.Error;
  return `<section class="op" id="errors"><h2>Errors</h2><p>Every error answers JSON of one shape; ` +
    `<code>code</code> is stable, <code>message</code> is for people.</p>` +
    (error ? schemaBlock({ $ref: "#/components/schemas/Error" }) : "") +
    `<table class="fields codes"><thead><tr><th>code</th><th>status</th><th>where</th></tr></thead><tbody>${rows}</tbody></table></section>`;
}

function render(spec) {
  SPEC = spec;
  document.getElementById("oas").textContent = spec.openapi;
  const info = spec.info || {};
  document.title = `${info.title || "API"} · reference`;
  document.getElementById("intro").innerHTML = `<h1>${esc(info.title)} <span class="muted">v${esc(info.version)}</span></h1>` +
    `<p class="lead">${esc(info.summary || "")}</p>${md(info.description)}`;
  const ops = [];
  for (const [path, item] of Object.entries(spec.paths || {})) {
    for (const method of METHODS) if (item[method]) ops.push({ path, method, op: item[method] });
  }
  const tags = (spec.tags || []).map((t) => t.name);
  for (const { op } of ops) for (const t of op.tags || ["other"]) if (!tags.includes(t)) tags.push(t);
  let toc = "", content = "";
  for (const tag of tags) {
    const mine = ops.filter((o) => (o.op.tags || ["other"])[0] === tag);
    if (!mine.length) continue;
    const about = (spec.tags || []).find((t) => t.name === tag);
    toc += `<div class="group"><a class="tag" href="#tag-${slug(tag)}">${esc(tag)}</a>` + mine.map((o) =>
      `<a class="entry" href="#${esc(o.op.operationId)}" data-text="${esc((o.method + " " + o.path + " " + (o.op.summary || "")).toLowerCase())}">` +
      `<span class="method ${o.method}">${o.method.toUpperCase()}</span><span class="p" title="${esc(o.path)}">${esc(o.path)}</span></a>`).join("") + "</div>";
    content += `<section class="tag-section" id="tag-${slug(tag)}"><h2>${esc(tag)}</h2>${md(about && about.description)}` +
      mine.map((o) => operation(o.path, o.method, o.op)).join("") + "</section>";
  }
  toc += `<div class="group"><a class="tag" href="#errors">errors</a></div>`;
  document.getElementById("toc").innerHTML = toc;
  document.getElementById("content").innerHTML = content + errorIndex(ops);
}

document.getElementById("filter").addEventListener("input", (ev) => {
  const q = ev.target.value.trim().toLowerCase();
  for (const a of document.querySelectorAll("#toc a.entry")) a.hidden = q !== "" && !a.dataset.text.includes(q);
  for (const g of document.querySelectorAll("#toc .group")) g.hidden = q !== "" && !g.querySelector("a.entry:not([hidden])");
});

document.addEventListener("click", (ev) => {
  const button = ev.target.closest("button.copy");
  if (!button) return;
  const text = button.parentElement.querySelector("pre").textContent;
  (navigator.clipboard ? navigator.clipboard.writeText(text) : Promise.reject()).then(
    () => { button.textContent = "copied"; }, () => { button.textContent = "select and copy"; });
  setTimeout(() => { button.textContent = "copy"; }, 1500);
});

fetch("/openapi.json").then((r) => {
  if (!r.ok) throw new Error(`/openapi.json answered ${r.status}`);
  return r.json();
}).then((spec) => {
  render(spec);
  if (location.hash) { const el = document.getElementById(location.hash.slice(1)); if (el) el.scrollIntoView(); }
}).catch((err) => {
  document.getElementById("toc").innerHTML = `<p class="error">${esc(err.message)}</p>`;
});
