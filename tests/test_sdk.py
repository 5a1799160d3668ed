"""The SDK (farm/client.py, farm/aclient.py) against the real scheduler app on a real port
and a real Redis; one real render per client through LocalFarm.

Most tests run twice: with ToonzClient and with AsyncToonzClient (driven to completion
on a loop of its own by `Blocking`). The scheduler, the audio file server and the
small fakes at the edge (a proxy answering 503, a scheduler without progress streams)
are aiohttp apps served from one thread with its own event loop, so that blocking SDK
calls and the servers never share a loop.
"""

from __future__ import annotations

import asyncio
import inspect
import json
import subprocess
import sys
import threading
from pathlib import Path
from types import SimpleNamespace

import pytest
import redis
import requests
from aiohttp import web

from farm.audio import silent_wav
from farm.aclient import AsyncToonzClient
from farm.client import ToonzClient, verify_webhook
from farm.config import Limits, SchedulerConfig
from farm.errors import (Conflict, IdempotencyKeyReused, InvalidInput, NotFound, QuotaExceeded,
                         RateLimited, ServiceUnavailable, Unauthorized)
from farm.localfarm import LocalFarm
from farm.presets import RateLimit
from farm.redisproc import RedisProcess
from farm.sdk_common import NO_RETRIES, RenderFailed, RetryPolicy
from farm.tenants import create_key
from farm.webhooks import sign
from scheduler.app import create_app
from tests.conftest import REPO, espeak

FAST = RetryPolicy(backoff_base_s=0.05, backoff_max_s=0.5)  # quick backoff; Retry-After still honoured


class Served:
    """aiohttp apps on real 127.0.0.1 ports, run by a thread with its own event loop."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.runners: list[web.AppRunner] = []

    def start(self, app: web.Application) -> str:
        async def go() -> str:
            runner = web.AppRunner(app, access_log=None)
            await runner.setup()
            await web.TCPSite(runner, "127.0.0.1", 0).start()
            self.runners.append(runner)
            return f"http://127.0.0.1:{runner.addresses[0][1]}"
        return asyncio.run_coroutine_threadsafe(go(), self.loop).result(30)

    def stop(self) -> None:
        for runner in reversed(self.runners):
            asyncio.run_coroutine_threadsafe(runner.cleanup(), self.loop).result(30)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
        self.loop.close()


class Blocking:
    """AsyncToonzClient driven from plain test code: each call run to its end on a loop of
    this object's own (async iterators are collected)."""

    def __init__(self, client: AsyncToonzClient) -> None:
        self.client = client
        self.loop = asyncio.new_event_loop()

    def __getattr__(self, name: str):
        attr = getattr(self.client, name)
        if inspect.isasyncgenfunction(attr):
            async def collect(*a, **k):
                return [x async for x in attr(*a, **k)]
            return lambda *a, **k: iter(self.loop.run_until_complete(collect(*a, **k)))
        if inspect.iscoroutinefunction(attr):
            return lambda *a, **k: self.loop.run_until_complete(attr(*a, **k))
        return attr

    def close(self) -> None:
        self.loop.run_until_complete(self.client.aclose())
        self.loop.close()


@pytest.fixture
def served():
    s = Served()
    yield s
    s.stop()


@pytest.fixture(params=["sync", "async"])
def sdk(request):
    """make(base_url, api_key, **options): a client of the kind under test."""
    made = []

    def make(base_url: str, api_key: str, **kw):
        c = ToonzClient(base_url, api_key, **kw) if request.param == "sync" \
            else Blocking(AsyncToonzClient(base_url, api_key, **kw))
        made.append(c)
        return c

    yield make
    for c in made:
        c.close()


@pytest.fixture
def audio_server(served):
    """Serves WAVs by name; ?delay=S answers after S seconds. `hits` counts requests."""
    ns = SimpleNamespace(files={"a.wav": silent_wav(0.5), "b.wav": silent_wav(0.8)}, hits=0)

    async def serve(request: web.Request) -> web.Response:
        ns.hits += 1
        await asyncio.sleep(float(request.query.get("delay", 0)))
        return web.Response(body=ns.files[request.match_info["name"]], content_type="audio/wav")

    app = web.Application()
    app.router.add_get("/{name}", serve)
    ns.url = served.start(app)
    return ns


@pytest.fixture
def farm_api(served, redis_url, tmp_path):
    """start(limits=...) serves the scheduler app; `key(tier)` makes a tenant's key."""
    r = redis.Redis.from_url(redis_url)
    ns = SimpleNamespace(r=r, made=0)

    def start(limits: Limits = Limits(allow_private_urls=True), url: str = redis_url) -> str:
        cfg = SchedulerConfig(redis_url=url, data_dir=tmp_path / "data", limits=limits)
        ns.url = served.start(create_app(cfg))
        return ns.url

    def key(tier: str = "pro") -> str:
        ns.made += 1
        return create_key(r, f"tenant{ns.made}", tier)

    ns.start, ns.key = start, key
    yield ns
    r.close()


def test_create_get_list_and_cancel(sdk, farm_api, audio_server, tmp_path):
    client = sdk(farm_api.start(), farm_api.key())
    upload = tmp_path / "speech.wav"
    upload.write_bytes(silent_wav(1.0))
    first = client.create_animation(audio_path=upload, transcript="hello", quality="preview",
                                    captions=False)
    assert first.state == "queued" and first.price == 0.1 and first.raw["duration_s"] == 1.0
    ids = [first.job_id] + [client.create_animation(audio_url=f"{audio_server.url}/a.wav",
                                                    title=f"n{i}").job_id for i in range(4)]
    got = client.get(ids[1])
    assert got.job_id == ids[1] and got.raw["quality"] == "standard" and got.raw["duration_s"] == 0.5

    page = client.list(limit=2)
    assert [j.job_id for j in page.items] == ids[::-1][:2] and page.next_cursor
    assert [j.job_id for j in client.iter_renders(page_size=2)] == ids[::-1]  # three pages

    assert client.cancel(ids[2]).state == "canceled"
    assert client.get(ids[2]).state == "canceled"
    assert [j.job_id for j in client.iter_renders(state="canceled")] == [ids[2]]
    assert client.list(state=["queued", "canceled"], limit=100).next_cursor is None
    with pytest.raises(Conflict) as exc:  # not rendered: nothing to download
        client.download(ids[0], tmp_path / "out.mp4")
    assert exc.value.code == "not_ready" and not (tmp_path / "out.mp4").exists()


def test_batch_usage_and_catalog(sdk, farm_api, audio_server):
    client = sdk(farm_api.start(), farm_api.key("starter"))
    items = [{"audio_url": f"{audio_server.url}/{n}", "quality": "preview", "title": n}
             for n in ("a.wav", "b.wav", "a.wav")]
    batch = client.create_batch(items, idempotency_key="batch-1")
    assert batch.batch_id.startswith("b_") and [j.state for j in batch.renders] == ["queued"] * 3
    again = client.create_batch(items, idempotency_key="batch-1")
    assert [j.job_id for j in again.renders] == [j.job_id for j in batch.renders]
    assert len(list(client.iter_renders())) == 3

    usage = client.get_usage()
    assert usage["tier"] == "starter" and usage["renders_in_progress"] == 3
    assert usage["renders_remaining"] == 97
    assert "explainer" in {t["name"] for t in client.list_templates()}
    assert "toonz" in {c["name"] for c in client.list_characters()}
    pricing = client.get_pricing()
    assert {q["name"]: q["price"] for q in pricing["qualities"]}["hd"] == 1.0


def test_webhook_endpoints(sdk, farm_api, audio_server):
    client = sdk(farm_api.start(), farm_api.key())
    hook = client.create_webhook(f"{audio_server.url}/hook", events=["render.failed"])
    assert hook["secret"].startswith("whsec_") and hook["events"] == ["render.failed"]
    assert [h["id"] for h in client.list_webhooks()] == [hook["id"]]
    assert "secret" not in client.list_webhooks()[0]
    client.delete_webhook(hook["id"])
    assert client.list_webhooks() == []
    with pytest.raises(NotFound) as exc:
        client.delete_webhook(hook["id"])
    assert exc.value.code == "webhook_not_found"


def test_quota_refusal_is_typed(sdk, farm_api, audio_server):
    client = sdk(farm_api.start(), farm_api.key("free"))
    for i in range(10):  # the free tier's 10 renders a month pass
        client.create_animation(audio_url=f"{audio_server.url}/a.wav", quality="preview")
    with pytest.raises(QuotaExceeded) as exc:
        client.create_animation(audio_url=f"{audio_server.url}/a.wav", quality="preview")
    assert exc.value.status == 402 and exc.value.code == "quota_exceeded" and exc.value.request_id
    assert len(list(client.iter_renders())) == 10
    assert client.get_usage()["renders_remaining"] == 0


def test_errors_are_typed(sdk, farm_api, tmp_path):
    url = farm_api.start()
    client = sdk(url, farm_api.key())
    with pytest.raises(NotFound) as exc:
        client.get("r_0123456789abcdef")
    assert exc.value.code == "job_not_found" and exc.value.request_id
    upload = tmp_path / "a.wav"
    upload.write_bytes(silent_wav(0.5))
    with pytest.raises(InvalidInput) as exc:
        client.create_animation(audio_path=upload, quality="8k")
    assert exc.value.code == "unknown_quality" and exc.value.status == 400
    with pytest.raises(Unauthorized) as exc:
        sdk(url, "tz_live_wrong").get_usage()
    assert exc.value.code == "invalid_api_key"

    # A key revoked through the admin API is refused from then on.
    admin = {"Authorization": f"Bearer {create_key(farm_api.r, 'ops', 'enterprise', 'admin')}"}
    made = requests.post(f"{url}/v1/admin/tenants", json={"name": "globex", "tier": "pro"},
                         headers=admin).json()["key"]
    other = sdk(url, made["api_key"])
    assert other.get_usage()["tier"] == "pro"
    assert requests.delete(f"{url}/v1/admin/keys/{made['key_id']}", headers=admin).status_code == 200
    with pytest.raises(Unauthorized) as exc:
        other.get_usage()
    assert exc.value.code == "invalid_api_key"


def test_idempotency_key(sdk, farm_api, audio_server):
    client = sdk(farm_api.start(), farm_api.key())
    a = client.create_animation(audio_url=f"{audio_server.url}/a.wav", idempotency_key="k-1")
    b = client.create_animation(audio_url=f"{audio_server.url}/a.wav", idempotency_key="k-1")
    assert a.job_id == b.job_id and audio_server.hits == 1  # the retry was answered unfetched
    with pytest.raises(IdempotencyKeyReused) as exc:
        client.create_animation(audio_url=f"{audio_server.url}/b.wav", idempotency_key="k-1")
    assert isinstance(exc.value, Conflict) and exc.value.status == 409
    assert [j.job_id for j in client.iter_renders()] == [a.job_id]


def test_a_timed_out_create_retried_makes_one_job(sdk, farm_api, audio_server):
    """The first attempt times out at the client while the scheduler still works on it;
    the retry carries the SDK's own Idempotency-Key, so it gets the first job."""
    seen = []
    patient = RetryPolicy(backoff_base_s=0.2, backoff_max_s=1.0)  # 8 tries span the slow fetch
    client = sdk(farm_api.start(), farm_api.key(), timeout_s=1.0, retry=patient,
                 on_retry=lambda n, wait, why: seen.append(why))
    job = client.create_animation(audio_url=f"{audio_server.url}/a.wav?delay=2")
    assert [j.job_id for j in client.iter_renders()] == [job.job_id]
    assert seen[0] in ("ReadTimeout", "TimeoutError", "ServerTimeoutError", "SocketTimeoutError")
    assert "409 idempotency_in_progress" in seen  # the first attempt was still running


def test_a_farm_that_never_answers_is_a_typed_error(sdk):
    import socket

    with socket.socket() as sock:  # a port nothing listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    tries = []
    client = sdk(f"http://127.0.0.1:{port}", "tz_live_x", on_retry=lambda n, wait, why: tries.append(n),
                 retry=RetryPolicy(max_attempts=3, backoff_base_s=0.01, max_total_wait_s=1.0))
    with pytest.raises(ServiceUnavailable) as exc:
        client.get_usage()
    assert exc.value.code == "unreachable" and "3 times" in exc.value.message
    assert tries == [1, 2]  # retried, a GET being safe to repeat


def test_rate_limited_requests_wait_retry_after(sdk, farm_api):
    url = farm_api.start(Limits(rate_limit=RateLimit(per_second=0.5, burst=2.0)))
    key = farm_api.key()
    waits = []
    client = sdk(url, key, on_retry=lambda n, wait, why: waits.append((wait, why)))
    client.get_usage()
    client.get_usage()  # the burst is spent
    with pytest.raises(RateLimited) as exc:
        sdk(url, key, retry=NO_RETRIES).get_usage()
    assert 1 <= exc.value.retry_after <= 2 and exc.value.request_id
    with pytest.raises(RateLimited):  # a wait past the policy's budget is not waited
        sdk(url, key, retry=RetryPolicy(max_total_wait_s=0.5)).get_usage()
    assert client.get_usage()["tier"] == "pro"  # waited Retry-After, then passed
    assert waits and all(why == "429 rate_limited" and wait >= 1 for wait, why in waits)


def test_retry_while_redis_restarts(sdk, served, audio_server, tmp_path):
    """503 from the real scheduler while its Redis is down; the client retries until it is back.
    The create is a POST: it is retried under the SDK's Idempotency-Key, one job results."""
    with RedisProcess(tmp_path / "redis") as server:
        key = create_key(redis.Redis.from_url(server.url), "acme", "pro")
        url = served.start(create_app(SchedulerConfig(
            redis_url=server.url, data_dir=tmp_path / "data", limits=Limits(allow_private_urls=True))))
        why = []

        def restart(n: int, wait: float, reason: str) -> None:
            why.append(reason)
            if server.proc.poll() is not None:
                server.start()

        client = sdk(url, key, retry=FAST, on_retry=restart)
        server.stop()
        job = client.create_animation(audio_url=f"{audio_server.url}/a.wav")
        assert why[0] == "503 unavailable"
        server.stop()  # and a GET rides out a restart too
        assert client.get(job.job_id).state == "queued"
        assert [j.job_id for j in client.iter_renders()] == [job.job_id]


def test_retry_policy_at_the_edge(sdk, served):
    """A proxy in front of the scheduler answers 503 twice: a create is sent three times
    with one Idempotency-Key; a POST without a key is not sent again."""
    calls = []

    async def flaky(request: web.Request) -> web.Response:
        calls.append(request.headers.get("Idempotency-Key"))
        if request.path == "/v1/webhooks" or len(calls) < 3:
            return web.Response(status=503, text="<html>upstream unavailable</html>")
        return web.json_response({"job_id": "r_0123456789abcdef", "state": "queued"}, status=202)

    app = web.Application()
    app.router.add_post("/{tail:.*}", flaky)
    client = sdk(served.start(app), "tz_live_x", retry=FAST)
    assert client.create_animation(audio_url="https://example.com/a.wav").job_id == "r_0123456789abcdef"
    assert len(calls) == 3 and len(set(calls)) == 1 and calls[0].startswith("sdk_")
    calls.clear()
    client.create_animation(audio_url="https://example.com/a.wav", idempotency_key="mine")
    assert calls == ["mine"] * 3  # the caller's own key, on every attempt
    calls.clear()
    with pytest.raises(ServiceUnavailable) as exc:
        client.create_webhook("https://example.com/hook")
    assert calls == [None] and exc.value.code == "http_error" and exc.value.status == 503


def test_verify_webhook():
    body = json.dumps({"id": "evt_1", "type": "render.succeeded"}).encode()
    header = sign("whsec_test", body)
    assert verify_webhook(header, body, "whsec_test")
    assert not verify_webhook(header, body + b" ", "whsec_test")
    assert not verify_webhook(header, body, "whsec_other")


def test_sync_client_imports_without_aiohttp():
    code = ("import sys; sys.modules['aiohttp'] = None\n"
            "import farm.client as c\n"
            "c.ToonzClient('http://127.0.0.1:1', 'k')\n"
            "try:\n    c.AsyncToonzClient('http://127.0.0.1:1', 'k')\n"
            "except ImportError as e:\n    print('async needs', e)\n")
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert "toonz-farm[async]" in out.stdout


async def test_async_wait_falls_back_to_polling_and_follows_reconnects(served):
    """No /events route: wait_for_completion polls. A stream that ends early: it reconnects
    with Last-Event-ID and reads on."""
    state = {"polls": 0, "streams": []}

    async def get(request: web.Request) -> web.Response:
        state["polls"] += 1
        done = state["polls"] >= 2
        return web.json_response({"job_id": request.match_info["id"], "state":
                                  "succeeded" if done else "running", "progress": 1.0 if done else 0.5})

    async def events(request: web.Request) -> web.StreamResponse:
        state["streams"].append(request.headers.get("Last-Event-ID"))
        resp = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await resp.prepare(request)
        if len(state["streams"]) == 1:  # one event, then the stream ends: reconnect in 50 ms
            await resp.write(b'retry: 50\n\nevent: progress\nid: running:0.5\ndata: {"job_id": "r_1", '
                             b'"state": "running", "progress": 0.5}\n\n')
        else:
            await resp.write(b'event: done\nid: succeeded:1.0\ndata: {"job_id": "r_1", '
                             b'"state": "succeeded", "progress": 1.0}\n\n')
        return resp

    plain, streaming = web.Application(), web.Application()
    for app in (plain, streaming):
        app.router.add_get("/v1/renders/{id}", get)
    streaming.router.add_get("/v1/renders/{id}/events", events)
    seen = []
    async with AsyncToonzClient(served.start(plain), "k") as client:
        done = await client.wait_for_completion("r_1", poll_interval=0.05, progress=seen.append)
    assert done.state == "succeeded" and [j.state for j in seen] == ["running", "succeeded"]

    state["polls"], seen = 1, []
    async with AsyncToonzClient(served.start(streaming), "k") as client:
        done = await client.wait_for_completion("r_1", poll_interval=0.05, progress=seen.append)
    assert state["streams"] == [None, "running:0.5"] and done.state == "succeeded"
    assert [j.progress for j in seen] == [0.5, 1.0]


# --- one real render per client ---------------------------------------------------------


@pytest.fixture(scope="module")
def local_farm(tmp_path_factory):
    data = tmp_path_factory.mktemp("farm")
    farm = LocalFarm(data, nodes=1)
    try:
        yield farm.start()
    finally:
        farm.stop()
        for log in sorted((data / "logs").glob("*.log")):  # shown by pytest on failure
            print(f"--- {log.name}\n{log.read_text()[-3000:]}")


@pytest.fixture(scope="module")
def clip(tmp_path_factory) -> tuple[Path, str]:
    text = "Hello from the farm."
    return espeak(text, tmp_path_factory.mktemp("clip") / "hello.wav"), text


def test_sync_render_with_progress(local_farm, clip, tmp_path):
    with ToonzClient(local_farm.scheduler_url, local_farm.api_key) as client:
        job = client.create_animation(audio_path=clip[0], transcript=clip[1], quality="preview")
        seen = []
        done = client.wait_for_completion(job.job_id, timeout=180, poll_interval=0.2,
                                          progress=seen.append)
        progress = [j.progress for j in seen]
        assert done.state == "succeeded" and progress == sorted(progress) and progress[-1] == 1.0
        assert {"video", "poster", "timeline"} <= set(done.download_urls)
        assert client.download(job.job_id, tmp_path / "v.mp4").read_bytes()[4:8] == b"ftyp"
        poster = client.download(job.job_id, tmp_path / "p.png", artifact="poster")
        assert poster.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        cues = json.loads(client.download(job.job_id, tmp_path / "t.json", artifact="timeline").read_text())
        assert cues["mouthCues"]


async def test_async_render_follows_the_event_stream(local_farm, clip, tmp_path):
    seen = []

    async def on_progress(job) -> None:  # a coroutine function is awaited
        seen.append(job)

    async with AsyncToonzClient(local_farm.scheduler_url, local_farm.api_key) as client:
        job = await client.create_animation(audio_path=clip[0], transcript=clip[1], quality="preview")
        # An hour between polls: only the progress stream can finish this in time.
        done = await client.wait_for_completion(job.job_id, timeout=180, poll_interval=3600,
                                                progress=on_progress)
        assert done.state == "succeeded" and seen[-1].state == "succeeded"
        assert [j.progress for j in seen] == sorted(j.progress for j in seen)
        video = await client.download(job.job_id, tmp_path / "v.mp4")
        assert video.read_bytes()[4:8] == b"ftyp"
        # The pro tier paused, the next render stays queued until it is canceled.
        admin = {"Authorization": f"Bearer {local_farm.admin_key}"}
        tier = f"{local_farm.scheduler_url}/v1/admin/tiers/pro"
        assert requests.post(f"{tier}/pause", headers=admin).ok
        try:
            other = await client.create_animation(audio_path=clip[0], quality="preview")
            assert (await client.cancel(other.job_id)).state == "canceled"
            with pytest.raises(RenderFailed, match="canceled"):
                await client.wait_for_completion(other.job_id, timeout=30)
        finally:
            assert requests.post(f"{tier}/resume", headers=admin).ok
