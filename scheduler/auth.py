"""Request authentication: an API key (Bearer or X-API-Key) to a tenant; public requests
are rate limited here too (scheduler/ratelimit.py), admin ones are not."""

from __future__ import annotations

from aiohttp import web

from farm.errors import Forbidden, Unauthorized
from farm.tenants import Principal, authenticate
from scheduler import ratelimit
from scheduler.context import REDIS


async def principal(request: web.Request, role: str = "api") -> Principal:
    header = request.headers.get("Authorization", "")
    key = header[7:].strip() if header.lower().startswith("bearer ") else request.headers.get("X-API-Key", "")
    if not key:
        raise Unauthorized("missing API key: send 'Authorization: Bearer <key>'", code="missing_api_key")
    who = await authenticate(request.app[REDIS], key)
    if who is None:
        raise Unauthorized("unknown or revoked API key", code="invalid_api_key")
    if role == "admin" and who.role != "admin":
        raise Forbidden("this endpoint needs an admin key", code="admin_only")
    if role == "api":
        await ratelimit.check(request, who)
    return who
