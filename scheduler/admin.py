"""Admin API for operators (admin keys only) and the console page that reads it."""

from __future__ import annotations

import time
from importlib import resources

from aiohttp import web

from farm import keys
from farm.errors import NotFound
from farm.jobs import Job
from farm.presets import TIER_ORDER
from scheduler.auth import principal
from scheduler.context import REDIS

RECENT_JOBS = 50
STATIC = resources.files("scheduler") / "static"
CONTENT_TYPES = {"html": "text/html", "js": "application/javascript", "css": "text/css"}


async def overview(request: web.Request) -> web.Response:
    """Nodes, tier queues and the most recent jobs, in one read for the console."""
    await principal(request, role="admin")
    r = request.app[REDIS]
    now = time.time()
    nodes = []
    for node_id, seen_ms in await r.zrange(keys.NODES, 0, -1, withscores=True):
        info = await r.hgetall(keys.node(node_id.decode()))
        nodes.append({"node": node_id.decode(), "state": info.get(b"state", b"").decode(),
                      "job": info.get(b"job", b"").decode() or None,
                      "last_seen_s_ago": round(now - seen_ms / 1000, 1)})
    tiers = []
    for t in TIER_ORDER:
        q = keys.queue(t.value)
        oldest = await r.zrange(q, 0, 0, withscores=True)
        tiers.append({"tier": t.value, "depth": await r.zcard(q),
                      "oldest_wait_s": round(now - oldest[0][1] / 1000, 1) if oldest else 0.0})
    jobs, names = [], {}
    for job_id in await r.zrevrange(keys.ALL_JOBS, 0, RECENT_JOBS - 1):
        raw = await r.hgetall(keys.job(job_id.decode()))
        if raw:
            job = Job.from_redis(raw)
            if job.tenant not in names:
                names[job.tenant] = (await r.hget(keys.tenant(job.tenant), "name") or b"?").decode()
            jobs.append({**job.public(), "tenant": names[job.tenant], "tenant_id": job.tenant,
                         "tier": job.tier})
    return web.json_response({"time": now, "nodes": nodes, "tiers": tiers, "jobs": jobs,
                              "leases": await r.zcard(keys.LEASES)})


async def console(request: web.Request) -> web.StreamResponse:
    name = request.match_info.get("name", "console.html")
    ext = name.rsplit(".", 1)[-1]
    if "/" in name or ext not in CONTENT_TYPES or not (STATIC / name).is_file():
        raise NotFound(f"the console has no file {name!r}")
    return web.Response(body=(STATIC / name).read_bytes(), content_type=CONTENT_TYPES[ext])
