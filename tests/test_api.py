"""The scheduler's public API under the real aiohttp app and a real Redis.

Every error a user can cause: a 4xx with a stable code and a human message, and
nothing stored changes (Redis and the artifact store compared before and after).
"""

from __future__ import annotations

from dataclasses import replace

import aiohttp
import pytest
from aiohttp import web

from farm.audio import silent_wav
from farm import keys
from farm.config import Limits
from farm.lease import LeaseClient
from farm.config import LeaseSettings
from farm.tenants import create_key



def snapshot(ns) -> tuple:
    """Everything stored: every Redis key with its serialized value, and every file.

    Rate-limit buckets are left out: every request is metered, refused ones included."""
    data = {k: ns.r.dump(k) for k in ns.r.keys("*") if not k.startswith(keys.RATE_PREFIX.encode())}
    files = sorted(str(p.relative_to(ns.cfg.data_dir)) for p in ns.cfg.data_dir.rglob("*")
                   if p.is_file()) if ns.cfg.data_dir.exists() else []
    return data, files


def form(audio: bytes | None = None, **fields) -> aiohttp.FormData:
    fd = aiohttp.FormData()
    for k, v in fields.items():
        fd.add_field(k, v)
    if audio is not None:
        fd.add_field("audio", audio, filename="speech.wav", content_type="audio/wav")
    return fd


def auth(key: str) -> dict:
    return {"Authorization": f"Bearer {key}"}


async def expect_error(resp, status: int, code: str) -> dict:
    body = await resp.json()
    assert resp.status == status, body
    assert body["error"]["code"] == code
    assert len(body["error"]["message"]) > 10 and body["error"]["request_id"]
    return body


async def test_health(api):
    ns = await api.make()
    resp = await ns.client.get("/health")
    assert resp.status == 200 and (await resp.json())["redis"] is True


async def test_submit_get_usage(api, goforward):
    ns = await api.make()
    audio, text = goforward
    resp = await ns.client.post("/v1/renders", data=form(audio.read_bytes(), transcript=text,
                                                         quality="standard"), headers=auth(ns.key))
    body = await resp.json()
    assert resp.status == 202, body
    assert body["state"] == "queued" and body["price"] == 0.5 and body["eta_s"] > 0
    assert body["duration_s"] == pytest.approx(2.8, abs=0.1)
    job = await (await ns.client.get(f"/v1/renders/{body['job_id']}", headers=auth(ns.key))).json()
    assert job["state"] == "queued" and job["attempts"] == 0 and job["node"] is None
    assert job["created_at"] > 0 and job["started_at"] is None and job["finished_at"] is None
    usage = await (await ns.client.get("/v1/usage", headers=auth(ns.key))).json()
    assert usage["tier"] == "pro" and usage["renders_in_progress"] == 1
    assert usage["renders_remaining"] == 999
    resp = await ns.client.get(f"/v1/renders/{body['job_id']}/download", headers=auth(ns.key))
    await expect_error(resp, 409, "not_ready")


@pytest.mark.parametrize("headers,code", [({}, "missing_api_key"),
                                          (auth("tz_live_nope"), "invalid_api_key")])
async def test_bad_api_key(api, headers, code):
    ns = await api.make()
    before = snapshot(ns)
    resp = await ns.client.post("/v1/renders", data=form(silent_wav(1)), headers=headers)
    await expect_error(resp, 401, code)
    await expect_error(await ns.client.get("/v1/usage", headers=headers), 401, code)
    assert snapshot(ns) == before


@pytest.mark.parametrize("audio,fields,code", [
    (None, {"transcript": "hello"}, "missing_audio"),
    (b"this is not audio at all, just text" * 20, {}, "unreadable_audio"),
    (b"", {}, "unreadable_audio"),
    (b"RIFF\x00\x00\x00\x00WAVEfmt garbage", {}, "unreadable_audio"),
    (silent_wav(1), {"template": "nope"}, "unknown_template"),
    (silent_wav(1), {"quality": "8k"}, "unknown_quality"),
    (silent_wav(1), {"character": "nobody"}, "unknown_character"),
    (silent_wav(1), {"format": "avi"}, "unknown_format"),
])
async def test_bad_render_request_changes_nothing(api, audio, fields, code):
    ns = await api.make()
    before = snapshot(ns)
    resp = await ns.client.post("/v1/renders", data=form(audio, **fields), headers=auth(ns.key))
    await expect_error(resp, 400, code)
    assert snapshot(ns) == before


async def test_json_without_audio_url(api):
    ns = await api.make()
    resp = await ns.client.post("/v1/renders", json={"transcript": "hi"}, headers=auth(ns.key))
    await expect_error(resp, 400, "missing_audio")
    resp = await ns.client.post("/v1/renders", data=b"{not json", headers={
        **auth(ns.key), "Content-Type": "application/json"})
    await expect_error(resp, 400, "invalid_json")


async def test_unknown_and_foreign_job_ids_are_404(api, goforward):
    ns = await api.make()
    resp = await ns.client.post("/v1/renders", data=form(goforward[0].read_bytes()),
                                headers=auth(ns.key))
    job_id = (await resp.json())["job_id"]
    other = create_key(ns.r, "other", "pro")
    for path in (f"/v1/renders/{job_id}", f"/v1/renders/{job_id}/download"):
        await expect_error(await ns.client.get(path, headers=auth(other)), 404, "job_not_found")
    for bad in ("r_0000000000000000", "nope", "r_..%2F..%2Fetc"):
        await expect_error(await ns.client.get(f"/v1/renders/{bad}", headers=auth(ns.key)),
                           404, "job_not_found")


async def test_free_tier_quota_edge(api):
    ns = await api.make()
    free = create_key(ns.r, "freebie", "free")
    for i in range(10):
        resp = await ns.client.post("/v1/renders", data=form(silent_wav(0.5)), headers=auth(free))
        assert resp.status == 202, await resp.json()
    before = snapshot(ns)
    resp = await ns.client.post("/v1/renders", data=form(silent_wav(0.5)), headers=auth(free))
    await expect_error(resp, 402, "quota_exceeded")
    assert snapshot(ns) == before


async def test_tier_duration_limit(api):
    ns = await api.make()
    free = create_key(ns.r, "freebie", "free")
    before = snapshot(ns)
    resp = await ns.client.post("/v1/renders", data=form(silent_wav(61)), headers=auth(free))
    await expect_error(resp, 400, "audio_too_long")
    assert snapshot(ns) == before


async def test_upload_size_limit(api):
    ns = await api.make(replace(api.cfg, limits=Limits(max_upload_bytes=10_000)))
    before = snapshot(ns)
    resp = await ns.client.post("/v1/renders", data=form(silent_wav(2)), headers=auth(ns.key))
    await expect_error(resp, 413, "upload_too_large")
    assert snapshot(ns) == before


async def test_audio_url_to_a_private_host_is_refused(api):
    ns = await api.make()
    before = snapshot(ns)
    resp = await ns.client.post("/v1/renders", json={"audio_url": "http://127.0.0.1:9/a.wav"},
                                headers=auth(ns.key))
    await expect_error(resp, 400, "url_not_allowed")
    resp = await ns.client.post("/v1/renders", json={"audio_url": "file:///etc/passwd"},
                                headers=auth(ns.key))
    await expect_error(resp, 400, "invalid_url")
    assert snapshot(ns) == before


async def test_audio_url_is_fetched_when_allowed(api, aiohttp_server, goforward):
    audio = goforward[0].read_bytes()
    async def serve(request):
        return web.Response(body=audio)

    origin = web.Application()
    origin.router.add_get("/speech.wav", serve)
    server = await aiohttp_server(origin)
    ns = await api.make(replace(api.cfg, limits=Limits(allow_private_urls=True)))
    resp = await ns.client.post("/v1/renders", json={"audio_url": str(server.make_url("/speech.wav")),
                                                     "transcript": goforward[1]}, headers=auth(ns.key))
    body = await resp.json()
    assert resp.status == 202, body
    assert body["duration_s"] == pytest.approx(2.8, abs=0.1)
    resp = await ns.client.post("/v1/renders", json={"audio_url": str(server.make_url("/missing"))},
                                headers=auth(ns.key))
    await expect_error(resp, 400, "url_fetch_failed")


async def test_node_endpoints_are_fenced(api, goforward):
    ns = await api.make()
    resp = await ns.client.post("/v1/renders", data=form(goforward[0].read_bytes()),
                                headers=auth(ns.key))
    job_id = (await resp.json())["job_id"]
    lease = LeaseClient(ns.r, "n1", LeaseSettings()).lease()
    url = f"/v1/node/jobs/{job_id}/input"
    await expect_error(await ns.client.get(url), 409, "stale_lease")
    await expect_error(await ns.client.get(url, headers={"X-Toonz-Fence": str(lease.fence + 1)}),
                       409, "stale_lease")
    resp = await ns.client.get(url, headers={"X-Toonz-Fence": str(lease.fence)})
    assert resp.status == 200 and await resp.read() == goforward[0].read_bytes()
    put = f"/v1/node/jobs/{job_id}/artifacts/video.mp4"
    await expect_error(await ns.client.put(put, data=b"x", headers={"X-Toonz-Fence": "1" + str(lease.fence)}),
                       409, "stale_lease")
    resp = await ns.client.put(put, data=b"video bytes", headers={"X-Toonz-Fence": str(lease.fence)})
    assert resp.status == 201


async def test_admin_overview_needs_an_admin_key(api, goforward):
    ns = await api.make()
    await ns.client.post("/v1/renders", data=form(goforward[0].read_bytes()), headers=auth(ns.key))
    await expect_error(await ns.client.get("/v1/admin/overview", headers=auth(ns.key)), 403, "admin_only")
    await expect_error(await ns.client.get("/v1/admin/overview"), 401, "missing_api_key")
    admin = create_key(ns.r, "operator", "enterprise", role="admin")
    body = await (await ns.client.get("/v1/admin/overview", headers=auth(admin))).json()
    assert [t["tier"] for t in body["tiers"]] == ["enterprise", "pro", "starter", "free"]
    assert body["tiers"][1]["depth"] == 1
    assert body["jobs"][0]["tenant"] == "acme" and body["jobs"][0]["state"] == "queued"


async def test_console_page_and_assets_are_served_locally(api):
    ns = await api.make()
    page = await ns.client.get("/console")
    html = await page.text()
    assert page.status == 200 and page.content_type == "text/html"
    for ref in ("/console/console.css", "/console/console.js"):
        assert ref in html
        assert (await ns.client.get(ref)).status == 200
    assert "http" not in html.replace("http-equiv", "")  # no CDN: every asset is ours
    await expect_error(await ns.client.get("/console/missing.js"), 404, "not_found")


async def test_cancel_a_queued_render(api, goforward):
    ns = await api.make()
    job_id = (await (await ns.client.post("/v1/renders", data=form(goforward[0].read_bytes()),
                                          headers=auth(ns.key))).json())["job_id"]
    other = create_key(ns.r, "other", "pro")
    await expect_error(await ns.client.post(f"/v1/renders/{job_id}/cancel", headers=auth(other)),
                       404, "job_not_found")
    resp = await ns.client.post(f"/v1/renders/{job_id}/cancel", headers=auth(ns.key))
    assert resp.status == 202 and (await resp.json())["state"] == "canceled"
    before = snapshot(ns)
    await expect_error(await ns.client.post(f"/v1/renders/{job_id}/cancel", headers=auth(ns.key)),
                       409, "already_finished")
    assert snapshot(ns) == before
    usage = await (await ns.client.get("/v1/usage", headers=auth(ns.key))).json()
    assert usage["renders_in_progress"] == 0 and usage["renders_used"] == 0


async def test_admin_pause_resume_and_priority(api, goforward):
    ns = await api.make()
    admin = auth(create_key(ns.r, "operator", "enterprise", role="admin"))
    resp = await ns.client.post("/v1/admin/tiers/pro/pause", headers=admin)
    assert (await resp.json())["paused_tiers"] == ["pro"]
    overview = await (await ns.client.get("/v1/admin/overview", headers=admin)).json()
    assert [t["paused"] for t in overview["tiers"]] == [False, True, False, False]
    assert (await (await ns.client.post("/v1/admin/tiers/pro/resume", headers=admin)).json())["paused"] is False
    await expect_error(await ns.client.post("/v1/admin/tiers/gold/pause", headers=admin), 400, "unknown_tier")
    await expect_error(await ns.client.post("/v1/admin/tiers/pro/pause", headers=auth(ns.key)),
                       403, "admin_only")

    job_id = (await (await ns.client.post("/v1/renders", data=form(goforward[0].read_bytes(), priority="20"),
                                          headers=auth(ns.key))).json())["job_id"]
    url = f"/v1/admin/jobs/{job_id}/priority"
    before = snapshot(ns)
    for bad in ("high", 101, -1, None):
        await expect_error(await ns.client.post(url, json={"priority": bad}, headers=admin), 400,
                           "invalid_priority")
    assert snapshot(ns) == before
    resp = await ns.client.post(url, json={"priority": 80}, headers=admin)
    assert (await resp.json())["priority"] == 80
    job = await (await ns.client.get(f"/v1/renders/{job_id}", headers=auth(ns.key))).json()
    assert job["priority"] == 80
    await ns.client.post(f"/v1/admin/jobs/{job_id}/cancel", headers=admin)
    await expect_error(await ns.client.post(url, json={"priority": 10}, headers=admin), 409, "not_queued")


async def test_bad_priority_on_submit_changes_nothing(api):
    ns = await api.make()
    before = snapshot(ns)
    for bad in ("urgent", "500", "-3"):
        resp = await ns.client.post("/v1/renders", data=form(silent_wav(1), priority=bad), headers=auth(ns.key))
        await expect_error(resp, 400, "invalid_priority")
    assert snapshot(ns) == before


async def test_streamed_answers_name_their_request_too(api):
    """A CSV (streamed) carries X-Request-Id like every JSON answer does."""
    ns = await api.make()
    headers = {**auth(ns.key), "X-Request-Id": "req-stream-1"}
    resp = await ns.client.get("/v1/invoices/2026-01.csv", headers=headers)
    assert resp.status == 200 and resp.headers["Content-Type"].startswith("text/csv")
    assert resp.headers["X-Request-Id"] == "req-stream-1"
    resp = await ns.client.get("/v1/usage", headers=headers)
    assert resp.headers["X-Request-Id"] == "req-stream-1"
