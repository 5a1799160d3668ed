"""Job actions shared by the tenant API and the admin API (each one Lua script)."""

from __future__ import annotations

import redis
from aiohttp import web

from farm import keys
from farm.errors import Conflict, NotFound
from farm.scheduling import priority as parse_priority, queue_score
from scheduler.context import REDIS, SCRIPTS


async def cancel(app: web.Application, job_id: str) -> str:
    """Cancel a job: queued ones at once, leased ones at their node's next heartbeat."""
    try:
        state = await app[SCRIPTS]["cancel"](args=[job_id])
    except redis.ResponseError as exc:
        if str(exc).startswith("TERMINAL"):
            raise Conflict(f"render {job_id} has already ended and cannot be canceled",
                           code="already_finished") from None
        raise
    return state.decode()


async def reprioritize(app: web.Application, job_id: str, value: object) -> int:
    """Move a queued job within its tenant's queue. Returns the new priority."""
    prio = parse_priority(value)
    # enqueued_ms never changes once a job exists, so reading it first races with nothing.
    enqueued = await app[REDIS].hget(keys.job(job_id), "enqueued_ms")
    if enqueued is None:
        raise NotFound(f"no render {job_id!r}", code="job_not_found")
    try:
        await app[SCRIPTS]["reprioritize"](args=[job_id, prio, queue_score(prio, int(enqueued))])
    except redis.ResponseError as exc:
        if str(exc).startswith("NOTQUEUED"):
            raise Conflict(f"render {job_id} is no longer queued; its priority is fixed",
                           code="not_queued") from None
        raise
    return prio
