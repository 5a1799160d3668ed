"""Webhook endpoint views: register, list, delete, send a test ping, read the delivery log.

Endpoints belong to one tenant (another tenant's is a 404). The signing secret is
shown once, when the endpoint is registered. A render's own `webhook_url` is signed
with the tenant's hook secret instead (GET /v1/webhooks/secret).
"""

from __future__ import annotations

import json
import re
import secrets
import time

import redis
from aiohttp import web

from farm import keys
from farm.errors import Conflict, InvalidInput, NotFound
from farm.webhooks import EVENT_TYPES, PING
from scheduler import urlcheck
from scheduler.auth import principal
from scheduler.context import CONFIG, REDIS
from scheduler.dispatch import DISPATCHER, attempt_record, event_body, log_attempt, tenant_secret
from scheduler.intake import json_object

MAX_WEBHOOKS_PER_TENANT = 10
MAX_DESCRIPTION_CHARS = 200
_WEBHOOK_ID = re.compile(r"^wh_[0-9a-f]{16}$")


async def create_webhook(request: web.Request) -> web.Response:
    who = await principal(request)
    body = await json_object(request)
    url = _string(body, "url", required=True)
    events = _events(body.get("events"))
    description = _string(body, "description")
    if len(description) > MAX_DESCRIPTION_CHARS:
        raise InvalidInput(f"description has {len(description)} characters; the limit is "
                           f"{MAX_DESCRIPTION_CHARS}", code="description_too_long")
    await urlcheck.check_url(url, request.app[CONFIG].limits, "url")
    webhook_id = "wh_" + secrets.token_hex(8)
    now = time.time()
    record = {"id": webhook_id, "tenant": who.tenant_id, "url": url, "events": ",".join(events),
              "description": description, "secret": "whsec_" + secrets.token_urlsafe(32),
              "created_at": f"{now:.3f}"}
    zkey = keys.tenant_webhooks(who.tenant_id)
    async with request.app[REDIS].pipeline(transaction=True) as pipe:
        while True:  # WATCH the tenant's set: two concurrent registrations cannot pass the limit
            try:
                await pipe.watch(zkey)
                if await pipe.zcard(zkey) >= MAX_WEBHOOKS_PER_TENANT:
                    raise Conflict(f"a tenant may register {MAX_WEBHOOKS_PER_TENANT} webhooks; "
                                   "delete one first", code="webhook_limit_reached")
                pipe.multi()
                pipe.hset(keys.webhook(webhook_id), mapping=record)
                pipe.zadd(zkey, {webhook_id: int(now * 1000)})
                await pipe.execute()
                break
            except redis.WatchError:
                continue
    return web.json_response({**_public(record), "secret": record["secret"]}, status=201)


async def list_webhooks(request: web.Request) -> web.Response:
    who = await principal(request)
    r = request.app[REDIS]
    ids = await r.zrange(keys.tenant_webhooks(who.tenant_id), 0, -1)
    pipe = r.pipeline(transaction=False)
    for wid in ids:
        pipe.hgetall(keys.webhook(wid.decode()))
    records = [_decode(raw) for raw in await pipe.execute() if raw]
    return web.json_response({"webhooks": [_public(rec) for rec in records]})


async def delete_webhook(request: web.Request) -> web.Response:
    who = await principal(request)
    rec = await _own_webhook(request, who.tenant_id)
    pipe = request.app[REDIS].pipeline(transaction=True)
    pipe.delete(keys.webhook(rec["id"]), keys.deliveries(rec["id"]))
    pipe.zrem(keys.tenant_webhooks(who.tenant_id), rec["id"])
    await pipe.execute()  # its pending deliveries are dropped when they come due
    return web.Response(status=204)


async def ping_webhook(request: web.Request) -> web.Response:
    """Send a `ping` event now (one attempt, no retries) and answer with how it went."""
    who = await principal(request)
    rec = await _own_webhook(request, who.tenant_id)
    event_id = "evt_ping_" + secrets.token_hex(8)
    body = event_body(event_id, PING, round(time.time(), 3),
                      {"webhook_id": rec["id"], "message": "a test event from Toonz Farm"})
    outcome = await request.app[DISPATCHER].attempt(rec["url"], rec["secret"], event_id, body)
    await log_attempt(request.app[REDIS], rec["id"], attempt_record(event_id, PING, 1, outcome, None))
    return web.json_response({"event_id": event_id, "delivered": outcome.delivered,
                              "status": outcome.status, "error": outcome.error,
                              "duration_ms": outcome.duration_ms})


async def list_deliveries(request: web.Request) -> web.Response:
    who = await principal(request)
    rec = await _own_webhook(request, who.tenant_id)
    raw = await request.app[REDIS].lrange(keys.deliveries(rec["id"]), 0, -1)
    return web.json_response({"webhook_id": rec["id"], "deliveries": [json.loads(x) for x in raw]})


async def hook_secret(request: web.Request) -> web.Response:
    """The secret that signs deliveries to renders' own `webhook_url` (created on first use)."""
    who = await principal(request)
    return web.json_response({"secret": await tenant_secret(request.app[REDIS], who.tenant_id)})


async def _own_webhook(request: web.Request, tenant_id: str) -> dict:
    webhook_id = request.match_info["webhook_id"]
    raw = await request.app[REDIS].hgetall(keys.webhook(webhook_id)) if _WEBHOOK_ID.match(webhook_id) else None
    # Another tenant's endpoint is indistinguishable from a missing one.
    if not raw or raw.get(b"tenant", b"").decode() != tenant_id:
        raise NotFound(f"no webhook {webhook_id[:40]!r}", code="webhook_not_found")
    return _decode(raw)


def _decode(raw: dict) -> dict:
    return {k.decode(): v.decode() for k, v in raw.items()}


def _public(rec: dict) -> dict:
    return {"id": rec["id"], "url": rec["url"], "events": rec["events"].split(","),
            "description": rec.get("description", ""), "created_at": float(rec["created_at"])}


def _string(body: dict, name: str, required: bool = False) -> str:
    value = body.get(name)
    if value is None and not required:
        return ""
    if not isinstance(value, str) or (required and not value):
        raise InvalidInput(f"field {name!r} must be a{' non-empty' if required else ''} string",
                           code="invalid_field")
    return value


def _events(value) -> list[str]:
    if value is None:
        return list(EVENT_TYPES)
    if not isinstance(value, list) or not value or not all(isinstance(v, str) for v in value):
        raise InvalidInput(f"events must be a non-empty list of event types: {', '.join(EVENT_TYPES)}",
                           code="invalid_events")
    unknown = [v for v in value if v not in EVENT_TYPES]
    if unknown:
        raise InvalidInput(f"unknown event type {unknown[0][:60]!r}; choose from {', '.join(EVENT_TYPES)}",
                           code="invalid_events")
    return [t for t in EVENT_TYPES if t in value]  # canonical order, no repeats
