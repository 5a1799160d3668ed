"""/metrics (Prometheus) and /v1/admin/scaling against the real app and Redis."""

from __future__ import annotations

import math
import time

import pytest
import redis
from prometheus_client.parser import text_string_to_metric_families

from farm import keys
from farm.config import LeaseSettings, SchedulerConfig
from farm.lease import LeaseClient
from farm.tenants import create_key
from scheduler.app import create_app
from scheduler.scaling import TARGET_WAIT_S
from tests.leasing import enqueue


@pytest.fixture
async def app(aiohttp_client, redis_url, tmp_path):
    r = redis.Redis.from_url(redis_url)
    client = await aiohttp_client(create_app(SchedulerConfig(redis_url=redis_url, data_dir=tmp_path)))
    admin = {"Authorization": f"Bearer {create_key(r, 'operator', 'enterprise', role='admin')}"}
    yield client, r, admin
    r.close()


def queue(r, tier: str, frames: int, tenant: str = "t_m") -> str:
    return enqueue(r, tier, tenant=tenant, frames=frames)


async def scrape(client) -> dict[str, float]:
    resp = await client.get("/metrics")
    assert resp.status == 200 and resp.content_type == "text/plain"
    out = {}
    for family in text_string_to_metric_families(await resp.text()):
        for s in family.samples:
            labels = ",".join(f"{k}={v}" for k, v in sorted(s.labels.items()))
            out[f"{s.name}{{{labels}}}"] = s.value
    return out


async def test_metrics_follow_the_queue(app):
    client, r, _ = app
    queue(r, "pro", 300)
    queue(r, "pro", 200)
    queue(r, "free", 50)
    m = await scrape(client)
    assert m["toonz_queue_depth{tier=pro}"] == 2 and m["toonz_queue_depth{tier=free}"] == 1
    assert m["toonz_backlog_frames{tier=pro}"] == 500 and m["toonz_backlog_frames{tier=free}"] == 50
    assert m["toonz_jobs_submitted_total{tier=pro}"] == 2

    n = LeaseClient(r, "n1", LeaseSettings())
    lease = n.lease()
    n.complete(lease, ["video.mp4"])
    m = await scrape(client)
    assert m["toonz_backlog_frames{tier=pro}"] == 200  # the leased job left the backlog
    assert m["toonz_leases_total{}"] == 1 and m["toonz_lease_wait_seconds_count{}"] == 1
    assert m["toonz_lease_wait_seconds_bucket{le=+Inf}"] == 1
    assert m["toonz_jobs_finished_total{state=succeeded,tier=pro}"] == 1
    assert m["toonz_jobs_finished_total{state=failed,tier=pro}"] == 0


async def test_scaling_wants_nodes_for_the_backlog_and_drains_idle_ones(app):
    client, r, admin = app
    now_ms = time.time() * 1000
    for i, state in enumerate(("idle", "idle", "idle")):
        r.zadd(keys.NODES, {f"n{i}": now_ms})
        r.hset(keys.node(f"n{i}"), mapping={"state": state, "fps": 100})
    body = await (await client.get("/v1/admin/scaling", headers=admin)).json()
    assert body["nodes_wanted"] == 0 and body["drainable"] == ["n0", "n1", "n2"]

    queue(r, "pro", 100 * 60 * 5)  # five node-minutes of pro frames: pro's target is 60 s
    queue(r, "free", 100 * 60 * 30)
    body = await (await client.get("/v1/admin/scaling", headers=admin)).json()
    want_pro = math.ceil(30_000 / (100 * TARGET_WAIT_S["pro"]))
    want_free = math.ceil((30_000 + 180_000) / (100 * TARGET_WAIT_S["free"]))
    assert body["wanted_by_tier"]["pro"] == want_pro and body["wanted_by_tier"]["free"] == want_free
    assert body["nodes_wanted"] == max(want_pro, want_free) and body["drainable"] == []
    assert body["backlog_seconds"]["pro"] == 300.0

    r.sadd(keys.PAUSED, "pro", "free")  # paused tiers want nothing
    body = await (await client.get("/v1/admin/scaling", headers=admin)).json()
    assert body["nodes_wanted"] == 0


async def test_scaling_is_admin_only(app):
    client, r, _ = app
    key = create_key(r, "acme", "pro")
    resp = await client.get("/v1/admin/scaling", headers={"Authorization": f"Bearer {key}"})
    assert resp.status == 403


async def test_nodes_by_state_include_draining_and_drained(app):
    client, r, _ = app
    now_ms = time.time() * 1000
    states = {"n-idle": "idle", "n-busy": "busy", "n-draining": "draining", "n-drained1": "drained",
              "n-drained2": "drained"}
    for node, state in states.items():
        r.zadd(keys.NODES, {node: now_ms})
        r.hset(keys.node(node), mapping={"state": state})
    r.zadd(keys.NODES, {"n-stale": now_ms - 3600_000})  # unseen for an hour: not counted
    r.hset(keys.node("n-stale"), mapping={"state": "busy"})
    m = await scrape(client)
    assert m["toonz_nodes{state=idle}"] == 1 and m["toonz_nodes{state=busy}"] == 1
    assert m["toonz_nodes{state=draining}"] == 1 and m["toonz_nodes{state=drained}"] == 2

    r.hset(keys.node("n-draining"), "state", "drained")  # it finished its job
    m = await scrape(client)
    assert m["toonz_nodes{state=draining}"] == 0 and m["toonz_nodes{state=drained}"] == 3
