"""Scheduling inside Redis: fair share, weights, priority, aging, pause, cancel, stalls."""

from __future__ import annotations

import time

import pytest
import redis

from farm import keys, lua
from farm.config import LeaseSettings
from farm.jobs import JobState
from farm.lease import LeaseClient
from farm.scheduling import AGING_BOUND_S, queue_score
from farm.presets import Tier
from tests.leasing import enqueue
from tests.test_lease import job, reap


def node(r, name="n1", **kw) -> LeaseClient:
    return LeaseClient(r, name, LeaseSettings(**kw))


def lease_ids(n: LeaseClient, count: int) -> list[str]:
    return [n.lease().job_id for _ in range(count)]


def test_another_tenant_is_served_within_one_turn_of_a_flood(r):
    now = int(time.time() * 1000)
    pipe_jobs = [enqueue(r, "pro", tenant="t_flood", created_ms=now - 5000 + i) for i in range(1000)]
    other = enqueue(r, "pro", tenant="t_small", created_ms=now)
    n = node(r)
    got = lease_ids(n, 2)
    # The bound: a tenant waits at most one turn of every other tenant (weights of 1).
    assert other in got and got[0] == pipe_jobs[0]
    assert lease_ids(n, 2) == pipe_jobs[1:3]


def test_weighted_round_robin(r):
    r.hset(keys.tenant("t_big"), "weight", 3)
    now = int(time.time() * 1000)
    big = [enqueue(r, "starter", tenant="t_big", created_ms=now + i) for i in range(6)]
    small = [enqueue(r, "starter", tenant="t_small", created_ms=now + 10 + i) for i in range(2)]
    assert lease_ids(node(r), 8) == big[:3] + small[:1] + big[3:6] + small[1:]


def test_priority_inside_a_tenant_and_changing_it_while_queued(r):
    now = int(time.time() * 1000)
    low = enqueue(r, "pro", created_ms=now, priority=10)
    mid = enqueue(r, "pro", created_ms=now + 1)
    high = enqueue(r, "pro", created_ms=now + 2, priority=90)
    s = lua.register(r)
    s["reprioritize"](args=[low, 95, queue_score(95, now)])
    assert lease_ids(node(r), 3) == [low, high, mid]
    with pytest.raises(redis.ResponseError, match="NOTQUEUED"):
        s["reprioritize"](args=[low, 1, queue_score(1, now)])


@pytest.mark.parametrize("bounds_waited,beats", [(0.5, []), (1.1, ["starter"]),
                                                 (2.1, ["starter", "pro"]),
                                                 (3.1, ["starter", "pro", "enterprise"])])
def test_aging_lifts_a_waiting_job_one_tier_per_bound(r, bounds_waited, beats):
    now = int(time.time() * 1000)
    old_free = enqueue(r, "free", created_ms=now - int(bounds_waited * AGING_BOUND_S[Tier.FREE] * 1000))
    fresh = {t: enqueue(r, t, created_ms=now) for t in ("enterprise", "pro", "starter")}
    order = lease_ids(node(r), 4)
    ahead = [t for t in ("enterprise", "pro", "starter") if order.index(fresh[t]) < order.index(old_free)]
    assert sorted(ahead) == sorted({"enterprise", "pro", "starter"} - set(beats))


def test_paused_tier_is_not_leased_until_resumed(r):
    now = int(time.time() * 1000)
    free_old = enqueue(r, "free", created_ms=now - 10 * 300_000)  # aged far up, but paused
    pro = enqueue(r, "pro", created_ms=now)
    r.sadd(keys.PAUSED, "free", "pro")
    n = node(r)
    assert n.lease() is None
    r.srem(keys.PAUSED, "pro")
    assert n.lease().job_id == pro and n.lease() is None
    r.srem(keys.PAUSED, "free")
    assert n.lease().job_id == free_old


def test_cancel_queued_running_and_finished(r):
    s = lua.register(r)
    queued, running = enqueue(r, "pro", tenant="t_c"), enqueue(r, "pro", tenant="t_c")
    n = node(r)
    lease = n.lease()
    assert lease.job_id == queued
    s["cancel"](args=[running])  # still queued: canceled at once
    assert job(r, running).state == JobState.CANCELED and n.lease() is None
    assert s["cancel"](args=[queued]) == b"cancel_requested"
    assert n.heartbeat(lease, 0.3) == "cancel_requested"
    assert n.fail(lease, "stopped: canceled") == "canceled"
    assert job(r, queued).state == JobState.CANCELED
    assert r.scard(keys.tenant_active("t_c")) == 0
    assert r.hgetall(keys.usage("t_c", time.strftime("%Y-%m", time.gmtime()))) == {}
    with pytest.raises(redis.ResponseError, match="TERMINAL"):
        s["cancel"](args=[queued])


def test_a_stalled_job_is_taken_from_its_node(r, redis_url):
    n1, n2 = node(r, "n1", stall_s=0.2), node(r, "n2")
    assert n2.lease() is None  # n2 is known as live
    job_id = enqueue(r)
    lease = n1.lease()
    n1.heartbeat(lease, 0.5)
    for _ in range(3):  # heartbeats continue, progress does not move
        time.sleep(0.1)
        n1.heartbeat(lease, 0.5)
    assert reap(redis_url, LeaseSettings(stall_s=0.2)) == [(job_id, "queued")]
    assert "progress stalled" in job(r, job_id).error
    assert n1.lease() is None  # the stalled node is not given it again while n2 is live
    assert n2.lease().job_id == job_id


def test_a_node_skips_jobs_that_need_more_memory_than_it_has(r):
    now = int(time.time() * 1000)
    big = enqueue(r, "pro", tenant="t_a", created_ms=now)
    r.hset(keys.job(big), "needs_mb", 3500)
    small = enqueue(r, "pro", tenant="t_a", created_ms=now + 1)
    r.hset(keys.job(small), "needs_mb", 400)
    little, large = node(r, "little"), node(r, "large")
    assert little.lease(free_mb=1000).job_id == small
    assert little.lease(free_mb=1000) is None
    assert large.lease(free_mb=8000).job_id == big


def test_a_node_skips_jobs_in_formats_it_cannot_encode(r):
    now = int(time.time() * 1000)
    webm = enqueue(r, "pro", tenant="t_a", created_ms=now)
    r.hset(keys.job(webm), "needs_codec", "libvpx-vp9")
    mp4 = enqueue(r, "pro", tenant="t_a", created_ms=now + 1)
    r.hset(keys.job(mp4), "needs_codec", "libx264")
    h264_only, full = node(r, "h264-only"), node(r, "full")
    assert h264_only.lease(encoders={"libx264"}).job_id == mp4  # the webm ahead of it waits
    assert h264_only.lease(encoders={"libx264"}) is None
    assert full.lease(encoders={"libx264", "libvpx-vp9", "gif"}).job_id == webm
