"""GET /v1/renders: a tenant's renders, newest first, filtered by state, cursor-paginated.

The order is (created ms, job id), both descending: the tenant's jobs zset
(keys.tenant_jobs) by score, ties broken by id as ZREVRANGEBYSCORE returns them.
A cursor is the (created ms, id) of the last render a page showed, so pages stay
stable while new renders arrive (they sort before every cursor). A state filter
scans forward in batches until the page is full, the set ends, or the request has
examined LIST_SCAN_CAP renders; then the page may be short, with a cursor that
carries on from the last render examined.
"""

from __future__ import annotations

import base64
import binascii

from aiohttp import web

from farm import keys
from farm.errors import InvalidInput
from farm.jobs import CHUNK_KIND, Job, JobState, looks_like_job_id
from scheduler.auth import principal
from scheduler.context import REDIS

LIST_DEFAULT_LIMIT = 20
LIST_MAX_LIMIT = 100
LIST_SCAN_BATCH = 200  # renders read from Redis at a time while filling a page
LIST_SCAN_CAP = 2000  # renders one request may examine before it answers a short page

Position = tuple[int, str]  # (created ms, job id) of a render in the tenant's order


async def list_renders(request: web.Request) -> web.Response:
    who = await principal(request)
    states = parse_states(request.query.get("state"))
    limit = parse_limit(request.query.get("limit"))
    after = parse_cursor(request.query.get("cursor"))
    page, next_pos = await read_page(request.app[REDIS], who.tenant_id, states, limit, after)
    return web.json_response({
        "renders": [job.public() for job in page],
        "next_cursor": encode_cursor(next_pos) if next_pos else None,
    })


def parse_states(raw: str | None) -> frozenset[JobState] | None:
    """`?state=running` or a comma-separated list; None (no filter) when absent."""
    if raw is None or raw == "":
        return None
    out = set()
    for name in raw.split(","):
        try:
            out.add(JobState(name.strip()))
        except ValueError:
            raise InvalidInput(f"unknown state {name.strip()!r}; choose from "
                               f"{', '.join(s.value for s in JobState)}", code="invalid_state") from None
    return frozenset(out)


def parse_limit(raw: str | None) -> int:
    if raw is None or raw == "":
        return LIST_DEFAULT_LIMIT
    if not (raw.isascii() and raw.isdigit()) or not 1 <= int(raw) <= LIST_MAX_LIMIT:
        raise InvalidInput(f"limit must be a whole number from 1 to {LIST_MAX_LIMIT}, got {raw[:40]!r}",
                           code="invalid_limit")
    return int(raw)


def encode_cursor(pos: Position) -> str:
    return base64.urlsafe_b64encode(f"{pos[0]}:{pos[1]}".encode()).decode().rstrip("=")


def parse_cursor(raw: str | None) -> Position | None:
    """Decode a cursor this module made; anything else is an `invalid_cursor` error."""
    if raw is None or raw == "":
        return None
    try:
        text = base64.urlsafe_b64decode(raw + "=" * (-len(raw) % 4)).decode("ascii")
        ms, job_id = text.split(":")
        if ms.isascii() and ms.isdigit() and len(ms) <= 16 and looks_like_job_id(job_id):
            return int(ms), job_id
    except (ValueError, binascii.Error, UnicodeDecodeError):
        pass
    raise InvalidInput("cursor is malformed; pass the next_cursor of a previous page unchanged",
                       code="invalid_cursor")


async def read_page(r, tenant_id: str, states: frozenset[JobState] | None, limit: int,
                    after: Position | None) -> tuple[list[Job], Position | None]:
    """Up to `limit` renders after `after`, and where the next page starts (None: the end).

    Reads one render past the page to know whether another page exists, so a last
    page's cursor is None rather than a pointer to an empty page.
    """
    zkey = keys.tenant_jobs(tenant_id)
    page: list[Job] = []
    examined = 0
    pos, pos_of_last = after, after
    while examined < LIST_SCAN_CAP:
        batch = await _after(r, zkey, pos, min(LIST_SCAN_BATCH, LIST_SCAN_CAP - examined))
        if not batch:
            return page, None
        pipe = r.pipeline(transaction=False)
        for _, job_id in batch:
            pipe.hgetall(keys.job(job_id))
        records = await pipe.execute()
        for (ms, job_id), raw in zip(batch, records):
            examined += 1
            # A record without its tenant's mark would be another tenant's: never shown. Nor
            # is a chunk of a long render (the farm's own; never in this set, kept out anyway).
            if not raw or raw.get(b"tenant", b"").decode() != tenant_id \
                    or raw.get(b"kind") == CHUNK_KIND.encode():
                pos = (ms, job_id)
                continue
            job = Job.from_redis(raw)
            if states is None or job.state in states:
                if len(page) == limit:  # one more exists: the page ends at the last shown
                    return page, pos_of_last
                page.append(job)
                pos_of_last = (ms, job_id)
            pos = (ms, job_id)
    # Scan cap reached: a short page, continuing from the last render examined.
    return page, pos


async def _after(r, zkey: str, pos: Position | None, count: int) -> list[Position]:
    """The next `count` (ms, id) after `pos` in descending (ms, id) order."""
    if pos is None:
        rows = await r.zrevrangebyscore(zkey, "+inf", "-inf", start=0, num=count, withscores=True)
        return [(int(s), m.decode()) for m, s in rows]
    ms, job_id = pos
    # Renders created in the same ms as `pos` and sorting after it, then older ones. Ties
    # are few: one tenant's renders created in one ms (a batch request at most).
    ties = await r.zrevrangebyscore(zkey, ms, ms, withscores=True)
    out = [(ms, m.decode()) for m, _ in ties if m.decode() < job_id][:count]
    if len(out) < count:
        rows = await r.zrevrangebyscore(zkey, f"({ms}", "-inf", start=0, num=count - len(out),
                                        withscores=True)
        out += [(int(s), m.decode()) for m, s in rows]
    return out
