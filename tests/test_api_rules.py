"""The API's rules on a real app and a real Redis: API keys (list, revoke), admin
tenant endpoints, rate limits, idempotent creates, batches, readiness."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from dataclasses import replace
from types import SimpleNamespace

import pytest
import redis
from aiohttp import web

from farm.audio import silent_wav
from farm import keys
from farm.config import Limits, SchedulerConfig
from farm.errors import QuotaExceeded
from farm.presets import RateLimit
from farm.redisproc import RedisProcess
from farm.tenants import Principal, Tier, create_key, digest
from scheduler import creation
from scheduler.app import create_app
from scheduler.intake import validate_fields
from tests.test_api import auth, expect_error, form, snapshot


def everything(ns) -> dict:
    """Every Redis key and value, rate-limit buckets included."""
    return {k: ns.r.dump(k) for k in ns.r.keys("*")}


def job_count(ns) -> int:
    return ns.r.zcard(keys.ALL_JOBS)


@pytest.fixture
def admin(api) -> dict:
    return auth(create_key(api.r, "operator", "enterprise", role="admin"))


@pytest.fixture
async def origin(aiohttp_server):
    """A local web server with WAV files: a.wav, b.wav (0.7 s), long.wav (61 s), missing.wav
    (404); slow.wav waits for `release`."""
    ns = SimpleNamespace(hits=[], release=asyncio.Event(), started=asyncio.Event())

    async def serve(request):
        ns.hits.append(request.path)
        if request.path == "/slow.wav":
            ns.started.set()
            await ns.release.wait()
        if request.path == "/missing.wav":
            return web.Response(status=404)
        seconds = {"/b.wav": 0.7, "/long.wav": 61}.get(request.path, 0.5)
        return web.Response(body=silent_wav(seconds), content_type="audio/wav")

    app = web.Application()
    app.router.add_get("/{name}", serve)
    server = await aiohttp_server(app)
    ns.url = lambda name: str(server.make_url(f"/{name}"))
    return ns


def open_urls(api) -> SchedulerConfig:
    return replace(api.cfg, limits=Limits(allow_private_urls=True))


# --- API keys and the admin tenant endpoints ---------------------------------------------


async def test_tenant_keys_are_listed_without_the_key_and_revoked(api, admin):
    ns = await api.make()
    resp = await ns.client.post("/v1/admin/tenants", json={"name": "globex", "tier": "starter"},
                                headers=admin)
    body = await resp.json()
    assert resp.status == 201, body
    tenant_id, first = body["tenant"]["tenant_id"], body["key"]
    assert body["tenant"]["tier"] == "starter" and first["api_key"].startswith("tz_live_")
    assert (await ns.client.get("/v1/usage", headers=auth(first["api_key"]))).status == 200

    resp = await ns.client.post(f"/v1/admin/tenants/{tenant_id}/keys", headers=admin)
    second = await resp.json()
    assert resp.status == 201 and second["key_id"] != first["key_id"]
    listing = await ns.client.get(f"/v1/admin/tenants/{tenant_id}/keys", headers=admin)
    text = await listing.text()
    assert first["api_key"] not in text and second["api_key"] not in text
    assert first["api_key"][-4:] in text  # the hint, and only the hint
    rows = (await listing.json())["keys"]
    assert [k["key_id"] for k in rows] == [first["key_id"], second["key_id"]]
    assert all(k["hint"] == "..." + s["api_key"][-4:] and k["role"] == "api"
               for k, s in zip(rows, (first, second)))
    for stored in ns.r.keys("*"):  # nothing in Redis holds a key in clear
        value = ns.r.dump(stored)
        assert first["api_key"].encode() not in stored + value

    resp = await ns.client.delete(f"/v1/admin/keys/{first['key_id']}", headers=admin)
    assert resp.status == 200 and (await resp.json())["revoked"] is True
    await expect_error(await ns.client.get("/v1/usage", headers=auth(first["api_key"])),
                       401, "invalid_api_key")
    assert (await ns.client.get("/v1/usage", headers=auth(second["api_key"]))).status == 200
    rows = (await (await ns.client.get(f"/v1/admin/tenants/{tenant_id}/keys", headers=admin)).json())["keys"]
    assert [k["key_id"] for k in rows] == [second["key_id"]]
    before = snapshot(ns)
    for gone in (first["key_id"], "key_00000000", "nonsense"):
        await expect_error(await ns.client.delete(f"/v1/admin/keys/{gone}", headers=admin),
                           404, "key_not_found")
    assert snapshot(ns) == before


async def test_cli_key_created_by_create_key_is_listed_and_revoked(api, admin):
    ns = await api.make()
    tenant_id = ns.r.hget(keys.TENANT_NAMES, "acme").decode()
    rows = (await (await ns.client.get(f"/v1/admin/tenants/{tenant_id}/keys", headers=admin)).json())["keys"]
    assert len(rows) == 1 and rows[0]["hint"] == "..." + ns.key[-4:]
    await ns.client.delete(f"/v1/admin/keys/{rows[0]['key_id']}", headers=admin)
    await expect_error(await ns.client.get("/v1/usage", headers=auth(ns.key)), 401, "invalid_api_key")


def test_cli_list_and_revoke_keys(api):
    def toonz(*args):
        return subprocess.run([sys.executable, "-m", "farm.cli.main", "admin", *args,
                               "--redis-url", api.cfg.redis_url], capture_output=True, text=True)

    res = toonz("list-keys", "acme")
    assert res.returncode == 0, res.stderr
    key_id = res.stdout.split()[0]
    assert key_id.startswith("key_") and res.stdout.rstrip().endswith(api.key[-4:])
    assert api.key not in res.stdout
    assert toonz("revoke-key", key_id).returncode == 0
    assert not api.r.exists(keys.api_key(digest(api.key)))
    assert toonz("list-keys", "acme").stdout == ""
    bad = toonz("revoke-key", key_id)
    assert bad.returncode == 2 and "key_not_found" in bad.stderr
    assert toonz("list-keys", "nobody").returncode == 2


async def test_admin_tenants_tiers_and_stats(api, admin, goforward):
    ns = await api.make()
    await ns.client.post("/v1/renders", data=form(goforward[0].read_bytes()), headers=auth(ns.key))
    before = snapshot(ns)
    await expect_error(await ns.client.post("/v1/admin/tenants", json={"name": "acme", "tier": "pro"},
                                            headers=admin), 409, "tenant_exists")
    await expect_error(await ns.client.post("/v1/admin/tenants", json={"name": "new", "tier": "gold"},
                                            headers=admin), 400, "unknown_tier")
    await expect_error(await ns.client.post("/v1/admin/tenants", json={"name": "no spaces"},
                                            headers=admin), 400, "invalid_tenant")
    assert snapshot(ns) == before

    tenants = (await (await ns.client.get("/v1/admin/tenants", headers=admin)).json())["tenants"]
    acme = next(t for t in tenants if t["name"] == "acme")
    assert acme["tier"] == "pro" and acme["renders_this_month"] == 0 and acme["created_at"] > 0
    url = f"/v1/admin/tenants/{acme['tenant_id']}/tier"
    resp = await ns.client.patch(url, json={"tier": "free"}, headers=admin)
    assert resp.status == 200 and (await resp.json())["tier"] == "free"
    usage = await (await ns.client.get("/v1/usage", headers=auth(ns.key))).json()
    assert usage["tier"] == "free"
    await expect_error(await ns.client.post(url, json={"tier": "gold"}, headers=admin), 400, "unknown_tier")
    await expect_error(await ns.client.post("/v1/admin/tenants/t_000000000000/tier", json={"tier": "pro"},
                                            headers=admin), 404, "tenant_not_found")

    tiers = (await (await ns.client.get("/v1/admin/tiers", headers=admin)).json())["tiers"]
    assert [t["tier"] for t in tiers] == ["enterprise", "pro", "starter", "free"]
    free = tiers[-1]
    assert free["renders_per_month"] == 10 and free["max_audio_s"] == 60
    assert free["rate_limit"]["tenant_burst"] > free["rate_limit"]["burst"] > 10  # above the quota

    stats = await (await ns.client.get("/v1/admin/stats", headers=admin)).json()
    assert stats["tenants"] == 2 and stats["jobs"]["submitted"] == 1 and stats["jobs"]["queued"] == 1
    assert stats["jobs_by_tier"]["pro"]["queued"] == 1 and stats["leases"]["active"] == 0


@pytest.mark.parametrize("method,path", [
    ("POST", "/v1/admin/tenants"), ("GET", "/v1/admin/tenants"),
    ("PATCH", "/v1/admin/tenants/t_000000000000/tier"), ("POST", "/v1/admin/tenants/t_000000000000/keys"),
    ("GET", "/v1/admin/tenants/t_000000000000/keys"), ("DELETE", "/v1/admin/keys/key_00000000"),
    ("GET", "/v1/admin/tiers"), ("GET", "/v1/admin/stats"),
])
async def test_admin_endpoints_refuse_tenant_keys(api, method, path):
    ns = await api.make()
    before = snapshot(ns)
    resp = await ns.client.request(method, path, json={"name": "x", "tier": "pro"}, headers=auth(ns.key))
    await expect_error(resp, 403, "admin_only")
    await expect_error(await ns.client.request(method, path), 401, "missing_api_key")
    assert snapshot(ns) == before


async def test_another_tenants_render_is_404(api, admin, goforward):
    ns = await api.make()
    job_id = (await (await ns.client.post("/v1/renders", data=form(goforward[0].read_bytes()),
                                          headers=auth(ns.key))).json())["job_id"]
    body = await (await ns.client.post("/v1/admin/tenants", json={"name": "rival", "tier": "pro"},
                                       headers=admin)).json()
    rival = auth(body["key"]["api_key"])
    await expect_error(await ns.client.get(f"/v1/renders/{job_id}", headers=rival), 404, "job_not_found")
    await expect_error(await ns.client.post(f"/v1/renders/{job_id}/cancel", headers=rival),
                       404, "job_not_found")


# --- rate limits ---------------------------------------------------------------------------


async def test_rate_limit_edge_per_key_and_per_tenant(api, admin):
    # 0.001 tokens/s: a test would need 1000 s for one token to come back.
    ns = await api.make(replace(api.cfg, limits=Limits(rate_limit=RateLimit(0.001, 3))))
    for left in (2, 1, 0):
        resp = await ns.client.get("/v1/usage", headers=auth(ns.key))
        assert resp.status == 200
        assert resp.headers["X-RateLimit-Limit"] == "3"
        assert resp.headers["X-RateLimit-Remaining"] == str(left)
    before = everything(ns)
    resp = await ns.client.get("/v1/usage", headers=auth(ns.key))
    await expect_error(resp, 429, "rate_limited")
    assert int(resp.headers["Retry-After"]) >= 1
    resp = await ns.client.post("/v1/renders", data=form(silent_wav(0.5)), headers=auth(ns.key))
    await expect_error(resp, 429, "rate_limited")
    assert everything(ns) == before  # a refusal takes no token and stores nothing

    # A second key of the same tenant has its own bucket, but the tenant's (2 x 3) runs dry.
    tenant_id = ns.r.hget(keys.TENANT_NAMES, "acme").decode()
    second = (await (await ns.client.post(f"/v1/admin/tenants/{tenant_id}/keys", headers=admin)).json())["api_key"]
    third = (await (await ns.client.post(f"/v1/admin/tenants/{tenant_id}/keys", headers=admin)).json())["api_key"]
    for _ in range(3):
        assert (await ns.client.get("/v1/usage", headers=auth(second))).status == 200
    await expect_error(await ns.client.get("/v1/usage", headers=auth(third)), 429, "rate_limited")

    # Other tenants, admin endpoints and probes are not limited by acme's use.
    other = create_key(ns.r, "other", "pro")
    assert (await ns.client.get("/v1/usage", headers=auth(other))).status == 200
    for _ in range(5):
        assert (await ns.client.get("/v1/admin/tiers", headers=admin)).status == 200
        assert (await ns.client.get("/ready")).status == 200


async def test_rate_limits_can_be_switched_off(api):
    ns = await api.make(replace(api.cfg, limits=Limits(rate_limit=RateLimit(0.001, 1),
                                                       rate_limit_scale=0)))
    for _ in range(5):
        resp = await ns.client.get("/v1/usage", headers=auth(ns.key))
        assert resp.status == 200 and "X-RateLimit-Remaining" not in resp.headers


# --- idempotency ---------------------------------------------------------------------------


async def test_idempotent_upload_retry_returns_the_first_answer(api):
    ns = await api.make()
    audio = silent_wav(0.5)
    headers = {**auth(ns.key), "Idempotency-Key": "order-42"}
    first = await ns.client.post("/v1/renders", data=form(audio, quality="preview"), headers=headers)
    body = await first.json()
    assert first.status == 202, body
    again = await ns.client.post("/v1/renders", data=form(audio, quality="preview"), headers=headers)
    assert again.status == 202 and await again.json() == body
    assert again.headers["Idempotent-Replayed"] == "true"
    assert job_count(ns) == 1

    before = snapshot(ns)
    for changed in (form(silent_wav(0.6), quality="preview"), form(audio, quality="hd")):
        resp = await ns.client.post("/v1/renders", data=changed, headers=headers)
        await expect_error(resp, 409, "idempotency_key_reused")
    assert snapshot(ns) == before and job_count(ns) == 1
    # The same key from another tenant is that tenant's own.
    other = create_key(ns.r, "other", "pro")
    resp = await ns.client.post("/v1/renders", data=form(audio, quality="preview"),
                                headers={**auth(other), "Idempotency-Key": "order-42"})
    assert resp.status == 202 and (await resp.json())["job_id"] != body["job_id"]


async def test_idempotent_json_retry_does_not_fetch_again(api, origin):
    ns = await api.make(open_urls(api))
    headers = {**auth(ns.key), "Idempotency-Key": "k1"}
    req = {"audio_url": origin.url("a.wav"), "title": "one"}
    first = await ns.client.post("/v1/renders", json=req, headers=headers)
    body = await first.json()
    assert first.status == 202, body
    again = await ns.client.post("/v1/renders", json=dict(reversed(list(req.items()))), headers=headers)
    assert await again.json() == body and origin.hits == ["/a.wav"] and job_count(ns) == 1
    await expect_error(await ns.client.post("/v1/renders", json={**req, "title": "two"}, headers=headers),
                       409, "idempotency_key_reused")
    # The same key on the batch endpoint is a different request.
    await expect_error(await ns.client.post("/v1/renders/batch", json={"renders": [req]}, headers=headers),
                       409, "idempotency_key_reused")
    assert job_count(ns) == 1


async def test_a_refused_request_does_not_spend_its_idempotency_key(api):
    ns = await api.make()
    headers = {**auth(ns.key), "Idempotency-Key": "retry-me"}
    before = snapshot(ns)
    resp = await ns.client.post("/v1/renders", data=form(silent_wav(0.5), template="nope"), headers=headers)
    await expect_error(resp, 400, "unknown_template")
    assert snapshot(ns) == before
    resp = await ns.client.post("/v1/renders", data=form(silent_wav(0.5)), headers=headers)
    assert resp.status == 202


@pytest.mark.parametrize("key", ["x" * 256, "   "])
async def test_malformed_idempotency_key(api, key):
    ns = await api.make()
    before = snapshot(ns)
    resp = await ns.client.post("/v1/renders", data=form(silent_wav(0.5)),
                                headers={**auth(ns.key), "Idempotency-Key": key})
    await expect_error(resp, 400, "invalid_idempotency_key")
    assert snapshot(ns) == before


async def test_a_concurrent_duplicate_is_told_to_retry(api, origin):
    ns = await api.make(open_urls(api))
    headers = {**auth(ns.key), "Idempotency-Key": "twice"}
    req = {"audio_url": origin.url("slow.wav")}
    first = asyncio.ensure_future(ns.client.post("/v1/renders", json=req, headers=headers))
    await origin.started.wait()  # the first request is fetching its audio
    resp = await ns.client.post("/v1/renders", json=req, headers=headers)
    await expect_error(resp, 409, "idempotency_in_progress")
    origin.release.set()
    first = await first
    body = await first.json()
    assert first.status == 202, body
    replay = await ns.client.post("/v1/renders", json=req, headers=headers)
    assert (await replay.json())["job_id"] == body["job_id"]
    assert origin.hits == ["/slow.wav"] and job_count(ns) == 1


# --- batches -------------------------------------------------------------------------------


async def test_batch_happy_path(api, origin):
    ns = await api.make(open_urls(api))
    items = [{"audio_url": origin.url("a.wav"), "quality": "preview", "title": "first"},
             {"audio_url": origin.url("b.wav"), "quality": "hd", "priority": 80},
             {"audio_url": origin.url("a.wav"), "template": "explainer", "format": "webm"}]
    headers = {**auth(ns.key), "Idempotency-Key": "batch-1"}
    resp = await ns.client.post("/v1/renders/batch", json={"renders": items}, headers=headers)
    body = await resp.json()
    assert resp.status == 202, body
    assert body["batch_id"].startswith("b_") and len(body["renders"]) == 3
    assert [r["price"] for r in body["renders"]] == [0.1, 1.0, 0.5]
    assert body["renders"][1]["duration_s"] == pytest.approx(0.7)
    for r in body["renders"]:
        job = await (await ns.client.get(r["status_url"], headers=auth(ns.key))).json()
        assert job["state"] == "queued"
        assert ns.r.hget(keys.job(r["job_id"]), "batch").decode() == body["batch_id"]
    assert ns.r.hget(keys.job(body["renders"][1]["job_id"]), "priority") == b"80"
    again = await ns.client.post("/v1/renders/batch", json={"renders": items}, headers=headers)
    assert await again.json() == body and job_count(ns) == 3


@pytest.mark.parametrize("bad,code", [
    ({"template": "nope"}, "unknown_template"),
    ({"audio_url": None}, "missing_audio"),
    ({"quality": 7}, "invalid_field"),
    ({"audio_url": "file:///etc/passwd"}, "invalid_url"),
    ({"audio_url": "missing.wav"}, "url_fetch_failed"),
    ({"audio_url": "long.wav"}, "audio_too_long"),
    ("not an object", "invalid_json"),
])
async def test_batch_with_one_bad_item_creates_nothing(api, origin, bad, code):
    ns = await api.make(open_urls(api))
    free = create_key(ns.r, "freebie", "free")  # 60 s at most: long.wav is 61 s
    items = [{"audio_url": origin.url("a.wav")} for _ in range(4)]
    if isinstance(bad, dict):
        url = bad.get("audio_url", "")
        items[2] = {**items[2], **bad}
        if url and url.endswith(".wav") and ":" not in url:
            items[2]["audio_url"] = origin.url(url)
    else:
        items[2] = bad
    before = snapshot(ns)
    resp = await ns.client.post("/v1/renders/batch", json={"renders": items}, headers=auth(free))
    body = await expect_error(resp, 400, code)
    assert body["error"]["message"].startswith("renders[2]: ")
    assert snapshot(ns) == before and job_count(ns) == 0


@pytest.mark.parametrize("bad", [{"webhook_url": "http://10.0.0.1/hook"},
                                 {"audio_url": "http://10.0.0.1/a.wav"}])
async def test_batch_refuses_private_urls_before_fetching_anything(api, origin, bad):
    ns = await api.make(replace(api.cfg, limits=Limits(url_allowlist=("127.0.0.1",))))  # the origin
    items = [{"audio_url": origin.url("a.wav")} for _ in range(3)]
    items[1].update(bad)
    before = snapshot(ns)
    resp = await ns.client.post("/v1/renders/batch", json={"renders": items}, headers=auth(ns.key))
    body = await expect_error(resp, 400, "url_not_allowed")
    assert body["error"]["message"].startswith("renders[1]: ")
    assert snapshot(ns) == before and origin.hits == []


@pytest.mark.parametrize("body,code", [
    ({"renders": []}, "invalid_batch"),
    ({"renders": {"audio_url": "x"}}, "invalid_batch"),
    ({}, "invalid_batch"),
    ({"renders": [{"audio_url": "http://example.com/a.wav"}] * (creation.MAX_BATCH + 1)}, "batch_too_large"),
])
async def test_malformed_or_oversized_batch(api, body, code):
    ns = await api.make()
    before = snapshot(ns)
    await expect_error(await ns.client.post("/v1/renders/batch", json=body, headers=auth(ns.key)),
                       400, code)
    assert snapshot(ns) == before


async def test_batch_must_fit_the_quota_whole(api, origin):
    ns = await api.make(open_urls(api))
    free = auth(create_key(ns.r, "freebie", "free"))
    for _ in range(8):
        assert (await ns.client.post("/v1/renders", data=form(silent_wav(0.5)), headers=free)).status == 202
    items = [{"audio_url": origin.url("a.wav")}] * 3
    before, hits = snapshot(ns), len(origin.hits)
    resp = await ns.client.post("/v1/renders/batch", json={"renders": items}, headers=free)
    body = await expect_error(resp, 402, "quota_exceeded")
    assert "batch of 3" in body["error"]["message"]
    assert snapshot(ns) == before and len(origin.hits) == hits  # refused before any fetch
    resp = await ns.client.post("/v1/renders/batch", json={"renders": items[:2]}, headers=free)
    assert resp.status == 202 and job_count(ns) == 10


async def test_concurrent_batches_share_the_quota_whole(api, origin):
    """Two batches that each fit, but not together: one is admitted whole, the other refused."""
    ns = await api.make(open_urls(api))
    free = auth(create_key(ns.r, "freebie", "free"))
    for _ in range(4):
        assert (await ns.client.post("/v1/renders", data=form(silent_wav(0.5)), headers=free)).status == 202
    items = {"renders": [{"audio_url": origin.url("a.wav")}] * 4}
    answers = await asyncio.gather(*(ns.client.post("/v1/renders/batch", json=items, headers=free)
                                     for _ in range(2)))
    assert sorted(a.status for a in answers) == [202, 402]
    assert job_count(ns) == 8


async def test_batch_admission_is_atomic(api, tmp_path):
    """submit() itself (past the early check): a batch that does not fit creates nothing."""
    ns = await api.make()
    free = create_key(ns.r, "freebie", "free")
    for _ in range(8):
        assert (await ns.client.post("/v1/renders", data=form(silent_wav(0.5)), headers=auth(free))).status == 202
    app = ns.client.server.app
    tenant_id = ns.r.hget(keys.TENANT_NAMES, "freebie").decode()
    who = Principal(tenant_id, "freebie", Tier.FREE, "api", "key_00000000")
    spec = validate_fields({}, api.cfg.limits)  # the defaults

    async def prepared(n):
        out = []
        for _ in range(n):
            path = tmp_path / f"upload-{job_count(ns)}-{len(out)}.wav"
            path.write_bytes(silent_wav(0.5))
            out.append(await creation.prepare(app, who, spec, path))  # removes the upload
        return out

    before_jobs = ns.r.zrange(keys.ALL_JOBS, 0, -1)
    three = await prepared(3)
    with pytest.raises(QuotaExceeded):
        await creation.submit(app, who, three)
    assert ns.r.zrange(keys.ALL_JOBS, 0, -1) == before_jobs
    assert not any((api.cfg.data_dir / "artifacts" / p.job_id).exists() for p in three)
    two = await prepared(2)
    await creation.submit(app, who, two)
    assert job_count(ns) == 10 and ns.r.scard(keys.tenant_active(tenant_id)) == 10


# --- readiness -----------------------------------------------------------------------------


async def test_ready(api):
    ns = await api.make()
    resp = await ns.client.get("/ready")
    assert resp.status == 200 and await resp.json() == {"ready": True}


async def test_not_ready_without_redis(api, aiohttp_client, tmp_path):
    own = RedisProcess(tmp_path / "redis").start()
    try:
        with redis.Redis.from_url(own.url) as r:
            create_key(r, "acme", "pro")
        client = await aiohttp_client(create_app(replace(api.cfg, redis_url=own.url)))
        assert (await client.get("/ready")).status == 200
    finally:
        own.stop()  # Redis goes away under a running scheduler
    await expect_error(await client.get("/ready"), 503, "not_ready")
    assert (await client.get("/health")).status == 503  # liveness answers, and says degraded


async def test_not_ready_when_the_artifact_folder_cannot_be_written(api):
    ns = await api.make()
    root = api.cfg.data_dir / "artifacts"
    root.rmdir()
    root.write_bytes(b"")  # a file where the folder was: nothing can be stored under it (root too)
    await expect_error(await ns.client.get("/ready"), 503, "not_ready")
    root.unlink()
    root.mkdir()
    assert (await ns.client.get("/ready")).status == 200
