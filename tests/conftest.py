"""Shared fixtures: a real redis-server on a free port, speech made by espeak-ng."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
import redis

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
    from types import SimpleNamespace

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
