"""Batches of renders (all or nothing, the quota whole, atomic admission) and readiness
(/ready without Redis or artifact storage); real app, real Redis."""

from __future__ import annotations

import asyncio
from dataclasses import replace

import pytest
import redis

from farm.audio import silent_wav
from farm import keys
from farm.config import Limits
from farm.errors import QuotaExceeded
from farm.redisproc import RedisProcess
from farm.tenants import Principal, Tier, create_key
from scheduler import creation
from scheduler.app import create_app
from scheduler.intake import validate_fields
from tests.apitools import job_count, open_urls
from tests.test_api import auth, expect_error, form, snapshot


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
