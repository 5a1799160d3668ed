"""Rate limits on the public API: token buckets inside Redis (farm/lua/ratelimit.lua).

Every authenticated public request takes one token from its API key's bucket (sized
by the tenant's tier, farm.presets.RATE_LIMITS) and one from its tenant's bucket
(TENANT_RATE_FACTOR times larger), atomically: one key gets its tier's rate, and a
tenant's keys together at most the factor times that, however many keys it makes.
Refused: 429 `rate_limited` with Retry-After; nothing is taken from either bucket.
Admin, node, metrics, health and console requests are not limited.
"""

from __future__ import annotations

import math

from aiohttp import web

from farm import keys
from farm.config import Limits
from farm.errors import RateLimited
from farm.presets import RATE_LIMITS, TENANT_RATE_FACTOR, RateLimit, Tier
from farm.tenants import Principal
from scheduler.context import CONFIG, SCRIPTS

HEADERS = web.RequestKey("ratelimit_headers", dict)


def effective(tier: Tier, limits: Limits) -> RateLimit | None:
    """A key's bucket for `tier` under this configuration; None when limits are off."""
    if limits.rate_limit_scale <= 0:
        return None
    base = limits.rate_limit or RATE_LIMITS[tier]
    scale = limits.rate_limit_scale
    return RateLimit(base.per_second * scale, max(1.0, base.burst * scale))


def tenant_bucket(key_bucket: RateLimit) -> RateLimit:
    return RateLimit(key_bucket.per_second * TENANT_RATE_FACTOR, key_bucket.burst * TENANT_RATE_FACTOR)


async def check(request: web.Request, who: Principal) -> None:
    """Take a token for this request, or raise RateLimited (429)."""
    bucket = effective(who.tier, request.app[CONFIG].limits)
    if bucket is None:
        return
    tenant = tenant_bucket(bucket)
    allowed, left, wait_ms = await request.app[SCRIPTS]["ratelimit"](
        keys=[keys.rate_bucket("key", who.key_id), keys.rate_bucket("tenant", who.tenant_id)],
        args=[bucket.per_second, bucket.burst, tenant.per_second, tenant.burst])
    limit = str(int(bucket.burst))
    if not allowed:
        retry = max(1, math.ceil(int(wait_ms) / 1000))
        exc = RateLimited(f"rate limit of the {who.tier.value} tier reached ({bucket.per_second:g} "
                          f"requests/s, bursts of {bucket.burst:g}); retry in {retry} s",
                          retry_after_s=retry)
        exc.headers.update({"X-RateLimit-Limit": limit, "X-RateLimit-Remaining": "0"})
        raise exc
    request[HEADERS] = {"X-RateLimit-Limit": limit, "X-RateLimit-Remaining": str(int(left))}


async def _add_headers(request: web.Request, response: web.StreamResponse) -> None:
    headers = request.get(HEADERS)
    if headers:
        response.headers.update(headers)


def setup(app: web.Application) -> None:
    """Successful limited responses carry X-RateLimit-Limit and X-RateLimit-Remaining."""
    app.on_response_prepare.append(_add_headers)
