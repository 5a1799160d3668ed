"""Webhook deliveries of render events, end to end: the real app on a real Redis delivering
to a local aiohttp receiver; retries, subscriptions, restarts, an address refused later.

Where a test says "exactly once" or "nothing else", it proves it from the farm's own
state: no delivery is scheduled (keys.WEBHOOK_DUE empty) and every event was fanned
out and acknowledged (the consumer group has read the stream's last entry and holds
nothing pending) — so nothing more can be sent.
"""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import replace

import pytest

from farm.audio import silent_wav
from farm import keys
from farm.config import Limits, LeaseSettings
from farm.lease import LeaseClient
from farm.webhooks import BACKOFF_FACTORS
from scheduler.dispatch import GROUP
from tests.hooktools import FAST, check_signed, deliveries, register
from tests.test_api import auth, form


async def eventually(check, timeout_s: float = 15.0):
    """Wait until `check()` (plain or async) is truthy: the farm works in the background."""
    deadline = time.monotonic() + timeout_s
    while True:
        value = check()
        if asyncio.iscoroutine(value):
            value = await value
        if value:
            return value
        assert time.monotonic() < deadline, "the farm did not get there in time"
        await asyncio.sleep(0.02)


def settled(ns) -> bool:
    """Every event fanned out and acknowledged, and no delivery left to make."""
    if ns.r.zcard(keys.WEBHOOK_DUE):
        return False
    last = ns.r.xinfo_stream(keys.EVENTS)["last-generated-id"]
    group = next(g for g in ns.r.xinfo_groups(keys.EVENTS) if g["name"] == GROUP.encode())
    return group["pending"] == 0 and group["last-delivered-id"] == last


async def logged(ns, webhook_id: str, n: int) -> list[dict] | None:
    """The endpoint's delivery log once it holds `n` attempts."""
    log = await deliveries(ns, webhook_id)
    return log if len(log) >= n else None


async def submit(ns, **fields) -> str:
    resp = await ns.client.post("/v1/renders", data=form(silent_wav(1), **fields), headers=auth(ns.key))
    body = await resp.json()
    assert resp.status == 202, body
    return body["job_id"]


def finish(ns, job_id: str, ok: bool = True) -> None:
    """A node leases the job and completes (or fails) it: its last attempt."""
    node = LeaseClient(ns.r, "n1", LeaseSettings(max_attempts=1))
    lease = node.lease()
    assert lease.job_id == job_id
    assert (node.complete(lease, ["video.mp4"]) if ok else node.fail(lease, "boom")) == \
        ("succeeded" if ok else "failed")


# --- deliveries of render events --------------------------------------------------------

async def test_a_succeeded_render_is_delivered_exactly_once(farm, receiver):
    ns = await farm.make()
    made = await register(ns, receiver.url())
    job_id = await submit(ns)
    finish(ns, job_id)
    [req] = await eventually(lambda: receiver.requests)
    check_signed(req, made["secret"])
    event = req.json
    assert event["type"] == "render.succeeded" and event["id"].startswith("evt_")
    assert event["data"]["job_id"] == job_id and event["data"]["state"] == "succeeded"
    assert event["data"]["finished_at"] == pytest.approx(event["created_at"], abs=0.01)
    await eventually(lambda: settled(ns))
    assert len(receiver.requests) == 1 and ns.r.xlen(keys.EVENTS) == 1
    [entry] = await deliveries(ns, made["id"])
    assert entry["event_id"] == event["id"] and entry["delivered"] is True and entry["attempt"] == 1


async def test_a_failing_receiver_is_retried_with_backoff(farm, receiver):
    ns = await farm.make()
    made = await register(ns, receiver.url())
    receiver.statuses = [500, 500]
    finish(ns, await submit(ns))
    log = await eventually(lambda: logged(ns, made["id"], 3))
    assert [e["attempt"] for e in log] == [3, 2, 1]  # newest first
    assert [e["status"] for e in log] == [200, 500, 500]
    assert [e["delivered"] for e in log] == [True, False, False]
    assert len({e["event_id"] for e in log}) == 1 and log[0]["next_retry_at"] is None
    for entry, factor in ((log[2], BACKOFF_FACTORS[0]), (log[1], BACKOFF_FACTORS[1])):
        assert entry["next_retry_at"] - entry["at"] == pytest.approx(FAST.backoff_base_s * factor, abs=0.01)
    assert len(receiver.requests) == 3
    assert {r.headers["Toonz-Event-Id"] for r in receiver.requests} == {log[0]["event_id"]}
    for req in receiver.requests:
        check_signed(req, made["secret"])
    await eventually(lambda: settled(ns))


async def test_canceled_and_failed_renders_reach_their_subscribers(farm, receiver):
    ns = await farm.make()
    await register(ns, receiver.url("canceled"), events=["render.canceled"])
    await register(ns, receiver.url("failed"), events=["render.failed"])
    await register(ns, receiver.url("succeeded"), events=["render.succeeded"])
    canceled = await submit(ns)
    resp = await ns.client.post(f"/v1/renders/{canceled}/cancel", headers=auth(ns.key))
    assert (await resp.json())["state"] == "canceled"
    failed = await submit(ns)
    finish(ns, failed, ok=False)
    [c] = await eventually(lambda: receiver.at("canceled"))
    [f] = await eventually(lambda: receiver.at("failed"))
    assert c.json["type"] == "render.canceled" and c.json["data"]["job_id"] == canceled
    assert f.json["type"] == "render.failed" and f.json["data"]["job_id"] == failed
    assert f.json["data"]["error"] == "boom"
    await eventually(lambda: settled(ns))
    assert len(receiver.requests) == 2 and receiver.at("succeeded") == []


async def test_no_listener_no_event(farm):
    ns = await farm.make()
    finish(ns, await submit(ns))
    assert ns.r.xlen(keys.EVENTS) == 0 and ns.r.zcard(keys.WEBHOOK_DUE) == 0


async def test_a_renders_webhook_url_is_signed_with_the_tenant_secret(farm, receiver):
    ns = await farm.make()
    made = await register(ns, receiver.url("registered"), events=["render.succeeded"])
    job_id = await submit(ns, webhook_url=receiver.url("own"))
    same = await submit(ns, webhook_url=receiver.url("registered"))  # also registered: sent once
    finish(ns, job_id)
    finish(ns, same)
    [req] = await eventually(lambda: receiver.at("own"))
    await eventually(lambda: len(receiver.at("registered")) == 2)
    await eventually(lambda: settled(ns))
    assert len(receiver.requests) == 3
    secret = (await (await ns.client.get("/v1/webhooks/secret", headers=auth(ns.key))).json())["secret"]
    assert secret.startswith("whsec_") and secret != made["secret"]
    check_signed(req, secret)
    assert req.json["type"] == "render.succeeded" and req.json["data"]["job_id"] == job_id
    again = (await (await ns.client.get("/v1/webhooks/secret", headers=auth(ns.key))).json())["secret"]
    assert again == secret
    for r in receiver.at("registered"):
        check_signed(r, made["secret"])
    assert {r.json["data"]["job_id"] for r in receiver.at("registered")} == {job_id, same}


# --- restarts and a changed mind about an address ---------------------------------------

async def test_events_written_while_the_scheduler_is_down_are_delivered(farm, receiver):
    ns = await farm.make()
    made = await register(ns, receiver.url())
    job_id = await submit(ns)
    await ns.client.close()  # every scheduler down
    finish(ns, job_id)
    assert receiver.requests == [] and ns.r.xlen(keys.EVENTS) == 1
    await farm.make()
    [req] = await eventually(lambda: receiver.requests)
    check_signed(req, made["secret"])
    assert req.json["data"]["job_id"] == job_id
    await eventually(lambda: settled(ns))


async def test_a_pending_retry_survives_a_restart(farm, receiver):
    slow = replace(farm.cfg, webhooks=replace(FAST, backoff_base_s=3600.0))
    ns = await farm.make(slow)
    made = await register(ns, receiver.url())
    receiver.statuses = [500]
    finish(ns, await submit(ns))
    await eventually(lambda: logged(ns, made["id"], 1))  # logged with the retry, atomically
    [(member, due)] = ns.r.zrange(keys.WEBHOOK_DUE, 0, -1, withscores=True)
    assert json.loads(member)["attempt"] == 2 and due > time.time() + 3000
    await ns.client.close()
    ns.r.zadd(keys.WEBHOOK_DUE, {member: time.time()}, xx=True)  # the hour has passed
    await farm.make()
    await eventually(lambda: len(receiver.requests) == 2)
    await eventually(lambda: settled(ns))
    log = await deliveries(ns, made["id"])
    assert [(e["attempt"], e["status"]) for e in log] == [(2, 200), (1, 500)]


async def test_the_address_is_checked_again_at_delivery(farm, receiver):
    ns = await farm.make()
    made = await register(ns, receiver.url())
    await ns.client.close()
    ns = await farm.make(replace(farm.cfg, limits=Limits()))  # 127.0.0.1 no longer allowed
    result = await (await ns.client.post(f"/v1/webhooks/{made['id']}/test", headers=auth(ns.key))).json()
    assert (result["delivered"], result["status"], result["error"]) == (False, None, "url_not_allowed")
    finish(ns, await submit(ns))
    log = await eventually(lambda: logged(ns, made["id"], 2))
    assert log[0]["error"] == "url_not_allowed" and log[0]["next_retry_at"] is not None
    assert receiver.requests == []
