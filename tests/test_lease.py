"""The lease protocol against a real Redis: order, fencing, expiry, retries, charging."""

from __future__ import annotations

import asyncio
import time

import pytest
import redis
import redis.asyncio as aioredis

from farm import keys, lua
from farm.config import LeaseSettings
from farm.errors import StaleLease
from farm.jobs import Job, JobState
from farm.lease import LeaseClient, month_of
from scheduler.reaper import Reaper
from tests.leasing import enqueue


def node(r, name="n1", ttl_s=30.0, max_attempts=3) -> LeaseClient:
    return LeaseClient(r, name, LeaseSettings(ttl_s=ttl_s, max_attempts=max_attempts))


def job(r, job_id) -> Job:
    return Job.from_redis(r.hgetall(keys.job(job_id)))


def reap(redis_url, settings: LeaseSettings):
    async def go():
        client = aioredis.from_url(redis_url)
        try:
            return await Reaper(lua.register(client), settings).reap_once()
        finally:
            await client.aclose()
    return asyncio.run(go())


def test_empty_queue_leases_nothing(r):
    assert node(r).lease() is None


def test_tiers_are_strict_and_fifo_inside_a_tier(r):
    now = int(time.time() * 1000)
    free1 = enqueue(r, "free", created_ms=now - 4)
    pro1 = enqueue(r, "pro", created_ms=now - 2)
    free2 = enqueue(r, "free", created_ms=now - 3)
    ent = enqueue(r, "enterprise", created_ms=now - 1)
    n = node(r)
    assert [n.lease().job_id for _ in range(4)] == [ent, pro1, free1, free2]
    assert n.lease() is None


def test_jobs_submitted_in_one_millisecond_keep_their_order(r):
    """A batch lands within a millisecond; its jobs still come out first come, first
    served (ties in a queue would otherwise fall to the random job ids)."""
    now = int(time.time() * 1000)
    ids = [enqueue(r, "pro", tenant="t_batch", created_ms=now) for _ in range(12)]
    late = enqueue(r, "pro", tenant="t_batch", created_ms=now - 5)  # a scheduler's clock behind
    ms = [int(r.hget(keys.job(i), "enqueued_ms")) for i in ids + [late]]
    assert ms == list(range(now, now + 13))
    n = node(r)
    assert [n.lease().job_id for _ in range(13)] == ids + [late]


def test_lease_marks_job_and_fences_grow(r):
    a = enqueue(r)
    enqueue(r)
    n = node(r)
    la, lb = n.lease(), n.lease()
    assert lb.fence > la.fence
    ja = job(r, a)
    assert ja.state == JobState.LEASED and ja.node == "n1" and ja.attempts == 1 and ja.fence == la.fence
    assert n.heartbeat(la, 0.5) == "running"
    ja = job(r, a)
    assert ja.state == JobState.RUNNING and ja.progress == 0.5 and ja.started_at is not None


def test_stale_token_cannot_heartbeat_or_complete(r, redis_url):
    job_id = enqueue(r)
    n1 = node(r, "n1", ttl_s=0.2)
    old = n1.lease()
    time.sleep(0.3)
    assert reap(redis_url, LeaseSettings(ttl_s=0.2)) == [(job_id, "queued")]
    n2 = node(r, "n2")
    new = n2.lease()
    assert new.job_id == job_id and new.fence > old.fence
    with pytest.raises(StaleLease):
        n1.heartbeat(old)
    with pytest.raises(StaleLease):
        n1.complete(old, ["video.mp4"])
    assert job(r, job_id).state == JobState.LEASED  # the stale node changed nothing
    assert n2.complete(new, ["video.mp4"]) == "succeeded"
    assert job(r, job_id).node == "n2"
    with pytest.raises(StaleLease):  # and a second completion is refused too
        n2.complete(new, ["video.mp4"])


def test_success_charges_usage_exactly_once(r):
    job_id = enqueue(r, tenant="t_a", price_cents=50, duration_s=2.5)
    n = node(r)
    lease = n.lease()
    n.complete(lease, ["video.mp4"])
    with pytest.raises(StaleLease):
        n.complete(lease, ["video.mp4"])
    usage = r.hgetall(keys.usage("t_a", month_of()))
    assert usage[b"renders"] == b"1" and usage[b"cost_cents"] == b"50"
    assert float(usage[b"seconds"]) == pytest.approx(2.5)
    assert r.scard(keys.tenant_active("t_a")) == 0
    assert job(r, job_id).state == JobState.SUCCEEDED


def test_expired_leases_requeue_then_fail_past_max_attempts(r, redis_url):
    job_id = enqueue(r)
    settings = LeaseSettings(ttl_s=0.1, max_attempts=2)
    n = node(r, ttl_s=0.1, max_attempts=2)
    for expected in ("queued", "failed"):
        assert n.lease().job_id == job_id
        time.sleep(0.15)
        assert reap(redis_url, settings) == [(job_id, expected)]
    j = job(r, job_id)
    assert j.state == JobState.FAILED and j.attempts == 2 and "lease expired" in j.error
    assert n.lease() is None
    assert r.scard(keys.tenant_active("t_test")) == 0


def test_heartbeat_keeps_a_lease_alive(r, redis_url):
    enqueue(r)
    n = node(r, ttl_s=0.3)
    lease = n.lease()
    for _ in range(4):
        time.sleep(0.1)
        n.heartbeat(lease)
    assert reap(redis_url, LeaseSettings(ttl_s=0.3)) == []


def test_failed_job_is_not_given_back_to_the_node_that_failed_it(r):
    n1, n2 = node(r, "n1"), node(r, "n2")
    assert n2.lease() is None  # n2 is now known as a live node
    job_id = enqueue(r)
    lease = n1.lease()
    assert n1.fail(lease, "boom") == "queued"
    assert n1.lease() is None  # blocked for n1 while another live node may take it
    assert n2.lease().job_id == job_id


def test_a_lone_node_retries_its_own_failure_until_max_attempts(r):
    job_id = enqueue(r)
    n = node(r, max_attempts=2)
    assert n.fail(n.lease(), "first") == "queued"
    lease = n.lease()
    assert lease is not None and lease.job_id == job_id
    assert n.fail(lease, "second") == "failed"
    assert job(r, job_id).error == "second"


def test_quota_is_checked_atomically_at_submit(r):
    enqueue(r, tenant="t_q", quota=2)
    enqueue(r, tenant="t_q", quota=2)
    with pytest.raises(redis.ResponseError, match="QUOTA"):
        enqueue(r, tenant="t_q", quota=2)
    assert r.zcard(keys.tenant_jobs("t_q")) == 2
