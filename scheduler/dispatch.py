"""The webhook dispatcher: job events in, signed HTTP deliveries out, retried with backoff.

Two loops in the scheduler process:
- fan-out reads the events stream (keys.EVENTS, written by common.lua's `emit`) through
  a consumer group, so an event written while every scheduler is down waits for the next
  one, and each is read by one scheduler. It turns an event into one delivery per target
  (the tenant's endpoints subscribed to it, and the render's own webhook_url), puts them in
  keys.WEBHOOK_DUE and acknowledges the event in the same transaction.
- delivery claims the due deliveries (farm/lua/webhook_claim.lua), POSTs them, logs each
  attempt on its endpoint and schedules the next attempt after a failure. Pending retries
  live in Redis, so they survive a restart; delivery is at least once (the event id is in
  every attempt, for receivers to drop repeats).

While idle both loops only read, so the scheduler's Redis holds still.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import secrets
import socket
import time
from dataclasses import asdict, dataclass

import aiohttp
import redis
from aiohttp import web

from farm import keys
from farm.config import Limits, WebhookSettings
from farm.errors import InvalidInput
from farm.jobs import Job
from farm.webhooks import EVENT_ID_HEADER, SIGNATURE_HEADER, event_type, retry_delay, sign
from scheduler import urlcheck
from scheduler.context import CONFIG, REDIS, SCRIPTS

log = logging.getLogger("toonz.webhooks")

GROUP = "webhooks"          # the consumer group on keys.EVENTS
EVENTS_PER_READ = 100
BLOCK_MS = 1000             # how long an idle fan-out waits on the stream per call
CLAIM_IDLE_MS = 60_000      # an event read but unacknowledged this long: its reader died; take it over
DELIVERY_BATCH = 50         # deliveries claimed (and sent concurrently) at once
CLAIM_MARGIN_S = 30.0       # a claimed delivery comes due again after timeout + this (its sender died)
LOG_CAP = 100               # attempt records kept per endpoint
USER_AGENT = "ToonzFarm-Webhooks/1"


@dataclass(frozen=True)
class Outcome:
    """One delivery attempt: the HTTP status, or why there was none."""

    status: int | None
    error: str | None
    duration_ms: int

    @property
    def delivered(self) -> bool:
        return self.status is not None and 200 <= self.status < 300


def event_body(event_id: str, type_: str, created_at: float, data: dict) -> bytes:
    return json.dumps({"id": event_id, "type": type_, "created_at": created_at, "data": data},
                      separators=(",", ":")).encode()


async def tenant_secret(r, tenant_id: str) -> str:
    """The tenant's secret for renders' own webhook_url, created on first use."""
    key = keys.hook_secret(tenant_id)
    await r.set(key, "whsec_" + secrets.token_urlsafe(32), nx=True)
    return (await r.get(key)).decode()


async def log_attempt(r, webhook_id: str, record: dict, pipe=None) -> None:
    """Add an attempt record to the endpoint's capped log (newest first)."""
    p = pipe if pipe is not None else r.pipeline(transaction=True)
    p.lpush(keys.deliveries(webhook_id), json.dumps(record))
    p.ltrim(keys.deliveries(webhook_id), 0, LOG_CAP - 1)
    if pipe is None:
        await p.execute()


def attempt_record(event_id: str, type_: str, attempt: int, outcome: Outcome,
                   next_retry_at: float | None) -> dict:
    return {"event_id": event_id, "type": type_, "attempt": attempt, "at": round(time.time(), 3),
            "delivered": outcome.delivered, "next_retry_at": next_retry_at, **asdict(outcome)}


class Dispatcher:
    def __init__(self, r, claim_script, limits: Limits, settings: WebhookSettings) -> None:
        self.redis = r
        self._claim = claim_script
        self.limits = limits
        self.settings = settings
        self.consumer = f"{socket.gethostname()}-{os.getpid()}-{secrets.token_hex(3)}"
        self._session: aiohttp.ClientSession | None = None
        self._tasks: list[asyncio.Task] = []
        self._wake = asyncio.Event()
        self._inflight: set[str] = set()  # claimed deliveries being sent: handed back on stop
        self._stopping = False

    # --- lifecycle -------------------------------------------------------------------

    async def start(self) -> None:
        self._session = aiohttp.ClientSession(
            connector=urlcheck.connector(self.limits),
            timeout=aiohttp.ClientTimeout(total=self.settings.timeout_s),
            headers={"User-Agent": USER_AGENT})
        try:
            await self._ensure_group()
        except redis.RedisError as exc:  # the scheduler starts without Redis; the loop retries
            log.warning("webhook events: Redis unreachable at start (%s); retrying in the loop", exc)
        self._tasks = [asyncio.create_task(self._fan_out_loop(), name="webhook-fan-out"),
                       asyncio.create_task(self._delivery_loop(), name="webhook-delivery")]

    async def stop(self) -> None:
        self._stopping = True  # a loop that sees a cancellation turned into an error still ends
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            try:
                await task
            except asyncio.CancelledError:
                pass
        if self._inflight:  # interrupted mid-send: due again now, for whichever scheduler runs
            try:
                await self.redis.zadd(keys.WEBHOOK_DUE, {m: time.time() for m in self._inflight}, xx=True)
            except redis.RedisError:
                log.warning("could not hand back %d webhook deliveries; they come due in %.0f s",
                            len(self._inflight), self.settings.timeout_s + CLAIM_MARGIN_S)
        if self._session:
            await self._session.close()

    async def _ensure_group(self) -> None:
        try:
            # From the stream's start: events written before any scheduler ran are delivered.
            await self.redis.xgroup_create(keys.EVENTS, GROUP, id="0", mkstream=True)
        except redis.ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise

    # --- fan-out ---------------------------------------------------------------------

    async def fan_out_once(self, block_ms: int = 0) -> int:
        """Read events (waiting up to `block_ms` for one) and schedule their deliveries."""
        entries = await self._take_over_stale()
        if not entries:
            if not await self._has_new(block_ms):
                return 0
            got = await self.redis.xreadgroup(GROUP, self.consumer, {keys.EVENTS: ">"},
                                              count=EVENTS_PER_READ)
            entries = got[0][1] if got else []
        if not entries:
            return 0
        now = time.time()
        due: dict[str, float] = {}
        for entry_id, fields in entries:
            for delivery in await self._deliveries_for(entry_id.decode(), fields):
                due[delivery] = now
        pipe = self.redis.pipeline(transaction=True)
        if due:
            pipe.zadd(keys.WEBHOOK_DUE, due)
        pipe.xack(keys.EVENTS, GROUP, *[e[0] for e in entries])
        await pipe.execute()
        if due:
            self._wake.set()
        return len(entries)

    async def _has_new(self, block_ms: int) -> bool:
        """Is there an event past the group's cursor? Plain XREAD: it changes nothing."""
        try:
            groups = await self.redis.xinfo_groups(keys.EVENTS)
        except redis.ResponseError:  # the stream is gone (a flushed database): start again
            groups = []
        cursor = next((g["last-delivered-id"] for g in groups if g["name"] == GROUP.encode()), None)
        if cursor is None:
            await self._ensure_group()
            return False
        got = await self.redis.xread({keys.EVENTS: cursor}, count=1, block=block_ms or None)
        return bool(got)

    async def _take_over_stale(self) -> list:
        """Events a dead scheduler read and never acknowledged (checked read-only first)."""
        stale = await self.redis.xpending_range(keys.EVENTS, GROUP, min="-", max="+", count=1,
                                                idle=CLAIM_IDLE_MS)
        if not stale:
            return []
        got = await self.redis.xautoclaim(keys.EVENTS, GROUP, self.consumer, CLAIM_IDLE_MS,
                                          start_id="0-0", count=EVENTS_PER_READ)
        return [e for e in got[1] if e and e[1]]

    async def _deliveries_for(self, entry_id: str, raw: dict) -> list[str]:
        fields = {k.decode(): v.decode() for k, v in raw.items()}
        job_id, tenant, state = fields.get("job", ""), fields.get("tenant", ""), fields.get("state", "")
        if not (job_id and tenant and state):
            log.warning("event %s is malformed: %r", entry_id, fields)
            return []
        type_ = event_type(state)
        urls: set[str] = set()
        out = []
        for wid in await self.redis.zrange(keys.tenant_webhooks(tenant), 0, -1):
            url, events = await self.redis.hmget(keys.webhook(wid.decode()), "url", "events")
            if url and type_ in events.decode().split(","):
                urls.add(url.decode())
                out.append({"endpoint": wid.decode()})
        raw_job = await self.redis.hgetall(keys.job(job_id))
        hook = raw_job.get(b"webhook_url", b"").decode()
        if hook and hook not in urls:  # the same URL registered too: one delivery, not two
            out.append({"url": hook, "tenant": tenant})
        if not out:
            return []
        try:
            data = Job.from_redis(raw_job).public()
        except (KeyError, ValueError):  # the record is gone: say what the event knows
            data = {"job_id": job_id, "state": state}
        body = event_body("evt_" + entry_id, type_, float(fields.get("at") or 0), data).decode()
        return [json.dumps({**target, "event_id": "evt_" + entry_id, "type": type_, "body": body,
                            "attempt": 1}, sort_keys=True) for target in out]

    async def _fan_out_loop(self) -> None:
        while not self._stopping:
            try:
                await self.fan_out_once(BLOCK_MS)
            except (redis.ConnectionError, redis.TimeoutError) as exc:  # Redis restarting
                log.warning("webhook fan-out: Redis unreachable (%s); retrying", exc)
                await asyncio.sleep(self.settings.poll_s)
            except Exception:  # keep the loop alive, try again shortly
                log.exception("webhook fan-out failed")
                await asyncio.sleep(self.settings.poll_s)

    # --- delivery --------------------------------------------------------------------

    async def deliver_due_once(self) -> int:
        """Send every due delivery (up to a batch); how many were claimed."""
        claimed = await self._claim(args=[time.time(), self.settings.timeout_s + CLAIM_MARGIN_S,
                                          DELIVERY_BATCH])
        await asyncio.gather(*(self._deliver(m.decode()) for m in claimed))
        return len(claimed)

    async def _deliver(self, member: str) -> None:
        self._inflight.add(member)
        try:
            d = json.loads(member)
            if "endpoint" in d:
                url, secret = await self.redis.hmget(keys.webhook(d["endpoint"]), "url", "secret")
                if url is None:  # the endpoint was deleted: its deliveries go with it
                    await self.redis.zrem(keys.WEBHOOK_DUE, member)
                    self._inflight.discard(member)
                    return
                url, secret = url.decode(), secret.decode()
            else:
                url, secret = d["url"], await tenant_secret(self.redis, d["tenant"])
            outcome = await self.attempt(url, secret, d["event_id"], d["body"].encode())
            await self._record(member, d, outcome)
        except Exception:
            # It stays claimed, so it comes due again after the claim time.
            log.exception("webhook delivery %s failed", member[:200])
        self._inflight.discard(member)

    async def _record(self, member: str, d: dict, outcome: Outcome) -> None:
        delay = None if outcome.delivered else retry_delay(d["attempt"], self.settings.backoff_base_s)
        next_at = round(time.time() + delay, 3) if delay is not None else None
        pipe = self.redis.pipeline(transaction=True)
        pipe.zrem(keys.WEBHOOK_DUE, member)
        if next_at is not None:
            pipe.zadd(keys.WEBHOOK_DUE, {json.dumps({**d, "attempt": d["attempt"] + 1}, sort_keys=True): next_at})
        if "endpoint" in d:
            await log_attempt(self.redis, d["endpoint"],
                              attempt_record(d["event_id"], d["type"], d["attempt"], outcome, next_at), pipe)
        await pipe.execute()
        if not outcome.delivered:
            log.info("webhook %s attempt %d to %s: %s%s", d["event_id"], d["attempt"],
                     d.get("endpoint") or "webhook_url", outcome.error or f"HTTP {outcome.status}",
                     "" if next_at else " (giving up)")

    async def attempt(self, url: str, secret: str, event_id: str, body: bytes) -> Outcome:
        """POST one signed delivery; never raises for the receiver's faults."""
        started = time.monotonic()

        def done(status: int | None, error: str | None) -> Outcome:
            return Outcome(status, error, int((time.monotonic() - started) * 1000))

        try:
            # Checked at every attempt: the name may resolve elsewhere than at registration.
            await urlcheck.check_url(url, self.limits, "webhook url")
        except InvalidInput as exc:
            return done(None, exc.code)
        headers = {"Content-Type": "application/json", SIGNATURE_HEADER: sign(secret, body),
                   EVENT_ID_HEADER: event_id}
        try:
            async with self._session.post(url, data=body, headers=headers, allow_redirects=False) as resp:
                return done(resp.status, None if 200 <= resp.status < 300 else f"HTTP {resp.status}")
        except asyncio.TimeoutError:
            return done(None, "timeout")
        except aiohttp.ClientError as exc:
            return done(None, "url_not_allowed" if urlcheck.refused(exc) else
                        f"connection failed: {type(exc).__name__}")

    async def _delivery_loop(self) -> None:
        while not self._stopping:
            claimed = 0
            try:
                claimed = await self.deliver_due_once()
            except (redis.ConnectionError, redis.TimeoutError) as exc:  # Redis restarting
                log.warning("webhook delivery: Redis unreachable (%s); retrying", exc)
            except Exception:
                log.exception("webhook delivery tick failed")
            if claimed >= DELIVERY_BATCH:
                continue  # more may be due
            try:
                await asyncio.wait_for(self._wake.wait(), self.settings.poll_s)
            except asyncio.TimeoutError:
                pass
            self._wake.clear()


DISPATCHER = web.AppKey("dispatcher", Dispatcher)


async def dispatcher_ctx(app: web.Application):
    """cleanup_ctx: run the dispatcher while the app runs (after the Redis context)."""
    cfg = app[CONFIG]
    dispatcher = Dispatcher(app[REDIS], app[SCRIPTS]["webhook_claim"], cfg.limits, cfg.webhooks)
    await dispatcher.start()
    app[DISPATCHER] = dispatcher
    yield
    await dispatcher.stop()
