"""Shared fixtures: a real redis-server on a free port, the API app, speech made by espeak-ng,
and the fixtures the API rules, SDK and webhook test modules share."""

from __future__ import annotations

import asyncio
import json
import shutil
import subprocess
from dataclasses import replace
from pathlib import Path
from types import SimpleNamespace

import pytest
import redis
from aiohttp import web

from farm.audio import silent_wav
from farm.redisproc import RedisProcess

REPO = Path(__file__).resolve().parent.parent
SAMPLES = REPO / "assets" / "samples"


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory):
    with RedisProcess(tmp_path_factory.mktemp("redis")) as server:
        yield server


@pytest.fixture
def redis_url(redis_server) -> str:
    client = redis.Redis.from_url(redis_server.url)
    client.flushall()
    client.close()
    return redis_server.url


@pytest.fixture
def r(redis_url):
    client = redis.Redis.from_url(redis_url)
    yield client
    client.close()


@pytest.fixture
async def api(aiohttp_client, redis_url, tmp_path):
    """The real scheduler app on a real Redis: `await api.make(config)` starts it (default
    `api.cfg`, which a test may replace first); `api.key` is tenant acme's (pro)."""
    from farm.config import SchedulerConfig
    from farm.tenants import create_key
    from scheduler.app import create_app

    client = redis.Redis.from_url(redis_url)
    ns = SimpleNamespace(r=client, cfg=SchedulerConfig(redis_url=redis_url, data_dir=tmp_path / "data"),
                         key=create_key(client, "acme", "pro"))

    async def make(config=None):
        ns.client = await aiohttp_client(create_app(config or ns.cfg))
        return ns

    ns.make = make
    yield ns
    client.close()


def espeak(text: str, path: Path, voice: str = "en-us", speed: int = 160) -> Path:
    if shutil.which("espeak-ng") is None:
        pytest.fail("espeak-ng is not installed (scripts/setup.sh installs it)")
    subprocess.run(["espeak-ng", "-v", voice, "-s", str(speed), "-w", str(path), text], check=True)
    return path


SPEECH_TEXT = "Hello there. My name is Toby, and I will show you how the farm makes movies."


@pytest.fixture(scope="session")
def speech(tmp_path_factory) -> tuple[Path, str]:
    """A short synthetic narration and its exact transcript."""
    path = tmp_path_factory.mktemp("speech") / "speech.wav"
    return espeak(SPEECH_TEXT, path), SPEECH_TEXT


@pytest.fixture(scope="session")
def goforward() -> tuple[Path, str]:
    return SAMPLES / "goforward.wav", (SAMPLES / "goforward.txt").read_text().strip()


@pytest.fixture(scope="session")
def toonz():
    """The shipped character."""
    from assets.loader import load_character
    return load_character("toonz")


@pytest.fixture(scope="session")
def explainer():
    """The shipped explainer template."""
    from assets.loader import load_template
    return load_template("explainer")


# --- the API rules tests (test_api_admin, test_api_limits, test_api_batch) ----------------------


@pytest.fixture
def admin(api) -> dict:
    """An admin key's headers (tenant operator, enterprise)."""
    from farm.tenants import create_key
    from tests.test_api import auth
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


# --- the SDK tests (test_sdk_calls, test_sdk_retries); test_openapi has a `served` of its own -----


@pytest.fixture
def served():
    """`start(app)` serves an aiohttp app on a real 127.0.0.1 port (tests.sdktools.Served)."""
    from tests.sdktools import Served

    s = Served()
    yield s
    s.stop()


@pytest.fixture(params=["sync", "async"])
def sdk(request):
    """make(base_url, api_key, **options): a client of the kind under test."""
    from farm.aclient import AsyncToonzClient
    from farm.client import ToonzClient
    from tests.sdktools import Blocking

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
    from farm.config import Limits, SchedulerConfig
    from farm.tenants import create_key
    from scheduler.app import create_app

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


# --- the webhook tests (test_webhook_endpoints, test_webhook_delivery); test_e2e,
# test_render_fields and test_console_browser have a `farm` of their own ------------------------


@pytest.fixture
async def receiver(aiohttp_server):
    """A webhook receiver: records every request; answers rec.statuses in turn, then 200."""
    rec = SimpleNamespace(requests=[], statuses=[], hang=asyncio.Event())

    async def handle(request: web.Request) -> web.StreamResponse:
        body = await request.read()
        rec.requests.append(SimpleNamespace(path=request.path, headers=request.headers, body=body,
                                            json=json.loads(body)))
        if request.path == "/redirect":
            raise web.HTTPFound("/moved")
        if request.path == "/hang":
            await rec.hang.wait()  # never set: the farm must time out
        return web.Response(status=rec.statuses.pop(0) if rec.statuses else 200)

    app = web.Application()
    app.router.add_post("/{name}", handle)
    server = await aiohttp_server(app)
    rec.url = lambda name="hook": str(server.make_url(f"/{name}"))
    rec.at = lambda name="hook": [q for q in rec.requests if q.path == f"/{name}"]
    yield rec
    rec.hang.set()  # let a hung handler end before the server shuts down


@pytest.fixture
async def farm(api):
    """`api` with loopback allowed for the receiver and a fast retry schedule."""
    from tests.hooktools import ALLOW_LOCAL, FAST

    api.cfg = replace(api.cfg, limits=ALLOW_LOCAL, webhooks=FAST)
    return api
