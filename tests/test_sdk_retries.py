"""The SDK's retries and waits: timeouts, a farm that never answers, 429s, a Redis restart,
503s at a proxy, and wait_for_completion's polling and reconnects."""

from __future__ import annotations

import pytest
import redis
from aiohttp import web

from farm.aclient import AsyncToonzClient
from farm.config import Limits, SchedulerConfig
from farm.errors import RateLimited, ServiceUnavailable
from farm.presets import RateLimit
from farm.redisproc import RedisProcess
from farm.sdk_common import NO_RETRIES, RetryPolicy
from farm.tenants import create_key
from scheduler.app import create_app


FAST = RetryPolicy(backoff_base_s=0.05, backoff_max_s=0.5)  # quick backoff; Retry-After still honoured


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
