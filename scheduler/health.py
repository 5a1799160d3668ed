"""Liveness (/health: the process answers, with what it sees) and readiness (/ready: it
can take work, Redis answering and the artifact folder writable)."""

from __future__ import annotations

import asyncio
import os
import secrets

from aiohttp import web

from farm import keys
from farm.errors import ServiceUnavailable
from farm.presets import TIER_ORDER
from scheduler.context import REDIS, STORE

READY_TIMEOUT_S = 2.0  # a Redis slower than this to answer PING is not ready


async def health(request: web.Request) -> web.Response:
    r = request.app[REDIS]
    try:
        await r.ping()
    except Exception as exc:
        return web.json_response({"status": "degraded", "redis": False, "error": type(exc).__name__},
                                 status=503)
    queued = {t.value: await r.zcard(keys.queue(t.value)) for t in TIER_ORDER}
    return web.json_response({"status": "ok", "redis": True, "queued": queued,
                              "leases": await r.zcard(keys.LEASES)})


async def ready(request: web.Request) -> web.Response:
    """200 {"ready": true}, or 503 `not_ready` naming what is missing."""
    try:
        await asyncio.wait_for(request.app[REDIS].ping(), READY_TIMEOUT_S)
    except Exception as exc:  # refused, timed out, authentication: all mean not ready
        raise ServiceUnavailable(f"Redis does not answer PING ({type(exc).__name__})",
                                 code="not_ready") from None
    root = request.app[STORE].root
    probe = root / f".ready-{os.getpid()}-{secrets.token_hex(4)}"
    try:
        probe.write_bytes(b"ok")
        probe.unlink()
    except OSError as exc:
        raise ServiceUnavailable(f"the artifact folder {root} is not writable ({exc.strerror})",
                                 code="not_ready") from None
    return web.json_response({"ready": True})
