"""Rate limits (per key, per tenant, switched off) and idempotent creates (replays,
reuse, concurrent duplicates); real app, real Redis."""

from __future__ import annotations

import asyncio
from dataclasses import replace

import pytest

from farm.audio import silent_wav
from farm import keys
from farm.config import Limits
from farm.presets import RateLimit
from farm.tenants import create_key
from tests.apitools import job_count, open_urls
from tests.test_api import auth, expect_error, form, snapshot


def everything(ns) -> dict:
    """Every Redis key and value, rate-limit buckets included."""
    return {k: ns.r.dump(k) for k in ns.r.keys("*")}


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
