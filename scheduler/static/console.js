// The operator console: polls the admin overview and draws tiers, nodes and jobs.
"use strict";
const POLL_MS = 1000;
const $ = (sel) => document.querySelector(sel);

function key() { return sessionStorage.getItem("toonzAdminKey") || ""; }

function cell(text, cls) {
  const td = document.createElement("td");
  if (cls) td.className = cls;
  td.textContent = text == null ? "" : String(text);
  return td;
}

function badge(state) {
  const td = document.createElement("td");
  const span = document.createElement("span");
  span.className = "state " + state;
  span.textContent = state;
  td.appendChild(span);
  return td;
}

function fill(id, rows, render) {
  const body = $(id + " tbody");
  body.replaceChildren(...rows.map((row) => {
    const tr = document.createElement("tr");
    tr.append(...render(row));
    return tr;
  }));
}

function draw(data) {
  fill("#tiers", data.tiers, (t) => [cell(t.tier), cell(t.depth), cell(t.oldest_wait_s + " s")]);
  fill("#nodes", data.nodes, (n) => [cell(n.node), badge(n.state), cell(n.job), cell(n.cores),
                                 cell((n.memory_mb / 1024).toFixed(1) + " GiB"), cell(n.last_seen_s_ago + " s ago")]);
  fill("#jobs", data.jobs, (j) => {
    const bar = document.createElement("td");
    const p = document.createElement("progress");
    p.max = 1; p.value = j.progress;
    bar.appendChild(p);
    return [cell(j.job_id), cell(j.tenant), cell(j.tier), cell(j.quality), badge(j.state), bar,
            cell(j.attempts), cell(j.node), cell(j.error, "error")];
  });
  $("#status").textContent = `${data.nodes.length} node(s) · ${data.leases} lease(s) · updated ` +
    new Date(data.time * 1000).toLocaleTimeString();
}

async function poll() {
  try {
    const resp = await fetch("/v1/admin/overview", { headers: { Authorization: "Bearer " + key() } });
    if (resp.status === 401 || resp.status === 403) { showLogin("that key is not an admin key"); return; }
    draw(await resp.json());
  } catch (err) {
    $("#status").textContent = "scheduler unreachable: " + err;
  }
  setTimeout(poll, POLL_MS);
}

function showLogin(message) {
  $("#board").hidden = true;
  $("#login").hidden = false;
  $("#status").textContent = message || "not signed in";
}

$("#login").addEventListener("submit", (ev) => {
  ev.preventDefault();
  sessionStorage.setItem("toonzAdminKey", $("#key").value.trim());
  $("#login").hidden = true;
  $("#board").hidden = false;
  poll();
});

// `/console#key=…` signs in once; the key moves to sessionStorage and leaves the address bar.
const fragment = new URLSearchParams(location.hash.slice(1));
if (fragment.get("key")) {
  sessionStorage.setItem("toonzAdminKey", fragment.get("key"));
  history.replaceState(null, "", location.pathname);
}

if (key()) { $("#board").hidden = false; poll(); } else { showLogin(); }
