"""Admin API for operators (admin keys only) and the console page that reads it."""

from __future__ import annotations

from dataclasses import asdict
from importlib import resources

from aiohttp import web

from farm import keys
from farm.errors import NotFound
from farm.jobs import Job, looks_like_job_id
from farm.presets import tier as parse_tier
from scheduler import farmstate, jobctl
from scheduler.auth import principal
from scheduler.context import REDIS, STORE
from scheduler.intake import json_object
from scheduler.renders import LOG_ARTIFACT

RECENT_JOBS = 50
STATIC = resources.files("scheduler") / "static"
CONTENT_TYPES = {"html": "text/html", "js": "application/javascript", "css": "text/css"}


async def overview(request: web.Request) -> web.Response:
    """Nodes, tier queues and the most recent jobs, in one read for the console."""
    await principal(request, role="admin")
    r = request.app[REDIS]
    state = await farmstate.read(r)
    jobs, names = [], {}
    for job_id in await r.zrevrange(keys.ALL_JOBS, 0, RECENT_JOBS - 1):
        raw = await r.hgetall(keys.job(job_id.decode()))
        if raw:
            job = Job.from_redis(raw)
            if job.tenant not in names:
                names[job.tenant] = (await r.hget(keys.tenant(job.tenant), "name") or b"?").decode()
            jobs.append({**job.public(), "tenant": names[job.tenant], "tenant_id": job.tenant,
                         "tier": job.tier})
    return web.json_response({"time": state.time, "nodes": [asdict(n) for n in state.nodes],
                              "tiers": [asdict(t) for t in state.tiers], "jobs": jobs,
                              "leases": state.leases})


async def cancel_job(request: web.Request) -> web.Response:
    await principal(request, role="admin")
    job_id = _job_id(request)
    return web.json_response({"job_id": job_id, "state": await jobctl.cancel(request.app, job_id)})


async def set_priority(request: web.Request) -> web.Response:
    await principal(request, role="admin")
    job_id = _job_id(request)
    body = await json_object(request)
    prio = await jobctl.reprioritize(request.app, job_id, body.get("priority"))
    return web.json_response({"job_id": job_id, "priority": prio})


async def pause_tier(request: web.Request) -> web.Response:
    await principal(request, role="admin")
    tier = parse_tier(request.match_info["tier"]).value
    if request.match_info["action"] == "pause":
        await request.app[REDIS].sadd(keys.PAUSED, tier)
    else:
        await request.app[REDIS].srem(keys.PAUSED, tier)
    paused = sorted(t.decode() for t in await request.app[REDIS].smembers(keys.PAUSED))
    return web.json_response({"tier": tier, "paused": tier in paused, "paused_tiers": paused})


async def job_log(request: web.Request) -> web.StreamResponse:
    """The node's log of a job's latest attempt: header, then every line it logged."""
    await principal(request, role="admin")
    path = request.app[STORE].existing(_job_id(request), LOG_ARTIFACT)
    return web.FileResponse(path, headers={"Content-Type": "text/plain; charset=utf-8"})


def _job_id(request: web.Request) -> str:
    job_id = request.match_info["job_id"]
    if not looks_like_job_id(job_id):
        raise NotFound(f"no render {job_id!r}", code="job_not_found")
    return job_id


async def console(request: web.Request) -> web.StreamResponse:
    name = request.match_info.get("name", "console.html")
    ext = name.rsplit(".", 1)[-1]
    if "/" in name or ext not in CONTENT_TYPES or not (STATIC / name).is_file():
        raise NotFound(f"the console has no file {name!r}")
    return web.Response(body=(STATIC / name).read_bytes(), content_type=CONTENT_TYPES[ext])
