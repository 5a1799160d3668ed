"""The console's admin API on the real aiohttp app and a real Redis: console sessions and
the live stream, retry, drain, the audit log, throughput; and a drain reaching a real
node process (LocalFarm)."""

from __future__ import annotations

import asyncio
import json
import time
from types import SimpleNamespace

import aiohttp
import pytest
import redis
import redis.asyncio as aioredis
import requests

from farm import keys
from farm.client import ToonzClient
from farm.config import LeaseSettings, SchedulerConfig
from farm.lease import LeaseClient
from farm.localfarm import LocalFarm
from farm.tenants import create_key
from scheduler import throughput
from scheduler.app import create_app


@pytest.fixture
async def console(aiohttp_client, redis_url, tmp_path, goforward):
    cfg = SchedulerConfig(redis_url=redis_url, data_dir=tmp_path / "data")
    r = redis.Redis.from_url(redis_url)
    ns = SimpleNamespace(r=r, cfg=cfg, url=redis_url, audio=goforward[0].read_bytes(),
                         key=create_key(r, "acme", "pro"),
                         admin=create_key(r, "operator", "enterprise", role="admin"))
    ns.client = await aiohttp_client(create_app(cfg))
    yield ns
    r.close()


def auth(key: str) -> dict:
    return {"Authorization": f"Bearer {key}"}


def snapshot(ns) -> tuple:
    """Everything stored: every Redis key with its value, and every file."""
    data = {k: ns.r.dump(k) for k in ns.r.keys("*")}
    files = sorted(str(p.relative_to(ns.cfg.data_dir)) for p in ns.cfg.data_dir.rglob("*") if p.is_file())
    return data, files


async def expect_error(resp, status: int, code: str) -> dict:
    body = await resp.json()
    assert resp.status == status, body
    assert body["error"]["code"] == code and len(body["error"]["message"]) > 10 and body["error"]["request_id"]
    return body


async def submit(ns) -> str:
    fd = aiohttp.FormData()
    fd.add_field("audio", ns.audio, filename="speech.wav", content_type="audio/wav")
    fd.add_field("quality", "preview")
    resp = await ns.client.post("/v1/renders", data=fd, headers=auth(ns.key))
    assert resp.status == 202, await resp.text()
    return (await resp.json())["job_id"]


def job(ns, job_id: str) -> dict:
    return {k.decode(): v.decode() for k, v in ns.r.hgetall(keys.job(job_id)).items()}


async def audit(ns) -> list[dict]:
    return (await (await ns.client.get("/v1/admin/audit", headers=auth(ns.admin))).json())["entries"]


async def events(resp, wanted: set[str], limit: int = 50) -> dict[str, dict]:
    """Read server-sent events until each name in `wanted` arrived; name -> last data."""
    seen, name, comments = {}, None, 0
    for _ in range(limit * 4):
        line = (await asyncio.wait_for(resp.content.readline(), 10)).decode().rstrip("\n")
        if line.startswith(":"):
            comments += 1
        elif line.startswith("event: "):
            name = line[7:]
        elif line.startswith("data: "):
            seen[name] = json.loads(line[6:])
            if wanted <= set(seen):
                seen["comments"] = comments
                return seen
    pytest.fail(f"no {wanted - set(seen)} event in the stream (saw {sorted(seen)})")


# sessions and the stream --------------------------------------------------------------
async def test_a_console_session_opens_the_stream(console):
    ns = console
    await submit(ns)
    resp = await ns.client.post("/v1/admin/session", headers=auth(ns.admin))
    assert resp.status == 201
    token = (await resp.json())["token"]
    stream = await ns.client.get(f"/v1/admin/stream?token={token}")
    assert stream.status == 200 and stream.content_type == "text/event-stream"
    got = await events(stream, {"overview", "audit", "throughput"})
    assert got["comments"] >= 1  # the heartbeat comment
    overview = got["overview"]
    assert [t["tier"] for t in overview["tiers"]] == ["enterprise", "pro", "starter", "free"]
    assert overview["tiers"][1]["depth"] == 1 and overview["jobs"][0]["tenant"] == "acme"
    assert got["audit"] == {"entries": []} and got["throughput"]["points"] == []
    # An action reaches open streams: the next audit event carries it.
    await ns.client.post("/v1/admin/tiers/free/pause", headers=auth(ns.admin))
    later = await events(stream, {"audit"})
    assert later["audit"]["entries"][0]["action"] == "pause"
    stream.close()
    # Tools that can send headers open it with the admin key.
    direct = await ns.client.get("/v1/admin/stream", headers=auth(ns.admin))
    assert "overview" in await events(direct, {"overview"})
    direct.close()


async def test_stream_and_session_refusals(console):
    ns = console
    before = snapshot(ns)
    await expect_error(await ns.client.get("/v1/admin/stream"), 401, "missing_session")
    await expect_error(await ns.client.get("/v1/admin/stream?token=tzs_made_up"), 401, "invalid_session")
    await expect_error(await ns.client.get("/v1/admin/stream?token=" + "x" * 500), 401, "invalid_session")
    await expect_error(await ns.client.get("/v1/admin/stream", headers=auth(ns.key)), 403, "admin_only")
    await expect_error(await ns.client.post("/v1/admin/session", headers=auth(ns.key)), 403, "admin_only")
    await expect_error(await ns.client.post("/v1/admin/session"), 401, "missing_api_key")
    assert snapshot(ns) == before
    token = (await (await ns.client.post("/v1/admin/session", headers=auth(ns.admin))).json())["token"]
    ns.r.delete(*ns.r.keys(keys.SESSION_PREFIX + "*"))  # as if it expired
    await expect_error(await ns.client.get(f"/v1/admin/stream?token={token}"), 401, "invalid_session")


async def test_a_stream_ends_with_its_session(console):
    ns = console
    token = (await (await ns.client.post("/v1/admin/session", headers=auth(ns.admin))).json())["token"]
    (session_key,) = ns.r.keys(keys.SESSION_PREFIX + "*")
    ns.r.pexpire(session_key, 1500)
    stream = await ns.client.get(f"/v1/admin/stream?token={token}")
    got = await events(stream, {"expired"}, limit=100)
    assert "new one" in got["expired"]["message"]
    assert (await asyncio.wait_for(stream.content.read(), 10)).strip() == b""  # then it ended


async def test_shutdown_ends_open_streams(aiohttp_server, redis_url, tmp_path):
    r = redis.Redis.from_url(redis_url)
    admin = create_key(r, "operator", "enterprise", role="admin")
    r.close()
    server = await aiohttp_server(create_app(SchedulerConfig(redis_url=redis_url, data_dir=tmp_path)))
    async with aiohttp.ClientSession() as session:
        stream = await session.get(server.make_url("/v1/admin/stream"), headers=auth(admin))
        await events(stream, {"overview"})
        # Without the app's on_shutdown hook, closing would wait for the stream until killed.
        await asyncio.wait_for(server.close(), 10)
        await asyncio.wait_for(stream.content.read(), 10)  # what was sent, then the end
        assert stream.content.at_eof()


async def test_non_admin_keys_are_refused_everywhere(console):
    ns = console
    job_id = await submit(ns)
    before = snapshot(ns)
    for method, path in (("POST", f"/v1/admin/jobs/{job_id}/retry"), ("POST", "/v1/admin/nodes/n1/drain"),
                         ("POST", "/v1/admin/nodes/n1/undrain"), ("GET", "/v1/admin/audit"),
                         ("GET", "/v1/admin/throughput"), ("GET", "/v1/admin/overview")):
        await expect_error(await ns.client.request(method, path, headers=auth(ns.key)), 403, "admin_only")
        await expect_error(await ns.client.request(method, path), 401, "missing_api_key")
    assert snapshot(ns) == before


# retry ----------------------------------------------------------------------------
async def test_retry_requeues_failed_and_canceled_jobs_only(console):
    ns = console
    admin = auth(ns.admin)
    job_id = await submit(ns)
    url = f"/v1/admin/jobs/{job_id}/retry"
    before = snapshot(ns)
    await expect_error(await ns.client.post(url, headers=admin), 409, "not_retryable")  # queued
    node = LeaseClient(ns.r, "n1", LeaseSettings(max_attempts=1))
    lease = node.lease()
    node.heartbeat(lease, 0.5)
    assert job(ns, job_id)["state"] == "running"
    before = snapshot(ns)
    await expect_error(await ns.client.post(url, headers=admin), 409, "not_retryable")  # running
    assert snapshot(ns) == before

    assert node.fail(lease, "RenderError: out of ink") == "failed"
    assert ns.r.sismember(keys.blocked(job_id), "n1")
    resp = await ns.client.post(url, headers=admin)
    assert resp.status == 200 and (await resp.json())["state"] == "queued"
    j = job(ns, job_id)
    assert (j["state"], j["attempts"], j["error"], j["node"], j["progress"]) == ("queued", "0", "", "", "0")
    assert not ns.r.exists(keys.blocked(job_id))  # every node may take it again
    assert ns.r.zscore(keys.queue("pro"), job_id) is not None
    assert ns.r.sismember(keys.tenant_active(j["tenant"]), job_id)
    assert float(ns.r.hget(keys.BACKLOG, "frames:pro")) == float(j["frames"])
    entry = (await audit(ns))[0]
    assert (entry["admin"], entry["action"], entry["target"], entry["outcome"]) == \
        ("operator", "retry", job_id, "queued")

    # It runs again from attempt 1, and a succeeded job cannot be retried.
    lease = node.lease()
    assert lease.job_id == job_id and job(ns, job_id)["attempts"] == "1"
    assert node.complete(lease, []) == "succeeded"
    before = snapshot(ns)
    await expect_error(await ns.client.post(url, headers=admin), 409, "not_retryable")
    assert snapshot(ns) == before

    other = await submit(ns)
    await ns.client.post(f"/v1/admin/jobs/{other}/cancel", headers=admin)
    assert (await (await ns.client.post(f"/v1/admin/jobs/{other}/retry", headers=admin)).json())["state"] == "queued"
    await expect_error(await ns.client.post("/v1/admin/jobs/r_0000000000000000/retry", headers=admin),
                       404, "job_not_found")
    await expect_error(await ns.client.post("/v1/admin/jobs/nope/retry", headers=admin), 404, "job_not_found")


async def test_retry_refuses_a_job_whose_input_is_gone(console):
    ns = console
    job_id = await submit(ns)
    await ns.client.post(f"/v1/admin/jobs/{job_id}/cancel", headers=auth(ns.admin))
    (ns.cfg.data_dir / "artifacts" / job_id / "input.audio").unlink()
    before = snapshot(ns)
    await expect_error(await ns.client.post(f"/v1/admin/jobs/{job_id}/retry", headers=auth(ns.admin)),
                       409, "input_missing")
    assert snapshot(ns) == before


# drain, audit -------------------------------------------------------------------------
async def test_drain_sets_and_lifts_the_flag_once(console):
    ns = console
    admin = auth(ns.admin)
    ns.r.hset(keys.node("n1"), mapping={"state": "idle", "cores": 4, "memory_mb": 8192, "host": "box"})
    ns.r.zadd(keys.NODES, {"n1": int(time.time() * 1000)})
    before = snapshot(ns)
    await expect_error(await ns.client.post("/v1/admin/nodes/ghost/drain", headers=admin), 404, "node_not_found")
    await expect_error(await ns.client.post(f"/v1/admin/nodes/{'n' * 300}/drain", headers=admin),
                       404, "node_not_found")
    assert snapshot(ns) == before

    body = await (await ns.client.post("/v1/admin/nodes/n1/drain", headers=admin)).json()
    assert body == {"node": "n1", "drain_requested": True, "changed": True, "state": "idle"}
    assert ns.r.hexists(keys.node("n1"), keys.NODE_DRAIN_FIELD)
    again = await (await ns.client.post("/v1/admin/nodes/n1/drain", headers=admin)).json()
    assert again["changed"] is False
    overview = await (await ns.client.get("/v1/admin/overview", headers=admin)).json()
    assert overview["nodes"][0]["drain_requested"] is True and overview["nodes"][0]["facts"]["host"] == "box"
    body = await (await ns.client.post("/v1/admin/nodes/n1/undrain", headers=admin)).json()
    assert body["changed"] is True and not ns.r.hexists(keys.node("n1"), keys.NODE_DRAIN_FIELD)
    entries = await audit(ns)
    assert [(e["action"], e["target"], e["outcome"]) for e in entries] == [
        ("undrain", "node n1", "drain lifted"), ("drain", "node n1", "drain requested")]


async def test_audit_log_records_actions_newest_first(console):
    ns = console
    admin = auth(ns.admin)
    job_id = await submit(ns)
    await ns.client.post("/v1/admin/tiers/pro/pause", headers=admin)
    await ns.client.post("/v1/admin/tiers/pro/pause", headers=admin)  # already paused: nothing to record
    await ns.client.post(f"/v1/admin/jobs/{job_id}/priority", json={"priority": 90}, headers=admin)
    await ns.client.post(f"/v1/admin/jobs/{job_id}/cancel", headers=admin)
    before = snapshot(ns)
    await expect_error(await ns.client.post(f"/v1/admin/jobs/{job_id}/cancel", headers=admin), 409,
                       "already_finished")  # refused: not recorded
    assert snapshot(ns) == before
    entries = await audit(ns)
    assert [(e["action"], e["target"], e["outcome"]) for e in entries] == [
        ("cancel", job_id, "canceled"), ("priority", job_id, "priority 90"), ("pause", "tier pro", "paused")]
    assert all(e["admin"] == "operator" and e["key_id"] and e["time"] > 0 for e in entries)
    one = await (await ns.client.get("/v1/admin/audit?limit=1", headers=admin)).json()
    assert [e["action"] for e in one["entries"]] == ["cancel"]
    for bad in ("0", "abc", "-1", "100000"):
        await expect_error(await ns.client.get(f"/v1/admin/audit?limit={bad}", headers=admin), 400, "invalid_limit")


async def test_overview_lists_failures_and_tier_etas(console):
    ns = console
    job_id = await submit(ns)
    node = LeaseClient(ns.r, "n1", LeaseSettings(max_attempts=1))
    node.fail(node.lease(), "RenderError: out of ink")
    queued = await submit(ns)
    ns.r.hset(keys.node("n1"), mapping={"state": "idle", "fps": "50.0", "cores": 2, "memory_mb": 4096})
    body = await (await ns.client.get("/v1/admin/overview", headers=auth(ns.admin))).json()
    (failure,) = body["failures"]
    assert (failure["job_id"], failure["error"], failure["attempts"], failure["node"], failure["tenant"]) == \
        (job_id, "RenderError: out of ink", 1, "n1", "acme")
    pro = body["tiers"][1]
    frames = float(job(ns, queued)["frames"])
    assert pro["depth"] == 1 and pro["eta_s"] == round(frames / 50.0, 1)
    assert body["tiers"][0]["eta_s"] == 0.0
    await ns.client.post("/v1/admin/tiers/pro/pause", headers=auth(ns.admin))
    body = await (await ns.client.get("/v1/admin/overview", headers=auth(ns.admin))).json()
    assert body["tiers"][1]["eta_s"] is None


# throughput --------------------------------------------------------------------------
async def test_throughput_samples_node_frame_counters(console):
    ns = console
    ar = aioredis.from_url(ns.url)
    now = time.time()
    sampler = throughput.Sampler()
    ns.r.zadd(keys.NODES, {"a": 1, "b": 1})
    ns.r.hset(keys.node("a"), mapping={keys.NODE_FRAMES_FIELD: 1000, "started_at": now - 140})
    # A new farm: the frames rendered since the node started.
    assert await sampler.sample(ar, now=now - 40) == [round(now - 40, 3), 10.0, 1000]
    before = snapshot(ns)
    assert await sampler.sample(ar, now=now - 30) is None  # idle: nothing written
    assert snapshot(ns) == before
    ns.r.hincrby(keys.node("a"), keys.NODE_FRAMES_FIELD, 300)
    ns.r.hset(keys.node("b"), keys.NODE_FRAMES_FIELD, 200)  # a new node: all of its frames are new
    assert await sampler.sample(ar, now=now - 20) == [round(now - 20, 3), 50.0, 500]
    # A second scheduler looking at the same counters finds them accounted for.
    assert await throughput.Sampler().sample(ar, now=now - 19) is None
    ns.r.hincrby(keys.node("b"), keys.NODE_FRAMES_FIELD, 100)
    ns.r.zrem(keys.NODES, "b")  # b signed off after finishing those frames: they still count
    assert (await sampler.sample(ar, now=now - 10))[1:] == [10.0, 100]
    ns.r.zadd(keys.NODES, {"b": 1})  # b comes back under the same id: not a new node
    assert await sampler.sample(ar, now=now) is None
    ns.r.hincrby(keys.node("a"), keys.NODE_FRAMES_FIELD, 40)
    # A restarted scheduler spreads the frames over the time since the last write.
    assert (await throughput.Sampler().sample(ar, now=now + 10))[1:] == [2.0, 40]
    resp = await ns.client.get("/v1/admin/throughput", headers=auth(ns.admin))
    body = await resp.json()
    assert [p[2] for p in body["points"]] == [1000, 500, 100, 40] and body["interval_s"] == throughput.THROUGHPUT_SAMPLE_S
    await ar.aclose()


# a real node ------------------------------------------------------------------------
@pytest.mark.slow
def test_drain_reaches_a_real_node(tmp_path, goforward):
    farm = LocalFarm(tmp_path / "farm", nodes=1, env={"TOONZ_LEASE_TTL_S": "6"}).start()
    admin = {"Authorization": f"Bearer {farm.admin_key}"}
    client = ToonzClient(farm.scheduler_url, farm.api_key)
    r = redis.Redis.from_url(farm.redis.url)

    def post(path: str) -> dict:
        resp = requests.post(farm.scheduler_url + path, headers=admin, timeout=10)
        assert resp.ok, resp.text
        return resp.json()

    def get(path: str) -> dict:
        return requests.get(farm.scheduler_url + path, headers=admin, timeout=10).json()

    def node_state() -> str:
        return (r.hget(keys.node("local-node-1"), "state") or b"").decode()

    def wait(predicate, what: str, timeout_s: float = 120):
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if predicate():
                return
            time.sleep(0.1)
        pytest.fail(f"timed out waiting for {what}")

    def submit_one() -> str:
        return client.create_animation(audio_path=goforward[0], transcript=goforward[1], quality="preview").job_id

    try:
        first = submit_one()
        wait(lambda: r.hget(keys.job(first), "state") != b"queued", "the first job to be leased")
        post("/v1/admin/tiers/pro/pause")  # holds the second job while the drain is asked
        second = submit_one()
        post("/v1/admin/nodes/local-node-1/drain")
        wait(lambda: node_state() in ("draining", "drained"), "the node to notice the drain")
        post("/v1/admin/tiers/pro/resume")
        assert client.wait_for_completion(first, timeout=180).state == "succeeded"  # it finished its job
        wait(lambda: node_state() == "drained", "the node to be drained")
        time.sleep(3)  # several lease loops: a drained node leases nothing
        assert r.hget(keys.job(second), "state") == b"queued"
        assert farm.node_process("local-node-1").poll() is None  # still up, and seen
        (node,) = get("/v1/admin/overview")["nodes"]
        assert node["state"] == "drained" and node["last_seen_s_ago"] < 3 and node["frames_rendered"] > 0
        assert get("/v1/admin/scaling")["nodes_live"] == 0  # a drained node adds no capacity

        post("/v1/admin/nodes/local-node-1/undrain")
        assert client.wait_for_completion(second, timeout=180).state == "succeeded"
        wait(lambda: node_state() == "idle", "the node to be idle again")
        actions = [e["action"] for e in get("/v1/admin/audit")["entries"]]
        assert actions == ["undrain", "resume", "drain", "pause"]
    finally:
        r.close()
        farm.stop()
        for log in sorted(farm.logs.glob("*.log")):  # shown by pytest when the test fails
            print(f"--- {log.name}\n{log.read_text()[-2500:]}")

