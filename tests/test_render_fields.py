"""What a render may ask the renderer for beyond the basics: expression, captions,
second_character, a logo (upload or logo_url). On the real app and a real Redis: each
is accepted and recorded, each bad value is a 400 with its code and nothing stored.
Then one render through LocalFarm's real processes, and the node facts it reports.
"""

from __future__ import annotations

import io
import time
from dataclasses import replace
from types import SimpleNamespace

import aiohttp
import numpy as np
import pytest
import redis
import requests
from aiohttp import web
from PIL import Image

from assets.overlay import MAX_LOGO_BYTES, MAX_LOGO_PIXELS
from farm.audio import silent_wav
from farm import keys
from farm.config import LeaseSettings, Limits
from farm.jobs import Job
from farm.lease import LeaseClient
from tests.farms import one_node_farm
from tests.media import probe
from tests.test_api import auth, expect_error, snapshot

PODCAST_TEXT = "HOST: Welcome back to the show.\nGUEST: Thanks for having me."


def image_bytes(fmt: str, size: tuple[int, int] = (64, 32)) -> bytes:
    buf = io.BytesIO()
    Image.new("RGBA" if fmt in ("PNG", "WEBP") else "RGB", size, (200, 40, 40)).save(buf, fmt)
    return buf.getvalue()


def upload(audio: bytes | None, logos: tuple[bytes, ...] = (), **fields) -> aiohttp.FormData:
    """The audio part first: it is streamed before the fields after it are validated."""
    fd = aiohttp.FormData()
    if audio is not None:
        fd.add_field("audio", audio, filename="speech.wav", content_type="audio/wav")
    for k, v in fields.items():
        fd.add_field(k, v)
    for logo in logos:
        fd.add_field("logo", logo, filename="logo.png", content_type="image/png")
    return fd


async def create(ns, data=None, json=None, headers=None) -> dict:
    resp = await ns.client.post("/v1/renders", data=data, json=json,
                                headers={**auth(ns.key), **(headers or {})})
    body = await resp.json()
    assert resp.status == 202, body
    return body


async def job_of(ns, job_id: str) -> dict:
    return await (await ns.client.get(f"/v1/renders/{job_id}", headers=auth(ns.key))).json()


@pytest.fixture
async def origin(aiohttp_server):
    """A local web server: speech.wav, logo.png, logo.gif, huge.png (over the logo limit)."""
    files = {"/speech.wav": silent_wav(1), "/logo.png": image_bytes("PNG"),
             "/logo.gif": image_bytes("GIF"), "/huge.png": b"\x89PNG" + b"\x00" * MAX_LOGO_BYTES}
    async def serve(request: web.Request) -> web.Response:
        return web.Response(body=files[request.path])

    app = web.Application()
    for path in files:
        app.router.add_get(path, serve)
    server = await aiohttp_server(app)
    return SimpleNamespace(url=lambda path: str(server.make_url(path)), files=files)


async def test_every_field_is_accepted_recorded_and_served_to_the_node(api):
    ns = await api.make()
    logo = image_bytes("PNG")
    body = await create(ns, data=upload(silent_wav(1), (logo,), template="podcast", character="toonz",
                                        second_character="bolt", expression="happy", captions="false",
                                        transcript=PODCAST_TEXT))
    job = await job_of(ns, body["job_id"])
    assert (job["expression"], job["captions"], job["second_character"], job["logo"]) == \
        ("happy", False, "bolt", True)
    assert job["template"] == "podcast" and "input.logo" not in job["artifacts"]
    stored = ns.cfg.data_dir / "artifacts" / body["job_id"] / "input.logo"
    assert stored.read_bytes() == logo
    assert Job.from_redis(ns.r.hgetall(keys.job(body["job_id"]))).captions is False

    # The node fetches it, fenced, like the audio; it may not replace it.
    lease = LeaseClient(ns.r, "n1", LeaseSettings()).lease()
    url = f"/v1/node/jobs/{lease.job_id}/logo"
    await expect_error(await ns.client.get(url), 409, "stale_lease")
    resp = await ns.client.get(url, headers={"X-Toonz-Fence": str(lease.fence)})
    assert resp.status == 200 and await resp.read() == logo
    resp = await ns.client.put(f"/v1/node/jobs/{lease.job_id}/artifacts/input.logo", data=b"x",
                               headers={"X-Toonz-Fence": str(lease.fence)})
    await expect_error(resp, 400, "invalid_artifact")
    assert stored.read_bytes() == logo


async def test_defaults_and_boolean_spellings(api):
    ns = await api.make()
    plain = await job_of(ns, (await create(ns, data=upload(silent_wav(1))))["job_id"])
    assert (plain["expression"], plain["captions"], plain["second_character"], plain["logo"]) == \
        ("neutral", None, None, False)
    for raw, want in (("1", True), ("0", False), ("TRUE", True), ("true", True)):
        job = await job_of(ns, (await create(ns, data=upload(silent_wav(1), captions=raw)))["job_id"])
        assert job["captions"] is want, raw
    # A podcast names no second character: the template's default is left to the node.
    pod = await job_of(ns, (await create(ns, data=upload(silent_wav(1), template="podcast",
                                                         transcript=PODCAST_TEXT)))["job_id"])
    assert pod["second_character"] is None and pod["template"] == "podcast"
    # A lease: the node without a logo gets a 404, never another job's file.
    lease = LeaseClient(ns.r, "n1", LeaseSettings()).lease()
    resp = await ns.client.get(f"/v1/node/jobs/{lease.job_id}/logo",
                               headers={"X-Toonz-Fence": str(lease.fence)})
    await expect_error(resp, 404, "artifact_not_found")


def test_an_old_record_loads_with_the_defaults():
    old = {"id": "r_0123456789abcdef", "tenant": "t", "tier": "pro", "state": "queued",
           "quality": "standard", "format": "mp4", "template": "explainer", "character": "toonz",
           "created_at": "1.0"}
    job = Job.from_redis(old)
    assert (job.expression, job.captions, job.second_character, job.logo) == ("neutral", None, "", False)
    assert job.public()["second_character"] is None


LOGOS = {  # built when a test asks: the widest one is large in memory
    "text": lambda: b"this is not an image at all" * 10,
    "empty": lambda: b"",
    "gif": lambda: image_bytes("GIF"),
    "truncated": lambda: image_bytes("PNG")[:60],  # a PNG's header alone
    "too_many_bytes": lambda: b"\x89PNG" + b"\x00" * MAX_LOGO_BYTES,
    "too_many_pixels": lambda: image_bytes("PNG", (MAX_LOGO_PIXELS // 1000 + 1, 1000)),
    "png": lambda: image_bytes("PNG"),
}


@pytest.mark.parametrize("fields,logos,code", [
    ({"expression": "grumpy"}, (), "unknown_expression"),
    ({"character": "ada", "expression": "sleepy"}, (), "unknown_expression"),
    ({"captions": "maybe"}, (), "invalid_field"),
    ({"captions": "yes"}, (), "invalid_field"),
    ({"second_character": "bolt"}, (), "no_second_seat"),  # explainer seats one
    ({"template": "vertical", "second_character": "ada"}, (), "no_second_seat"),
    ({"template": "podcast", "second_character": "nobody"}, (), "unknown_character"),
    ({"template": "podcast", "transcript": "A: one\nB: two\nC: three"}, (), "too_many_speakers"),
    ({"template": "podcast", "transcript": "hello there\nA: hi"}, (), "unlabelled_text"),
    ({}, ("text",), "invalid_logo"),
    ({}, ("empty",), "invalid_logo"),
    ({}, ("gif",), "invalid_logo"),
    ({}, ("truncated",), "invalid_logo"),
    ({}, ("too_many_bytes",), "logo_too_large"),
    ({}, ("too_many_pixels",), "logo_too_large"),
    ({}, ("png", "png"), "duplicate_logo"),
    ({"logo_url": "http://example.invalid/logo.png"}, ("png",), "duplicate_logo"),
])
async def test_bad_values_are_refused_and_nothing_is_stored(api, fields, logos, code):
    ns = await api.make()
    before = snapshot(ns)
    data = upload(silent_wav(1), tuple(LOGOS[name]() for name in logos), **fields)
    resp = await ns.client.post("/v1/renders", data=data, headers=auth(ns.key))
    await expect_error(resp, 400, code)
    assert snapshot(ns) == before


@pytest.mark.parametrize("extra,code", [
    ({"expression": "grumpy"}, "unknown_expression"),
    ({"captions": "yes"}, "invalid_field"),
    ({"captions": 1}, "invalid_field"),
    ({"expression": ["happy"]}, "invalid_field"),
    ({"second_character": "bolt"}, "no_second_seat"),
    ({"template": "podcast", "transcript": "A: one\nB: two\nC: three"}, "too_many_speakers"),
    ({"logo_url": "http://127.0.0.1:9/logo.png"}, "url_not_allowed"),
    ({"logo_url": "file:///etc/passwd"}, "invalid_url"),
])
async def test_bad_json_values_are_refused_and_nothing_is_stored(api, extra, code):
    ns = await api.make()
    before = snapshot(ns)
    body = {"audio_url": "http://example.invalid/a.wav", **extra}
    resp = await ns.client.post("/v1/renders", json=body, headers=auth(ns.key))
    await expect_error(resp, 400, code)
    resp = await ns.client.post("/v1/renders/batch", json={"renders": [body]}, headers=auth(ns.key))
    err = await expect_error(resp, 400, code)
    assert err["error"]["message"].startswith("renders[0]")
    assert snapshot(ns) == before


async def test_logo_url_is_fetched_checked_and_stored(api, origin):
    ns = await api.make(replace(api.cfg, limits=Limits(allow_private_urls=True)))
    body = await create(ns, json={"audio_url": origin.url("/speech.wav"), "logo_url": origin.url("/logo.png"),
                                  "captions": True, "expression": "presenting"})
    job = await job_of(ns, body["job_id"])
    assert (job["logo"], job["captions"], job["expression"]) == (True, True, "presenting")
    stored = ns.cfg.data_dir / "artifacts" / body["job_id"] / "input.logo"
    assert stored.read_bytes() == origin.files["/logo.png"]

    before = snapshot(ns)
    for path, code in (("/logo.gif", "invalid_logo"), ("/huge.png", "logo_too_large"),
                       ("/missing.png", "url_fetch_failed")):
        resp = await ns.client.post("/v1/renders", json={"audio_url": origin.url("/speech.wav"),
                                                         "logo_url": origin.url(path)}, headers=auth(ns.key))
        await expect_error(resp, 400, code)
        resp = await ns.client.post("/v1/renders/batch", json={"renders": [
            {"audio_url": origin.url("/speech.wav")},
            {"audio_url": origin.url("/speech.wav"), "logo_url": origin.url(path)}]}, headers=auth(ns.key))
        err = await expect_error(resp, 400, code)
        assert err["error"]["message"].startswith("renders[1]")
    assert snapshot(ns) == before


async def test_logo_url_to_a_private_host_is_refused_unless_allow_listed(api, origin):
    """The host name `localhost` is allow-listed; the same server by its address is not."""
    ns = await api.make(replace(api.cfg, limits=Limits(url_allowlist=("localhost",))))
    before = snapshot(ns)
    by_name = {p: origin.url(p).replace("127.0.0.1", "localhost") for p in ("/speech.wav", "/logo.png")}
    resp = await ns.client.post("/v1/renders", json={"audio_url": by_name["/speech.wav"],
                                                     "logo_url": origin.url("/logo.png")}, headers=auth(ns.key))
    await expect_error(resp, 400, "url_not_allowed")
    assert snapshot(ns) == before
    body = await create(ns, json={"audio_url": by_name["/speech.wav"], "logo_url": by_name["/logo.png"]})
    assert (await job_of(ns, body["job_id"]))["logo"] is True


async def test_an_idempotent_retry_must_carry_the_same_logo(api):
    ns = await api.make()
    key = {"Idempotency-Key": "logo-1"}
    first = await create(ns, data=upload(silent_wav(1), (image_bytes("PNG"),)), headers=key)
    again = await create(ns, data=upload(silent_wav(1), (image_bytes("PNG"),)), headers=key)
    assert again["job_id"] == first["job_id"]
    resp = await ns.client.post("/v1/renders", data=upload(silent_wav(1), (image_bytes("PNG", (65, 32)),)),
                                headers={**auth(ns.key), **key})
    await expect_error(resp, 409, "idempotency_key_reused")


# --- through the real processes ------------------------------------------------------

@pytest.fixture(scope="module")
def farm(tmp_path_factory):
    yield from one_node_farm(tmp_path_factory)


def test_a_vertical_render_with_an_expression_and_a_logo(farm, tmp_path):
    from tests.conftest import espeak

    text = "Hello from the farm."
    audio = espeak(text, tmp_path / "hello.wav")
    headers = {"Authorization": f"Bearer {farm.api_key}"}
    logo = image_bytes("PNG", (120, 60))
    resp = requests.post(f"{farm.scheduler_url}/v1/renders", headers=headers, timeout=30,
                         data={"template": "vertical", "expression": "happy", "quality": "preview",
                               "transcript": text},
                         files={"audio": ("hello.wav", audio.read_bytes(), "audio/wav"),
                                "logo": ("logo.png", logo, "image/png")})
    assert resp.status_code == 202, resp.text
    job_id = resp.json()["job_id"]
    deadline = time.monotonic() + 300
    while (job := requests.get(f"{farm.scheduler_url}/v1/renders/{job_id}", headers=headers,
                               timeout=10).json())["state"] not in ("succeeded", "failed", "canceled"):
        assert time.monotonic() < deadline, job
        time.sleep(0.5)
    assert job["state"] == "succeeded", job
    assert (job["template"], job["expression"], job["logo"], job["captions"]) == ("vertical", "happy", True, None)

    video = tmp_path / "video.mp4"
    video.write_bytes(requests.get(f"{farm.scheduler_url}{job['download_url']}", headers=headers,
                                   timeout=30).content)
    facts = probe(video)
    assert (facts.width, facts.height) == (360, 640)
    # The logo is drawn: its red fills much of the template's logo box on the poster
    # (the same render without a logo has no such pixels; 77x38 of them with it).
    poster = requests.get(f"{farm.scheduler_url}{job['download_urls']['poster']}", headers=headers, timeout=30)
    im = Image.open(io.BytesIO(poster.content)).convert("RGB")
    px = np.asarray(im).astype(int)
    red = int(((px[..., 0] > 150) & (px[..., 1] < 90) & (px[..., 2] < 90)).sum())
    assert im.size == (360, 640) and red > 1000, red
    node_log = (farm.logs / "node-1.log").read_text()
    assert f"{job_id} rendered in" in node_log
    for bad in ("failed", "Traceback", "ERROR"):
        assert bad not in node_log, node_log[-3000:]


def test_a_node_reports_cpu_and_memory(farm):
    r = redis.Redis.from_url(farm.redis.url)
    try:
        deadline = time.monotonic() + 60  # a few FACTS_INTERVAL_S, with room for a slow start
        while not {b"cpu_pct", b"mem_used_mb"} <= set(r.hkeys(keys.node("local-node-1"))):
            assert time.monotonic() < deadline, r.hgetall(keys.node("local-node-1"))
            time.sleep(0.5)
        info = {k.decode(): v.decode() for k, v in r.hgetall(keys.node("local-node-1")).items()}
    finally:
        r.close()
    assert 0.0 <= float(info["cpu_pct"]) <= 100.0
    assert 0 < int(info["mem_used_mb"]) <= int(info["mem_total_mb"])
    # The console reads them from the admin overview's node facts.
    admin = {"Authorization": f"Bearer {farm.admin_key}"}
    overview = requests.get(f"{farm.scheduler_url}/v1/admin/overview", headers=admin, timeout=10).json()
    node = next(n for n in overview["nodes"] if n["node"] == "local-node-1")
    assert {"cpu_pct", "mem_used_mb"} <= set(node["facts"])
