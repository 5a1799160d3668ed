"""Helpers for the tests that read renders and money (test_api_listing, test_api_progress,
test_api_billing): the app with two tenants and a node; jobs go through the farm's own Lua
scripts (tests.leasing.enqueue, farm.lease.LeaseClient) exactly as nodes drive them."""

from __future__ import annotations

from types import SimpleNamespace

from farm import keys
from farm.config import LeaseSettings, SchedulerConfig
from farm.lease import LeaseClient
from farm.tenants import create_key
from scheduler.app import create_app
from scheduler.progress import PROGRESS_TIMING, ProgressTiming
from tests.leasing import enqueue
from tests.test_api import auth, snapshot as _snapshot


ARTIFACTS = ["video.mp4", "timeline.json", "poster.png", "log.txt"]


def snapshot(ns) -> tuple:
    """What requests could change; the scheduler's own throughput sampling (a background
    loop, keys.THROUGHPUT*) writes on its clock, not on any request."""
    data, files = _snapshot(ns)
    prefix = getattr(keys, "THROUGHPUT", "\0").encode()
    return {k: v for k, v in data.items() if not k.startswith(prefix)}, files


async def reading_api(aiohttp_client, r, redis_url, tmp_path):
    """For an `api` fixture: the app, tenant acme (pro) with its key, and tenant other with
    its key; `node` leases jobs as a node does."""
    cfg = SchedulerConfig(redis_url=redis_url, data_dir=tmp_path / "data")
    ns = SimpleNamespace(r=r, cfg=cfg, key=create_key(r, "acme", "pro"),
                         other_key=create_key(r, "other", "pro"))
    ns.tenant = r.hget(keys.TENANT_NAMES, "acme").decode()
    ns.other = r.hget(keys.TENANT_NAMES, "other").decode()
    app = create_app(cfg)
    # The stream polls fast and beats often here, so the test waits on behaviour, not clocks.
    app[PROGRESS_TIMING] = ProgressTiming(poll_s=0.01, heartbeat_s=0.05)
    ns.client = await aiohttp_client(app)
    ns.node = LeaseClient(r, "n1", LeaseSettings(max_attempts=1))
    return ns


def submit(ns, tenant: str | None = None, **kw) -> str:
    return enqueue(ns.r, tier="pro", tenant=tenant or ns.tenant, **kw)


def finish(ns, outcome: str = "succeeded", artifacts: list[str] = ARTIFACTS) -> str:
    """A node leases the next job and ends it with `outcome`; its id."""
    lease = ns.node.lease()
    assert lease is not None
    if outcome == "succeeded":
        assert ns.node.complete(lease, artifacts) == "succeeded"
    else:
        ns.node.fail(lease, "boom")
    return lease.job_id


async def get_json(ns, path: str, key: str | None = None) -> dict:
    resp = await ns.client.get(path, headers=auth(key or ns.key))
    body = await resp.json()
    assert resp.status == 200, body
    return body
