// The operator console. Live: a console session opens the Server-Sent Events stream
// (/v1/admin/stream); if the stream cannot be had, it polls /v1/admin/overview instead.
// Every action is a call to the admin API; the audit log shows what operators did.
"use strict";
const POLL_MS = 1000;            // polling fallback: overview interval
const LIVE_RETRY_MS = 30000;     // polling fallback: how often to try the stream again
const STREAM_ERRORS_MAX = 3;     // stream errors without an overview before falling back
const CHART_WINDOW_S = 3600;
const PRESS_HOLD_MS = 1500;      // longest a held mouse button holds back a redraw
const ACTIVE = ["queued", "leased", "running", "cancel_requested"];
const $ = (sel) => document.querySelector(sel);

const app = { mode: "off", source: null, pollTimer: null, liveTimer: null, streamErrors: 0,
              overview: null, points: [], polls: 0, pressedAt: 0 };

function key() { return sessionStorage.getItem("toonzAdminKey") || ""; }

// ---- the admin API ----------------------------------------------------------
async function api(method, path, body) {
  const headers = { Authorization: "Bearer " + key() };
  if (body !== undefined) headers["Content-Type"] = "application/json";
  const resp = await fetch(path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
  if (resp.status === 401 || resp.status === 403) {
    sessionStorage.removeItem("toonzAdminKey");  // signed out: nothing polls with a bad key
    showLogin("that key is not an admin key");
  }
  const type = resp.headers.get("Content-Type") || "";
  const data = type.includes("json") ? await resp.json() : await resp.text();
  if (!resp.ok) {
    const err = new Error(data && data.error ? data.error.message : "HTTP " + resp.status);
    err.code = data && data.error ? data.error.code : String(resp.status);
    throw err;
  }
  return data;
}

function notice(text, isError) {
  const el = $("#notice");
  el.textContent = text;
  el.className = isError ? "error" : "";
  el.hidden = false;
  clearTimeout(notice.timer);
  notice.timer = setTimeout(() => { el.hidden = true; }, isError ? 8000 : 4000);
}

// ---- live stream, polling fallback ----------------------------------------------
function setMode(mode, text) {
  app.mode = mode;
  const pill = $("#conn");
  pill.className = "pill " + mode;
  pill.textContent = mode === "live" ? "live" : mode === "polling" ? "polling" : "offline";
  if (text) $("#status").textContent = text;
}

async function startLive() {
  stopLive();
  if (typeof window.EventSource !== "function") { startPolling("this browser has no EventSource"); return; }
  let session;
  try {
    session = await api("POST", "/v1/admin/session");
  } catch (err) {
    if (key()) startPolling("no console session: " + err.message);
    return;
  }
  const es = new EventSource("/v1/admin/stream?token=" + encodeURIComponent(session.token));
  app.source = es;
  app.streamErrors = 0;
  es.addEventListener("overview", (ev) => {
    app.streamErrors = 0;
    if (app.mode !== "live") { stopPolling(); setMode("live"); }
    drawOverview(JSON.parse(ev.data));
  });
  es.addEventListener("audit", (ev) => drawAudit(JSON.parse(ev.data).entries));
  es.addEventListener("throughput", (ev) => { const d = JSON.parse(ev.data); app.points = d.points;
                                              app.interval = d.interval_s; drawChart(); });
  es.addEventListener("unavailable", (ev) => setMode("off", JSON.parse(ev.data).message));
  es.addEventListener("expired", () => startLive());  // a fresh session, a fresh stream
  es.onerror = () => {
    app.streamErrors += 1;
    if (es.readyState === EventSource.CLOSED || app.streamErrors >= STREAM_ERRORS_MAX) {
      startPolling("live stream unavailable; polling");
    }
  };
}

function stopLive() {
  if (app.source) { app.source.close(); app.source = null; }
}

function startPolling(why) {
  stopLive();
  stopPolling();
  if (!key()) return;
  setMode("polling", why);
  poll();
  app.liveTimer = setTimeout(startLive, LIVE_RETRY_MS);
}

function stopPolling() {
  clearTimeout(app.pollTimer);
  clearTimeout(app.liveTimer);
  app.pollTimer = app.liveTimer = null;
}

async function poll() {
  try {
    drawOverview(await api("GET", "/v1/admin/overview"));
    if (app.polls % 5 === 0) drawAudit((await api("GET", "/v1/admin/audit?limit=50")).entries);
    if (app.polls % 10 === 0) {
      const d = await api("GET", "/v1/admin/throughput");
      app.points = d.points; app.interval = d.interval_s; drawChart();
    }
    app.polls += 1;
    if (app.mode !== "polling") setMode("polling");
  } catch (err) {
    setMode("off", "scheduler unreachable: " + err.message);
  }
  if (app.mode !== "live" && key()) app.pollTimer = setTimeout(poll, POLL_MS);
}

// ---- drawing --------------------------------------------------------------
function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k === "dataset") Object.assign(node.dataset, v); else node.setAttribute(k, v === true ? "" : v);
  }
  node.append(...children.filter((c) => c !== null && c !== undefined).map((c) => (c instanceof Node ? c : String(c))));
  return node;
}

const td = (text, cls, title) => el("td", { class: cls, title }, text === null || text === undefined ? "" : text);
const badge = (state, title) => el("td", {}, el("span", { class: "state " + state, title }, state));
const button = (label, action, data, cls) =>
  el("button", { type: "button", class: "small " + (cls || ""), dataset: { action, ...data } }, label);

function fill(id, rows, render, emptyText, columns) {
  const body = $(id + " tbody");
  if (!rows.length) {
    body.replaceChildren(el("tr", {}, el("td", { class: "empty", colspan: columns }, emptyText)));
    return;
  }
  body.replaceChildren(...rows.map((row) => el("tr", {}, ...render(row))));
}

function duration(s) {
  if (s === null || s === undefined) return "–";
  if (s < 60) return s.toFixed(s < 10 ? 1 : 0) + " s";
  if (s < 3600) return Math.floor(s / 60) + " min " + Math.round(s % 60) + " s";
  return Math.floor(s / 3600) + " h " + Math.round((s % 3600) / 60) + " min";
}

function ago(ts, now) { return duration(Math.max(0, now - ts)) + " ago"; }

function drawOverview(data) {
  app.overview = data;
  // A redraw between a button's press and release would swallow the click: wait for it.
  if (Date.now() - app.pressedAt < PRESS_HOLD_MS) return;
  fill("#tiers", data.tiers, (t) => [
    td(t.tier), td(t.depth, "num"), td(t.depth ? duration(t.oldest_wait_s) : "–", "num"),
    td(Math.round(t.backlog_frames) + " fr", "num"),
    td(t.paused ? "paused" : !t.depth ? "–" : t.eta_s === null ? "no nodes" : duration(t.eta_s), "num"),
    el("td", {}, t.paused ? button("Resume", "resume", { tier: t.tier }) : button("Pause", "pause", { tier: t.tier }, "quiet")),
  ], "no tiers", 6);

  fill("#nodes", data.nodes, (n) => {
    const facts = Object.entries(n.facts || {}).filter(([k]) => ["host", "pid", "cpu_pct", "gpu", "mem_used_mb"].includes(k));
    return [
      td(n.node, "mono"), badge(n.state, n.drain_requested ? "drain requested" : undefined),
      td(n.facts && n.facts.slots ? n.facts.slots : (n.job ? "1/1" : "0/1")), td(n.job || "–", "mono"),
      td(n.fps === null ? "–" : n.fps.toFixed(1), "num"), td(n.frames_rendered, "num"), td(n.cores, "num"),
      td((n.memory_mb / 1024).toFixed(1) + " GiB", "num"),
      td(facts.map(([k, v]) => k + " " + v).join(" · "), "facts"),
      td(n.last_seen_s_ago.toFixed(1) + " s ago", "num"),
      el("td", {}, n.drain_requested ? button("Undrain", "undrain", { node: n.node }, "quiet")
                                     : button("Drain", "drain", { node: n.node }, "quiet")),
    ];
  }, "no nodes have signed in", 11);
  const speeds = data.nodes.map((n) => n.fps).filter((f) => f).sort((a, b) => a - b);
  $("#node-count").textContent = `${data.nodes_live} of ${data.nodes.length} taking work` +
    (speeds.length ? ` · median ${speeds[Math.floor(speeds.length / 2)].toFixed(1)} frames/s` : "");

  // Typing a priority: leave the table alone until the field loses focus.
  if (!$("#jobs tbody").contains(document.activeElement)) drawJobs();
  fill("#failures", data.failures, (j) => [
    td(j.job_id, "mono"), td(j.tenant), td(j.node || "–", "mono"), td(j.attempts, "num"), td(j.error, "error"),
    el("td", {}, button("Retry", "retry", { job: j.job_id }), button("Log", "log", { job: j.job_id }, "quiet")),
  ], "no failed jobs", 6);
  $("#status").textContent = `${data.nodes_live} node(s) taking work · ${data.leases} lease(s) · updated ` +
    new Date(data.time * 1000).toLocaleTimeString();
}

function drawJobs() {
  const data = app.overview;
  if (!data) return;
  const filter = $("#job-filter").value;
  const words = $("#job-search").value.trim().toLowerCase().split(/\s+/).filter(Boolean);
  const jobs = data.jobs.filter((j) => {
    if (filter === "active" ? !ACTIVE.includes(j.state) : filter && j.state !== filter) return false;
    const hay = [j.job_id, j.tenant, j.tier, j.node || "", j.quality, j.state].join(" ").toLowerCase();
    return words.every((w) => hay.includes(w));
  });
  $("#job-count").textContent = `${jobs.length} of ${data.jobs.length} recent`;
  fill("#jobs", jobs, (j) => {
    const actions = [];
    if (ACTIVE.includes(j.state) && j.state !== "cancel_requested") actions.push(button("Cancel", "cancel", { job: j.job_id }, "danger"));
    if (j.state === "failed" || j.state === "canceled") actions.push(button("Retry", "retry", { job: j.job_id }));
    // A node uploads the log when an attempt ends: a running first attempt has none yet.
    if (j.attempts > 1 || (j.attempts === 1 && !ACTIVE.includes(j.state))) {
      actions.push(button("Log", "log", { job: j.job_id }, "quiet"));
    }
    const prio = j.state === "queued"
      ? el("td", { class: "num" }, el("input", { class: "prio", type: "number", min: 0, max: 100, value: j.priority,
                                                  "aria-label": "priority", dataset: { job: j.job_id } }))
      : td(j.priority, "num");
    return [
      td(j.job_id, "mono"), td(j.tenant), td(j.tier), td(j.quality), badge(j.state, j.error || undefined),
      el("td", {}, el("progress", { max: 1, value: j.progress }), " " + Math.round(j.progress * 100) + "%"),
      td(j.attempts, "num"), prio, td(j.node || "–", "mono"), td(ago(j.created_at, data.time)),
      el("td", {}, ...actions),
    ];
  }, data.jobs.length ? "no job matches" : "no jobs yet", 11);
}

function drawAudit(entries) {
  fill("#audit", entries, (e) => [
    td(new Date(e.time * 1000).toLocaleTimeString()), td(e.admin), td(e.action), td(e.target, "mono"), td(e.outcome),
  ], "no actions yet", 5);
}

// Frames/s over the last hour as an inline SVG: one bar per sample (a sample is written
// only when frames were rendered, so a gap is an idle farm), three grid lines.
function drawChart() {
  const box = $("#chart");
  const w = Math.max(box.clientWidth, 200), h = 150, left = 34, right = 6, bottom = 18, top = 8;
  const now = Date.now() / 1000, interval = app.interval || 10;
  const pts = app.points.filter((p) => p[0] >= now - CHART_WINDOW_S);
  const peak = pts.reduce((m, p) => Math.max(m, p[1]), 0);
  const last = pts[pts.length - 1];
  $("#tp-now").textContent = last && now - last[0] <= 2 * interval ? last[1].toFixed(1) : "0.0";
  $("#tp-total").textContent = pts.reduce((s, p) => s + p[2], 0).toLocaleString();
  $("#tp-peak").textContent = pts.length ? peak.toFixed(1) : "–";
  const ymax = niceCeil(peak * 1.1);
  const x = (t) => left + ((t - (now - CHART_WINDOW_S)) / CHART_WINDOW_S) * (w - left - right);
  const y = (v) => top + (1 - v / ymax) * (h - top - bottom);
  const NS = "http://www.w3.org/2000/svg";
  const svg = document.createElementNS(NS, "svg");
  svg.setAttribute("viewBox", `0 0 ${w} ${h}`);
  const add = (tag, attrs, text) => {
    const n = document.createElementNS(NS, tag);
    for (const [k, v] of Object.entries(attrs)) n.setAttribute(k, v);
    if (text !== undefined) n.textContent = text;
    svg.appendChild(n);
    return n;
  };
  for (const v of [0, ymax / 2, ymax]) {
    add("line", { class: "grid", x1: left, x2: w - right, y1: y(v), y2: y(v) });
    add("text", { x: left - 4, y: y(v) + 4, "text-anchor": "end" }, Number.isInteger(v) ? v : v.toFixed(1));
  }
  [["60 min ago", now - 3600, "start"], ["30 min ago", now - 1800, "middle"], ["now", now, "end"]]
    .forEach(([label, t, anchor]) => add("text", { x: x(t), y: h - 4, "text-anchor": anchor }, label));
  const barW = Math.max(3, x(interval) - x(0));
  for (const [t, fps, frames] of pts) {
    const bar = add("rect", { class: "bar", x: (x(t) - barW).toFixed(1), y: y(fps).toFixed(1), width: barW.toFixed(1),
                              height: Math.max(0, y(0) - y(fps)).toFixed(1) });
    const tip = document.createElementNS(NS, "title");
    tip.textContent = `${new Date(t * 1000).toLocaleTimeString()}: ${fps.toFixed(1)} frames/s (${frames} frames)`;
    bar.appendChild(tip);
  }
  if (!pts.length) {
    add("text", { x: (left + w) / 2, y: h / 2, "text-anchor": "middle" }, "no frames rendered in the last hour");
  }
  box.replaceChildren(svg);
}

function niceCeil(v) {
  if (v <= 0) return 1;
  const step = Math.pow(10, Math.floor(Math.log10(v)));
  for (const m of [1, 2, 2.5, 5, 10]) if (m * step >= v) return m * step;
  return 10 * step;
}

// ---- actions ----------------------------------------------------------------
async function act(button) {
  const d = button.dataset;
  const calls = {
    pause: () => api("POST", `/v1/admin/tiers/${d.tier}/pause`).then(() => `tier ${d.tier} paused`),
    resume: () => api("POST", `/v1/admin/tiers/${d.tier}/resume`).then(() => `tier ${d.tier} resumed`),
    drain: () => api("POST", `/v1/admin/nodes/${encodeURIComponent(d.node)}/drain`).then(() => `node ${d.node} draining`),
    undrain: () => api("POST", `/v1/admin/nodes/${encodeURIComponent(d.node)}/undrain`).then(() => `node ${d.node} leasing again`),
    cancel: () => api("POST", `/v1/admin/jobs/${d.job}/cancel`).then((r) => `${d.job}: ${r.state}`),
    retry: () => api("POST", `/v1/admin/jobs/${d.job}/retry`).then((r) => `${d.job}: ${r.state} again`),
    log: () => showLog(d.job),
  };
  button.disabled = true;
  try {
    const message = await calls[d.action]();
    if (message) notice(message);
    if (app.mode !== "live" && d.action !== "log") { clearTimeout(app.pollTimer); poll(); }
  } catch (err) {
    notice(err.message, true);
  } finally {
    button.disabled = false;
  }
}

async function setPriority(input) {
  try {
    const r = await api("POST", `/v1/admin/jobs/${input.dataset.job}/priority`, { priority: Number(input.value) });
    notice(`${input.dataset.job}: priority ${r.priority}`);
    if (app.mode !== "live") { clearTimeout(app.pollTimer); poll(); }
  } catch (err) {
    notice(err.message, true);
  }
  input.blur();
}

async function showLog(jobId) {
  $("#log-title").textContent = "Job log · " + jobId;
  $("#log-text").textContent = "loading…";
  $("#log-dialog").showModal();
  try {
    $("#log-text").textContent = await api("GET", `/v1/admin/jobs/${jobId}/log`);
  } catch (err) {
    $("#log-text").textContent = err.code === "artifact_not_found"
      ? "No log yet: the node uploads it when the attempt ends." : err.message;
  }
  return "";
}

document.addEventListener("mousedown", () => { app.pressedAt = Date.now(); });
document.addEventListener("mouseup", () => { setTimeout(() => { app.pressedAt = 0; }, 0); });
document.addEventListener("click", (ev) => {
  const b = ev.target.closest("button[data-action]");
  if (b) act(b);
});
document.addEventListener("change", (ev) => {
  if (ev.target.matches("input.prio")) setPriority(ev.target);
});
$("#job-filter").addEventListener("change", drawJobs);
$("#job-search").addEventListener("input", drawJobs);
$("#log-close").addEventListener("click", () => $("#log-dialog").close());
window.addEventListener("resize", drawChart);

// ---- signing in ----------------------------------------------------------------
function showLogin(message) {
  stopLive();
  stopPolling();
  $("#board").hidden = true;
  $("#signout").hidden = true;
  $("#login").hidden = false;
  setMode("off", message || "not signed in");
}

function showBoard() {
  $("#login").hidden = true;
  $("#board").hidden = false;
  $("#signout").hidden = false;
  drawChart();
  startLive();
}

$("#login").addEventListener("submit", (ev) => {
  ev.preventDefault();
  sessionStorage.setItem("toonzAdminKey", $("#key").value.trim());
  showBoard();
});
$("#signout").addEventListener("click", () => {
  sessionStorage.removeItem("toonzAdminKey");
  showLogin();
});

// `/console#key=…` signs in once; the key moves to sessionStorage and leaves the address bar.
const fragment = new URLSearchParams(location.hash.slice(1));
if (fragment.get("key")) {
  sessionStorage.setItem("toonzAdminKey", fragment.get("key"));
  history.replaceState(null, "", location.pathname);
}

if (key()) showBoard(); else showLogin();
