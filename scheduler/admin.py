"""Admin API for operators (admin keys only) and the console page that reads it.

Every action (cancel, retry, priority, pause or resume a tier, drain a node) that takes
effect lands in the audit log (scheduler/audit.py).
"""

from __future__ import annotations

import time
from dataclasses import asdict
from importlib import resources

import redis
from aiohttp import web

from farm import keys
from farm.errors import Conflict, NotFound
from farm.jobs import Job, looks_like_job_id
from farm.presets import tier as parse_tier
from farm.scheduling import DEFAULT_PRIORITY, queue_score
from scheduler import audit, farmstate, jobctl
from scheduler.auth import principal
from scheduler.context import REDIS, SCRIPTS, STORE
from scheduler.intake import json_object
from scheduler.renders import INPUT_ARTIFACT, LOG_ARTIFACT

RECENT_JOBS = 100  # jobs the overview lists (the console filters and searches them)
FAILURE_SCAN = 500  # most recent jobs looked through for failures
FAILURES_SHOWN = 25
MAX_NODE_ID = 200
RETRYABLE = (b"failed", b"canceled")  # farm/lua/retry.lua checks it again, atomically
STATIC = resources.files("scheduler") / "static"
CONTENT_TYPES = {"html": "text/html", "js": "application/javascript", "css": "text/css"}


# reading ---------------------------------------------------------------------
async def snapshot(r) -> dict:
    """Nodes, tiers (with ETA), recent jobs and recent failures: what the console draws."""
    state = await farmstate.read(r)
    names: dict[str, str] = {}

    async def row(raw: dict) -> dict:
        job = Job.from_redis(raw)
        if job.tenant not in names:
            names[job.tenant] = (await r.hget(keys.tenant(job.tenant), "name") or b"?").decode()
        return {**job.public(), "tenant": names[job.tenant], "tenant_id": job.tenant, "tier": job.tier}

    ids = [i.decode() for i in await r.zrevrange(keys.ALL_JOBS, 0, FAILURE_SCAN - 1)]
    async with r.pipeline(transaction=False) as pipe:
        for job_id in ids[:RECENT_JOBS]:
            pipe.hgetall(keys.job(job_id))
        for job_id in ids:
            pipe.hget(keys.job(job_id), "state")
        replies = await pipe.execute()
    recent, states = replies[:min(len(ids), RECENT_JOBS)], replies[min(len(ids), RECENT_JOBS):]
    jobs = [await row(raw) for raw in recent if raw]
    failed = [i for i, s in zip(ids, states) if s == b"failed"][:FAILURES_SHOWN]
    failures = []
    for job_id in failed:
        raw = await r.hgetall(keys.job(job_id))
        if raw:
            failures.append(await row(raw))
    etas = tier_etas(state)
    return {"time": state.time, "nodes": [asdict(n) for n in state.nodes],
            "tiers": [{**asdict(t), "eta_s": etas[t.tier]} for t in state.tiers],
            "jobs": jobs, "failures": failures, "leases": state.leases,
            "node_fps": round(state.node_fps, 1), "nodes_live": len(state.live_nodes)}


def tier_etas(state: farmstate.FarmState) -> dict[str, float | None]:
    """Seconds until each tier's queue is rendered: its frames and those of the tiers above
    it (they go first) over the live nodes' measured speed. None: paused, or no node."""
    capacity = state.node_fps * len(state.live_nodes)
    above, out = 0.0, {}
    for t in state.tiers:  # strongest first
        if t.paused:
            out[t.tier] = None
            continue
        above += t.backlog_frames
        out[t.tier] = 0.0 if above == 0 else (round(above / capacity, 1) if capacity else None)
    return out


async def overview(request: web.Request) -> web.Response:
    """Nodes, tier queues and the most recent jobs, in one read for the console."""
    await principal(request, role="admin")
    return web.json_response(await snapshot(request.app[REDIS]))


async def job_log(request: web.Request) -> web.StreamResponse:
    """The node's log of a job's latest attempt: header, then every line it logged."""
    await principal(request, role="admin")
    path = request.app[STORE].existing(_job_id(request), LOG_ARTIFACT)
    return web.FileResponse(path, headers={"Content-Type": "text/plain; charset=utf-8"})


# actions ---------------------------------------------------------------------
async def cancel_job(request: web.Request) -> web.Response:
    who = await principal(request, role="admin")
    job_id = _job_id(request)
    if not await request.app[REDIS].exists(keys.job(job_id)):  # else cancel.lua says "ended"
        raise NotFound(f"no render {job_id!r}", code="job_not_found")
    state = await jobctl.cancel(request.app, job_id)
    await audit.record(request.app[REDIS], who, "cancel", job_id, state)
    return web.json_response({"job_id": job_id, "state": state})


async def retry_job(request: web.Request) -> web.Response:
    """Re-queue a failed or canceled job with fresh attempts (farm/lua/retry.lua)."""
    who = await principal(request, role="admin")
    job_id = _job_id(request)
    r = request.app[REDIS]
    state, prio = await r.hmget(keys.job(job_id), "state", "priority")
    if state is None:
        raise NotFound(f"no render {job_id!r}", code="job_not_found")
    if state in RETRYABLE and not request.app[STORE].exists(job_id, INPUT_ARTIFACT):
        raise Conflict(f"render {job_id} has lost its input audio and cannot run again",
                       code="input_missing")
    now_ms = int(time.time() * 1000)
    try:
        await request.app[SCRIPTS]["retry"](args=[job_id, now_ms, queue_score(int(prio or DEFAULT_PRIORITY),
                                                                              now_ms)])
    except redis.ResponseError as exc:
        if str(exc).startswith("NOTRETRYABLE"):
            state = str(exc).split()[-1]
            raise Conflict(f"render {job_id} is {state}; only failed or canceled renders can be "
                           "retried", code="not_retryable") from None
        if str(exc).startswith("NOTFOUND"):
            raise NotFound(f"no render {job_id!r}", code="job_not_found") from None
        raise
    await audit.record(r, who, "retry", job_id, "queued")
    return web.json_response({"job_id": job_id, "state": "queued"})


async def set_priority(request: web.Request) -> web.Response:
    who = await principal(request, role="admin")
    job_id = _job_id(request)
    body = await json_object(request)
    prio = await jobctl.reprioritize(request.app, job_id, body.get("priority"))
    await audit.record(request.app[REDIS], who, "priority", job_id, f"priority {prio}")
    return web.json_response({"job_id": job_id, "priority": prio})


async def pause_tier(request: web.Request) -> web.Response:
    who = await principal(request, role="admin")
    tier = parse_tier(request.match_info["tier"]).value
    action = request.match_info["action"]
    r = request.app[REDIS]
    changed = await (r.sadd if action == "pause" else r.srem)(keys.PAUSED, tier)
    if changed:
        await audit.record(r, who, action, f"tier {tier}", "paused" if action == "pause" else "resumed")
    paused = sorted(t.decode() for t in await r.smembers(keys.PAUSED))
    return web.json_response({"tier": tier, "paused": tier in paused, "paused_tiers": paused})


async def drain_node(request: web.Request) -> web.Response:
    """Set (drain) or clear (undrain) a node's drain flag. The node notices it at its next
    heartbeat or lease loop: it finishes the job in hand and leases nothing more."""
    who = await principal(request, role="admin")
    node_id = request.match_info["node_id"]
    r = request.app[REDIS]
    key = keys.node(node_id)
    if len(node_id) > MAX_NODE_ID or not await r.exists(key):
        raise NotFound(f"no node {node_id!r}", code="node_not_found")
    action = request.match_info["action"]
    if action == "drain":
        changed = await r.hsetnx(key, keys.NODE_DRAIN_FIELD, f"{time.time():.3f}")
    else:
        changed = await r.hdel(key, keys.NODE_DRAIN_FIELD)
    if changed:
        await audit.record(r, who, action, f"node {node_id}",
                           "drain requested" if action == "drain" else "drain lifted")
    state = (await r.hget(key, "state") or b"").decode()
    return web.json_response({"node": node_id, "drain_requested": action == "drain",
                              "changed": bool(changed), "state": state})


def _job_id(request: web.Request) -> str:
    job_id = request.match_info["job_id"]
    if not looks_like_job_id(job_id):
        raise NotFound(f"no render {job_id!r}", code="job_not_found")
    return job_id


# the console's files ---------------------------------------------------------
async def console(request: web.Request) -> web.StreamResponse:
    name = request.match_info.get("name", "console.html")
    ext = name.rsplit(".", 1)[-1]
    if "/" in name or ext not in CONTENT_TYPES or not (STATIC / name).is_file():
        raise NotFound(f"the console has no file {name!r}")
    return web.Response(body=(STATIC / name).read_bytes(), content_type=CONTENT_TYPES[ext],
                        headers={"Cache-Control": "no-cache"})
