"""The audit log of operators' actions: who did what to which target, and how it ended.

One capped Redis list, newest first, one JSON object per entry. Only actions that took
effect are recorded: a refused request changes nothing stored (the scheduler's log
names it), so the audit log reads as the history of what operators changed.
"""

from __future__ import annotations

import json
import logging
import time

from aiohttp import web

from farm import keys
from farm.errors import InvalidInput
from farm.tenants import Principal
from scheduler.auth import principal
from scheduler.context import REDIS

log = logging.getLogger("toonz.audit")

AUDIT_MAX = 5000  # entries kept; older ones fall off the end
DEFAULT_LIMIT = 100  # entries GET /v1/admin/audit answers without ?limit


async def record(r, who: Principal, action: str, target: str, outcome: str) -> dict:
    """Append one entry (time, admin, action, target, outcome) and trim the list."""
    entry = {"time": round(time.time(), 3), "admin": who.tenant_name, "admin_tenant_id": who.tenant_id,
             "key_id": who.key_id, "action": action, "target": target,
             "outcome": outcome}
    async with r.pipeline(transaction=True) as pipe:
        pipe.lpush(keys.AUDIT, json.dumps(entry))
        pipe.ltrim(keys.AUDIT, 0, AUDIT_MAX - 1)
        await pipe.execute()
    log.info("%s %s %s: %s", who.tenant_name, action, target, outcome)
    return entry


async def recent(r, limit: int = DEFAULT_LIMIT) -> list[dict]:
    """The newest `limit` entries, newest first."""
    return [json.loads(raw) for raw in await r.lrange(keys.AUDIT, 0, limit - 1)]


async def head(r) -> bytes | None:
    """The newest entry as stored: a cheap way to tell whether the log moved."""
    return await r.lindex(keys.AUDIT, 0)


def parse_limit(raw: str | None) -> int:
    if raw is None or raw == "":
        return DEFAULT_LIMIT
    if not raw.isdigit() or not 1 <= int(raw) <= AUDIT_MAX:
        raise InvalidInput(f"limit must be an integer from 1 to {AUDIT_MAX}, got {raw!r}",
                           code="invalid_limit")
    return int(raw)


async def audit_log(request: web.Request) -> web.Response:
    """GET /v1/admin/audit?limit=N: the newest entries first."""
    await principal(request, role="admin")
    limit = parse_limit(request.query.get("limit"))
    return web.json_response({"entries": await recent(request.app[REDIS], limit)})
