"""Chunked renders in Redis and the node API: split, lease by id, complete, cancel, fail.

Real redis-server and the real scheduler app; the processes themselves are in
tests/test_chunks.py.
"""

from __future__ import annotations

import json

import pytest
import redis

from farm import keys, lua
from farm.config import LeaseSettings, SchedulerConfig
from farm.errors import StaleLease
from farm.jobs import Job, JobState, chunk_id
from farm.lease import LeaseClient, month_of, split_args
from farm.tenants import create_key
from node.chunks import FrameRange, plan
from scheduler.app import create_app
from tests.leasing import enqueue
from tests.test_api import auth, expect_error, snapshot

SETTINGS = LeaseSettings(ttl_s=30.0, max_attempts=2)


def split(r, lease, ranges) -> list[str]:
    got = lua.register(r)["split"](args=split_args(lease.job_id, lease.fence, ranges))
    return [g.decode() for g in got]


def job(r, job_id: str) -> Job:
    return Job.from_redis(r.hgetall(keys.job(job_id)))


@pytest.fixture
def leased(r):
    """A pro render of 300 frames leased by node n1, and the tenant's next render queued."""
    first = enqueue(r, tier="pro", tenant="t1", frames=300, price_cents=50, duration_s=10.0)
    n1 = LeaseClient(r, "n1", SETTINGS)
    lease = n1.lease()
    assert lease.job_id == first
    second = enqueue(r, tier="pro", tenant="t1", priority=100)
    return n1, lease, second


def test_split_queues_chunks_ahead_of_the_tenant_uncharged_and_unlisted(r, leased):
    n1, lease, second = leased
    ids = split(r, lease, [(0, 100), (100, 200), (200, 300)])
    assert ids == [chunk_id(lease.job_id, k) for k in range(3)]
    c1 = job(r, ids[1])
    assert (c1.kind, c1.parent, c1.frame_start, c1.frame_stop, c1.frames) == ("chunk", lease.job_id, 100, 200, 100)
    assert (c1.tenant, c1.tier, c1.quality, c1.template, c1.price_cents) == ("t1", "pro", "preview", "explainer", 0)
    assert c1.state == JobState.QUEUED and c1.duration_s == pytest.approx(10.0 / 3, abs=1e-3)
    assert job(r, lease.job_id).chunks == tuple(ids)
    # Ahead of the tenant's next render, even one of the highest priority; in order.
    order = [m.decode() for m in r.zrange(keys.tenant_queue("pro", "t1"), 0, -1)]
    assert order == [*ids, second]
    # Not in the tenant's quota nor in its listing; the backlog counts their frames.
    assert r.smembers(keys.tenant_active("t1")) == {lease.job_id.encode(), second.encode()}
    assert not any(i.encode() in r.zrange(keys.tenant_jobs("t1"), 0, -1) for i in ids)
    assert float(r.hget(keys.BACKLOG, "frames:pro")) == 300 + 90
    # Any node leases them like other jobs, chunk 0 first.
    n2 = LeaseClient(r, "n2", SETTINGS)
    assert n2.lease().job_id == ids[0]


def test_split_is_idempotent_and_fenced(r, leased):
    n1, lease, _ = leased
    ids = split(r, lease, [(0, 150), (150, 300)])
    assert split(r, lease, [(0, 100), (100, 200), (200, 300)]) == ids  # the first split stands
    with pytest.raises(redis.ResponseError, match="STALE"):
        split(r, type(lease)(lease.job_id, lease.fence + 1), [(0, 300)])
    with pytest.raises(redis.ResponseError, match="INVALID"):
        split(r, LeaseClient(r, "n2", SETTINGS).lease(), [(0, 300)])  # a chunk is not split


def test_a_render_leased_again_keeps_its_chunks(r, leased):
    n1, lease, second = leased
    ids = split(r, lease, [(0, 150), (150, 300)])
    n2 = LeaseClient(r, "n2", SETTINGS)
    c0 = n2.lease()
    assert n2.complete(c0, ["video.h264"]) == "succeeded"
    n1.release(lease)  # the render's node went away; its render is queued again
    n3 = LeaseClient(r, "n3", SETTINGS)
    assert n3.lease().job_id == ids[1]  # its chunks still go first
    assert n3.lease().job_id == second  # (priority 100)
    again = n3.lease()
    assert again.job_id == lease.job_id
    assert split(r, again, [(0, 100), (100, 300)]) == ids
    assert job(r, ids[0]).state == JobState.SUCCEEDED and job(r, ids[1]).state == JobState.LEASED


def test_chunks_are_never_charged_and_the_render_once(r, leased):
    n1, lease, _ = leased
    ids = split(r, lease, [(0, 150), (150, 300)])
    for cid in ids:
        got = n1.lease_chunk(lease, cid)
        assert got.job_id == cid and n1.complete(got, ["video.h264"]) == "succeeded"
    usage = keys.usage("t1", month_of())
    assert r.hget(usage, "renders") is None and r.xlen(keys.ledger("t1")) == 0
    assert n1.complete(lease, ["video.mp4"]) == "succeeded"
    assert int(r.hget(usage, "renders")) == 1 and int(r.hget(usage, "cost_cents")) == 50
    assert r.xlen(keys.ledger("t1")) == 1
    assert int(r.hget(keys.STATS, "done:pro:succeeded")) == 1  # chunks are not renders


def test_lease_chunk_takes_only_queued_chunks_of_the_render_it_holds(r, leased):
    n1, lease, second = leased
    ids = split(r, lease, [(0, 150), (150, 300)])
    n2 = LeaseClient(r, "n2", SETTINGS)
    taken = n2.lease()
    assert n1.lease_chunk(lease, taken.job_id) is None  # another node has it
    with pytest.raises(StaleLease):
        n1.lease_chunk(type(lease)(lease.job_id, lease.fence + 1), ids[1])
    with pytest.raises(redis.ResponseError, match="INVALID"):
        n1.lease_chunk(lease, second)
    got = n1.lease_chunk(lease, ids[1])
    assert got.fence > lease.fence and job(r, ids[1]).node == "n1" and job(r, ids[1]).attempts == 1


def test_a_chunk_failed_for_good_fails_its_render_and_stops_the_rest(r, leased):
    n1, lease, _ = leased
    ids = split(r, lease, [(0, 100), (100, 200), (200, 300)])
    n2, n3 = LeaseClient(r, "n2", SETTINGS), LeaseClient(r, "n3", SETTINGS)
    c0 = n2.lease()
    assert n2.fail(c0, "RenderError: out of ink") == "queued"
    running = n3.lease()  # chunk 0 again (n3 never failed it)
    assert running.job_id == ids[0]
    c1 = n2.lease()
    assert c1.job_id == ids[1]
    assert n3.fail(running, "RenderError: out of ink") == "failed"  # its second attempt
    parent = job(r, lease.job_id)
    assert parent.state == JobState.FAILED and "out of ink" in parent.error and ids[0] in parent.error
    assert job(r, ids[1]).state == JobState.CANCEL_REQUESTED  # n2 stops it at its next heartbeat
    assert job(r, ids[2]).state == JobState.CANCELED
    assert r.zcard(keys.tenant_queue("pro", "t1")) == 1  # only the tenant's other render is left
    with pytest.raises(StaleLease):
        n1.heartbeat(lease)  # the render's node finds out at its next heartbeat
    assert n2.fail(c1, "canceled") == "canceled"
    assert r.hget(keys.usage("t1", month_of()), "renders") is None


def test_cancel_of_the_render_reaches_its_chunks_at_once(r, leased):
    n1, lease, _ = leased
    ids = split(r, lease, [(0, 150), (150, 300)])
    running = LeaseClient(r, "n2", SETTINGS).lease()
    assert lua.register(r)["cancel"](args=[lease.job_id]) == b"cancel_requested"
    assert job(r, running.job_id).state == JobState.CANCEL_REQUESTED
    assert job(r, ids[1]).state == JobState.CANCELED
    assert n1.fail(lease, "canceled") == "canceled"
    # Canceled chunks send no webhook event: only the render's end is an event.
    r.zadd(keys.tenant_webhooks("t1"), {"wh_1": 1})
    assert LeaseClient(r, "n2", SETTINGS).fail(running, "stopped") == "canceled"
    assert [e[1][b"job"].decode() for e in r.xrange(keys.EVENTS)] == []


def test_expired_chunks_are_reaped_like_any_job(r, leased):
    n1, lease, _ = leased
    ids = split(r, lease, [(0, 150), (150, 300)])
    short = LeaseClient(r, "n2", LeaseSettings(ttl_s=0.001, max_attempts=2))
    got = short.lease()
    assert got.job_id == ids[0]
    import time
    time.sleep(0.01)
    flat = lua.register(r)["reap"](args=[2, 100, 0])
    assert [f.decode() for f in flat] == [ids[0], "queued"]
    assert job(r, ids[0]).state == JobState.QUEUED and job(r, lease.job_id).state == JobState.LEASED


def test_plan_and_the_frames_past_the_scene_end():
    assert plan(300, 30, 4, min_chunk_s=2) == [range(0, 100), range(100, 200), range(200, 300)]
    with pytest.raises(Exception, match="at least"):
        plan(300, 30, 4)  # the default minimum is 10 s

    class Scene:
        n_frames, fps, art = 10, 30.0, None

        def frame(self, i):
            assert 0 <= i < 10
            return i

    part = FrameRange(Scene(), 8, 12)  # the audio runs two frames past the timeline
    assert [part.frame(i) for i in range(part.n_frames)] == [8, 9, 9, 9]


# --- the node API -----------------------------------------------------------------------

@pytest.fixture
async def node_api(aiohttp_client, redis_url, tmp_path):
    cfg = SchedulerConfig(redis_url=redis_url, data_dir=tmp_path / "data")
    r = redis.Redis.from_url(redis_url)
    key = create_key(r, "acme", "pro")
    client = await aiohttp_client(create_app(cfg))
    yield client, r, cfg, key, r.hget(keys.TENANT_NAMES, "acme").decode()
    r.close()


async def test_split_through_the_node_api(node_api):
    client, r, cfg, key, tenant = node_api
    render = enqueue(r, tier="pro", tenant=tenant, frames=300)
    other = enqueue(r, tier="free", tenant="t2", frames=300)
    n1 = LeaseClient(r, "n1", SETTINGS)
    lease = n1.lease()
    assert lease.job_id == render
    head = {"X-Toonz-Fence": str(lease.fence)}
    url = f"/v1/node/jobs/{render}/chunks"
    ns = type("NS", (), {"r": r, "cfg": cfg})
    before = snapshot(ns)
    for body, code in (({"ranges": [[0, 100], [150, 300]]}, "invalid_chunks"),
                       ({"ranges": [[1, 300]]}, "invalid_chunks"),
                       ({"ranges": [[0, 0]]}, "invalid_chunks"),
                       ({"ranges": [[0, True]]}, "invalid_chunks"),
                       ({"ranges": []}, "invalid_chunks"),
                       ({"ranges": [[k, k + 1] for k in range(65)]}, "invalid_chunks"),
                       ({"nothing": 1}, "invalid_chunks")):
        await expect_error(await client.post(url, json=body, headers=head), 400, code)
    await expect_error(await client.post(url, data=b"{not json", headers=head), 400, "invalid_json")
    await expect_error(await client.post(url, json={"ranges": [[0, 300]]},
                                         headers={"X-Toonz-Fence": str(lease.fence + 1)}), 409, "stale_lease")
    assert snapshot(ns) == before
    resp = await client.post(url, json={"ranges": [[0, 150], [150, 300]]}, headers=head)
    assert resp.status == 201
    ids = (await resp.json())["chunks"]
    assert ids == [chunk_id(render, 0), chunk_id(render, 1)]
    resp = await client.post(url, json={"ranges": [[0, 300]]}, headers=head)
    assert (await resp.json())["chunks"] == ids

    # A chunk's node reads its render's files, stores its stream in the render's folder;
    # the render's node reads it back. Nothing outside the render is reachable.
    (cfg.data_dir / "artifacts" / render).mkdir(parents=True, exist_ok=True)
    (cfg.data_dir / "artifacts" / render / "timeline.full.json").write_text(json.dumps({"duration": 1}))
    c0 = LeaseClient(r, "n2", SETTINGS).lease()
    chead = {"X-Toonz-Fence": str(c0.fence)}
    resp = await client.get(f"/v1/node/jobs/{c0.job_id}/related/{render}/timeline.full.json", headers=chead)
    assert resp.status == 200 and json.loads(await resp.read()) == {"duration": 1}
    resp = await client.put(f"/v1/node/jobs/{c0.job_id}/artifacts/video.h264", data=b"h264 bytes",
                            headers=chead)
    assert resp.status == 201
    assert (cfg.data_dir / "artifacts" / render / "c0.video.h264").read_bytes() == b"h264 bytes"
    resp = await client.get(f"/v1/node/jobs/{render}/related/{c0.job_id}/video.h264", headers=head)
    assert resp.status == 200 and await resp.read() == b"h264 bytes"
    await expect_error(await client.get(f"/v1/node/jobs/{c0.job_id}/related/{other}/input.audio",
                                        headers=chead), 404, "job_not_found")
    await expect_error(await client.get(f"/v1/node/jobs/{render}/related/{ids[1]}/video.h264",
                                        headers=head), 404, "artifact_not_found")
    await expect_error(await client.get(f"/v1/node/jobs/{render}/related/{ids[1]}/video.h264"),
                       409, "stale_lease")
    # Once the render succeeded, the node that completed it deletes the chunks' streams.
    delete = f"/v1/node/jobs/{render}/chunks"
    await expect_error(await client.delete(delete, headers=head), 409, "stale_lease")  # not done yet
    assert n1.complete(lease, ["video.mp4"]) == "succeeded"
    await expect_error(await client.delete(delete, headers={"X-Toonz-Fence": str(c0.fence)}),
                       409, "stale_lease")
    resp = await client.delete(delete, headers=head)
    assert resp.status == 200 and (await resp.json())["deleted"] == 1
    assert not (cfg.data_dir / "artifacts" / render / "c0.video.h264").exists()
    assert (cfg.data_dir / "artifacts" / render / "timeline.full.json").exists()

    # The tenant's API never shows a chunk: not in its listing, not even by its id.
    listed = (await (await client.get("/v1/renders", headers=auth(key))).json())["renders"]
    assert [x["job_id"] for x in listed] == [render]
    await expect_error(await client.get(f"/v1/renders/{ids[0]}", headers=auth(key)), 404, "job_not_found")
