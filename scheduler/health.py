from __future__ import annotations

from aiohttp import web

from farm import keys
from farm.presets import TIER_ORDER
from scheduler.context import REDIS


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
