"""Admin API for tenants, their API keys, tiers and farm-wide totals (admin keys only).

A new key is in the answer that creates it and nowhere else, ever: listings show its
id, role, creation time and last four characters.
"""

from __future__ import annotations

from aiohttp import web

from farm import keys, tenants
from farm.errors import InvalidInput
from farm.lease import month_of
from farm.presets import TIER_LIMITS, TIER_ORDER
from scheduler import ratelimit
from scheduler.auth import principal
from scheduler.context import CONFIG, REDIS
from scheduler.intake import json_object

TERMINAL_STATES = ("succeeded", "failed", "canceled")


async def create_tenant(request: web.Request) -> web.Response:
    """{name, tier} -> 201 with the tenant and its first API key (shown this once)."""
    await principal(request, role="admin")
    body = await json_object(request)
    tenant, key, info = await tenants.create_tenant(request.app[REDIS], body.get("name"),
                                                    _text("tier", body.get("tier", "free")))
    return web.json_response({"tenant": tenant, "key": {**info.public(), "api_key": key}}, status=201)


async def list_tenants(request: web.Request) -> web.Response:
    await principal(request, role="admin")
    month = month_of()
    return web.json_response({"period": month,
                              "tenants": await tenants.list_tenants(request.app[REDIS], month)})


async def set_tier(request: web.Request) -> web.Response:
    """{tier}: the tenant's next renders are admitted, limited and queued in this tier."""
    await principal(request, role="admin")
    body = await json_object(request)
    tenant = await tenants.set_tier(request.app[REDIS], request.match_info["tenant_id"],
                                    _text("tier", body.get("tier")))
    return web.json_response(tenant)


async def create_key(request: web.Request) -> web.Response:
    """Optional {role: api|admin} -> 201 with the new key (shown this once)."""
    await principal(request, role="admin")
    body = await json_object(request) if request.body_exists else {}
    key, info = await tenants.add_key(request.app[REDIS], request.match_info["tenant_id"],
                                      _text("role", body.get("role", "api")))
    return web.json_response({**info.public(), "api_key": key}, status=201)


async def list_keys(request: web.Request) -> web.Response:
    await principal(request, role="admin")
    infos = await tenants.list_keys(request.app[REDIS], request.match_info["tenant_id"])
    return web.json_response({"keys": [i.public() for i in infos]})


async def revoke_key(request: web.Request) -> web.Response:
    await principal(request, role="admin")
    info = await tenants.revoke_key(request.app[REDIS], request.match_info["key_id"])
    return web.json_response({**info.public(), "revoked": True})


async def tiers(request: web.Request) -> web.Response:
    """Each tier's limits, strongest first (the lease order), as this scheduler applies them."""
    await principal(request, role="admin")
    out = []
    for order, t in enumerate(TIER_ORDER):
        lim, rate = TIER_LIMITS[t], ratelimit.effective(t, request.app[CONFIG].limits)
        out.append({
            "tier": t.value, "priority_order": order, "renders_per_month": lim.renders_per_month,
            "max_audio_s": lim.max_audio_s,
            "rate_limit": None if rate is None else {
                "per_second": rate.per_second, "burst": rate.burst,
                "tenant_per_second": ratelimit.tenant_bucket(rate).per_second,
                "tenant_burst": ratelimit.tenant_bucket(rate).burst},
        })
    return web.json_response({"tiers": out})


async def stats(request: web.Request) -> web.Response:
    """Farm-wide totals: tenants, jobs by state (now, and finished since the start), leases."""
    await principal(request, role="admin")
    r = request.app[REDIS]
    counters = {k.decode(): v.decode() for k, v in (await r.hgetall(keys.STATS)).items()}
    by_tier = {}
    for t in TIER_ORDER:
        row = {"submitted": int(counters.get(f"submitted:{t.value}", 0)),
               "queued": await r.zcard(keys.queue(t.value))}
        row.update({s: int(counters.get(f"done:{t.value}:{s}", 0)) for s in TERMINAL_STATES})
        by_tier[t.value] = row
    jobs = {name: sum(row[name] for row in by_tier.values())
            for name in ("submitted", "queued", *TERMINAL_STATES)}
    jobs["leased"] = await r.zcard(keys.LEASES)
    return web.json_response({
        "tenants": await r.hlen(keys.TENANT_NAMES), "jobs": jobs, "jobs_by_tier": by_tier,
        "leases": {"active": jobs["leased"], "granted": int(counters.get("leases", 0))},
    })


def _text(name: str, value) -> str:
    if not isinstance(value, str):
        raise InvalidInput(f"field {name!r} must be a string", code="invalid_field")
    return value
