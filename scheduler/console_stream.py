"""The console's live feed: Server-Sent Events of the farm's overview, and the short-lived
console sessions that open it.

A browser's EventSource cannot send an Authorization header. Rather than take the admin
key in the URL (where access logs, proxies and browser history keep it for good), the
console trades its key for a session token (POST /v1/admin/session) that expires after
SESSION_TTL_S and opens the stream with `?token=`. The token is stored as a SHA-256
digest in Redis with that expiry, so every scheduler behind a load balancer accepts it
with no shared secret to configure. A stream ends when its session does (event
`expired`); the console then opens a new session. Tools that can send headers may open
the stream with the admin key as usual.

Events: `overview` every STREAM_INTERVAL_S (scheduler/admin.py's snapshot, computed
once per interval however many consoles watch), `audit` and `throughput` when those
moved, `unavailable` while Redis is unreachable, and a `: heartbeat` comment every
STREAM_HEARTBEAT_S.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import secrets
import time

import redis
from aiohttp import web

from farm import keys
from farm.errors import Unauthorized
from farm.tenants import digest
from scheduler import admin, audit, throughput
from scheduler.auth import principal
from scheduler.context import REDIS

log = logging.getLogger("toonz.console")

SESSION_TTL_S = 300  # a console session (and the stream it opened) lasts this long
STREAM_INTERVAL_S = 1.0  # between two overview events
STREAM_HEARTBEAT_S = 15.0  # between two heartbeat comments (keeps proxies from timing out)
STREAM_RETRY_MS = 2000  # the EventSource's reconnection delay
AUDIT_IN_STREAM = 50  # audit entries an `audit` event carries
MAX_TOKEN_CHARS = 200


class Hub:
    """What the streams of one app share: the latest overview, and the shutdown signal."""

    def __init__(self) -> None:
        self.closing = asyncio.Event()
        self._lock = asyncio.Lock()
        self._overview: dict | None = None
        self._at = 0.0

    async def overview(self, r) -> dict:
        """The overview, read at most once per half interval for all streams together."""
        async with self._lock:
            if self._overview is None or time.monotonic() - self._at >= STREAM_INTERVAL_S / 2:
                self._overview = await admin.snapshot(r)
                self._at = time.monotonic()
            return self._overview


HUB = web.AppKey("console_hub", Hub)


def setup(app: web.Application) -> None:
    """Give the app its hub; on shutdown, streams end at once instead of holding it up."""
    app[HUB] = Hub()

    async def close_streams(app: web.Application) -> None:
        app[HUB].closing.set()

    app.on_shutdown.append(close_streams)


async def create_session(request: web.Request) -> web.Response:
    """POST /v1/admin/session (admin key): a token for GET /v1/admin/stream?token=..."""
    who = await principal(request, role="admin")
    token = "tzs_" + secrets.token_urlsafe(24)
    record = {"tenant_id": who.tenant_id, "tenant_name": who.tenant_name, "created_at": time.time()}
    await request.app[REDIS].set(keys.session(digest(token)), json.dumps(record), ex=SESSION_TTL_S)
    return web.json_response({"token": token, "expires_in_s": SESSION_TTL_S}, status=201)


async def _stream_deadline(request: web.Request) -> float:
    """Authenticate a stream; when it must end (monotonic seconds)."""
    if "Authorization" in request.headers or "X-API-Key" in request.headers:
        await principal(request, role="admin")
        return float("inf")
    token = request.query.get("token", "")
    if not token:
        raise Unauthorized("open a console session first (POST /v1/admin/session) and pass its "
                           "token as ?token=, or send an admin key", code="missing_session")
    found, ttl_ms = False, 0
    if len(token) <= MAX_TOKEN_CHARS:
        key = keys.session(digest(token))
        async with request.app[REDIS].pipeline(transaction=True) as pipe:
            found, ttl_ms = await pipe.exists(key).pttl(key).execute()
    if not found or ttl_ms <= 0:
        raise Unauthorized("unknown or expired console session; open a new one with "
                           "POST /v1/admin/session", code="invalid_session")
    return time.monotonic() + ttl_ms / 1000


async def _send(resp: web.StreamResponse, event: str, data: dict) -> None:
    await resp.write(f"event: {event}\ndata: {json.dumps(data, separators=(',', ':'))}\n\n".encode())


async def stream(request: web.Request) -> web.StreamResponse:
    """GET /v1/admin/stream: the console's live feed (text/event-stream)."""
    deadline = await _stream_deadline(request)
    hub, r = request.app[HUB], request.app[REDIS]
    resp = web.StreamResponse(headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache",
                                       "X-Accel-Buffering": "no"})  # nginx: do not buffer events
    await resp.prepare(request)
    sent_audit: object = object()
    sent_points: object = object()
    last_beat = time.monotonic()
    try:
        await resp.write(f"retry: {STREAM_RETRY_MS}\n: heartbeat\n\n".encode())
        while not hub.closing.is_set() and time.monotonic() < deadline:
            try:
                await _send(resp, "overview", await hub.overview(r))
                if (head := await audit.head(r)) != sent_audit:
                    await _send(resp, "audit", {"entries": await audit.recent(r, AUDIT_IN_STREAM)})
                    sent_audit = head
                if (tail := await throughput.tail(r)) != sent_points:
                    await _send(resp, "throughput", {"interval_s": throughput.THROUGHPUT_SAMPLE_S,
                                                     "points": await throughput.series(r)})
                    sent_points = tail
            except (redis.ConnectionError, redis.TimeoutError):
                await _send(resp, "unavailable", {"message": "the farm's database is unreachable; "
                                                  "retrying"})
            if time.monotonic() - last_beat >= STREAM_HEARTBEAT_S:
                await resp.write(b": heartbeat\n\n")
                last_beat = time.monotonic()
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(hub.closing.wait(), STREAM_INTERVAL_S)
        if not hub.closing.is_set():
            await _send(resp, "expired", {"message": "console session expired; open a new one"})
    except ConnectionResetError:  # the console went away
        pass
    return resp
