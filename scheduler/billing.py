"""Money: usage for a period, invoices (CSV per month), and the public price list.

Each finished render is charged once, inside farm/lua/complete.lua: counters in the
month's usage hash (the quota reads them) and one entry in the tenant's ledger stream
(keys.ledger), whose ids are Redis's ms clock. Per-day figures and invoices are read
from the ledger in pages of LEDGER_PAGE entries, so no request holds a month of it.
Canceled and failed renders are never charged, so they are in neither.
"""

from __future__ import annotations

import calendar
import csv
import io
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import date, datetime, timezone

from aiohttp import web

from farm import keys
from farm.errors import InvalidInput
from farm.lease import month_of
from farm.presets import FORMATS, QUALITIES, TIER_LIMITS, TIER_ORDER
from scheduler.auth import principal
from scheduler.context import REDIS

LEDGER_PAGE = 500  # ledger entries read per XRANGE
INVOICE_MAX_MONTHS = 120  # the invoice list looks back at most this far
CURRENCY = "USD"
INVOICE_COLUMNS = ("date", "job_id", "quality", "seconds", "price_usd")
_PERIOD = re.compile(r"^(\d{4})-(\d{2})$", re.ASCII)


@dataclass(frozen=True)
class Charge:
    """One ledger entry: a render that succeeded and was charged."""

    at_ms: int
    job_id: str
    quality: str
    seconds: float
    cost_cents: int

    @property
    def day(self) -> str:
        return datetime.fromtimestamp(self.at_ms / 1000, timezone.utc).strftime("%Y-%m-%d")


async def usage(request: web.Request) -> web.Response:
    who = await principal(request)
    period = parse_period(request.query.get("period")) or month_of()
    r = request.app[REDIS]
    u = await r.hgetall(keys.usage(who.tenant_id, period))
    used = int(u.get(b"renders", 0))
    current = period == month_of()
    # Renders in progress count against the current month only.
    active = await r.scard(keys.tenant_active(who.tenant_id)) if current else 0
    limit = TIER_LIMITS[who.tier].renders_per_month
    first, last = period_days(period)
    days: dict[str, list] = {}  # every day of the period so far, charged or not
    day, until = first, min(last, datetime.now(timezone.utc).date()) if current else last
    while day <= until:
        days[day.isoformat()] = [0, 0.0, 0]
        day = date.fromordinal(day.toordinal() + 1)
    async for charge in ledger(r, who.tenant_id, period):
        tally = days.setdefault(charge.day, [0, 0.0, 0])
        tally[0] += 1
        tally[1] += charge.seconds
        tally[2] += charge.cost_cents
    cost_cents = int(u.get(b"cost_cents", 0))
    return web.json_response({
        "tenant": who.tenant_name, "tier": who.tier.value, "period": period,
        "period_start": first.isoformat(), "period_end": last.isoformat(),
        "renders_used": used, "renders_in_progress": active, "renders_limit": limit,
        "renders_remaining": None if limit is None else max(limit - used - active, 0),
        "seconds_rendered": round(float(u.get(b"seconds", 0)), 3),
        "cost": cost_cents / 100, "cost_cents": cost_cents, "currency": CURRENCY,
        "max_audio_s": TIER_LIMITS[who.tier].max_audio_s,
        "per_day": [{"date": d, "renders": n, "seconds": round(s, 3), "cost": c / 100,
                     "cost_cents": c} for d, (n, s, c) in sorted(days.items())],
    })


async def list_invoices(request: web.Request) -> web.Response:
    """Months with charged renders, newest first, each with its CSV's URL."""
    who = await principal(request)
    r = request.app[REDIS]
    oldest = await r.xrange(keys.ledger(who.tenant_id), count=1)
    months: list[str] = []
    if oldest:
        first = month_of(int(oldest[0][0].split(b"-")[0]) / 1000)
        months = [month_of()]
        while months[-1] > first and len(months) < INVOICE_MAX_MONTHS:
            months.append(_previous_month(months[-1]))
    pipe = r.pipeline(transaction=False)
    for month in months:
        pipe.hgetall(keys.usage(who.tenant_id, month))
    out = []
    for month, u in zip(months, await pipe.execute()):
        if int(u.get(b"renders", 0)):
            cents = int(u.get(b"cost_cents", 0))
            out.append({"period": month, "renders": int(u[b"renders"]),
                        "seconds": round(float(u.get(b"seconds", 0)), 3), "cost": cents / 100,
                        "cost_cents": cents, "currency": CURRENCY,
                        "url": f"/v1/invoices/{month}.csv"})
    return web.json_response({"invoices": out})


async def invoice_csv(request: web.Request) -> web.StreamResponse:
    """One row per charged render of the month, then a total row. A month without
    charges is a header and a zero total, not a 404: the month exists, it cost nothing."""
    who = await principal(request)
    period = parse_period(request.match_info["period"])
    assert period is not None  # the route always names one
    resp = web.StreamResponse(headers={
        "Content-Type": "text/csv; charset=utf-8",
        "Content-Disposition": f'attachment; filename="toonz-{who.tenant_name}-{period}.csv"'})
    await resp.prepare(request)
    buf = io.StringIO()
    out = csv.writer(buf, lineterminator="\n")
    out.writerow(INVOICE_COLUMNS)
    count, seconds, cents = 0, 0.0, 0
    async for charge in ledger(request.app[REDIS], who.tenant_id, period):
        out.writerow((charge.day, charge.job_id, charge.quality, f"{charge.seconds:.3f}",
                      _dollars(charge.cost_cents)))
        count, seconds, cents = count + 1, seconds + charge.seconds, cents + charge.cost_cents
        if buf.tell() >= 64 * 1024:  # flush in chunks: a month's rows never pile up here
            await resp.write(buf.getvalue().encode())
            buf.seek(0)
            buf.truncate()
    out.writerow(("total", f"{count} renders", "", f"{seconds:.3f}", _dollars(cents)))
    await resp.write(buf.getvalue().encode())
    await resp.write_eof()
    return resp


async def pricing(request: web.Request) -> web.Response:
    """The public price list: no key needed."""
    return web.json_response({
        "currency": CURRENCY,
        "qualities": [{"name": q.name, "width": q.width, "height": q.height, "fps": q.fps,
                       "price": q.price_cents / 100, "price_cents": q.price_cents}
                      for q in QUALITIES.values()],
        "formats": list(FORMATS),
        # Tiers in lease order: a lower `priority` is leased first.
        "tiers": [{"name": t.value, "priority": i + 1,
                   "renders_per_month": TIER_LIMITS[t].renders_per_month,
                   "max_audio_s": TIER_LIMITS[t].max_audio_s}
                  for i, t in enumerate(TIER_ORDER)],
    })


async def ledger(r, tenant_id: str, period: str) -> AsyncIterator[Charge]:
    """The tenant's charges in `period` (YYYY-MM, UTC), oldest first, LEDGER_PAGE at a time."""
    start_ms, end_ms = period_ms(period)
    key, low = keys.ledger(tenant_id), str(start_ms)
    while True:
        rows = await r.xrange(key, min=low, max=str(end_ms - 1), count=LEDGER_PAGE)
        for entry_id, f in rows:
            yield Charge(at_ms=int(entry_id.split(b"-")[0]), job_id=f[b"job"].decode(),
                         quality=f.get(b"quality", b"").decode(),
                         seconds=float(f.get(b"seconds", 0) or 0),
                         cost_cents=int(f.get(b"cost_cents", 0) or 0))
        if len(rows) < LEDGER_PAGE:
            return
        low = "(" + rows[-1][0].decode()  # exclusive: the next page starts after the last


def parse_period(raw: str | None) -> str | None:
    """A `YYYY-MM` month, not in the future; None when absent."""
    if raw is None or raw == "":
        return None
    m = _PERIOD.match(raw)
    if not m or not 1 <= int(m.group(2)) <= 12 or int(m.group(1)) < 1970:
        raise InvalidInput(f"period must be a month written YYYY-MM, got {raw[:40]!r}",
                           code="invalid_period")
    if raw > month_of():
        raise InvalidInput(f"period {raw} is in the future", code="invalid_period")
    return raw


def period_days(period: str) -> tuple[date, date]:
    """The first and last day of a YYYY-MM month."""
    year, month = int(period[:4]), int(period[5:])
    return date(year, month, 1), date(year, month, calendar.monthrange(year, month)[1])


def period_ms(period: str) -> tuple[int, int]:
    """[start, end) of a YYYY-MM month in Unix ms, UTC."""
    first, last = period_days(period)
    start = calendar.timegm(first.timetuple())
    return start * 1000, (calendar.timegm(last.timetuple()) + 86400) * 1000


def _previous_month(period: str) -> str:
    year, month = int(period[:4]), int(period[5:])
    return f"{year - 1}-12" if month == 1 else f"{year}-{month - 1:02d}"


def _dollars(cents: int) -> str:
    return f"{cents // 100}.{cents % 100:02d}"

