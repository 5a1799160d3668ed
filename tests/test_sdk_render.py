"""One real render per SDK client (sync with progress, async on the event stream) through
a LocalFarm with one node."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import requests

from farm.aclient import AsyncToonzClient
from farm.client import ToonzClient
from farm.sdk_common import RenderFailed
from tests.conftest import espeak
from tests.farms import one_node_farm


@pytest.fixture(scope="module")
def local_farm(tmp_path_factory):
    yield from one_node_farm(tmp_path_factory)


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


def test_toonz_submit_sends_its_options(local_farm, clip, tmp_path):
    """`toonz submit` with every render option: the farm records them, and the file
    downloaded is the format asked for."""
    from PIL import Image

    from tests.media import probe

    Image.new("RGBA", (60, 30), (230, 40, 40, 255)).save(tmp_path / "logo.png")
    res = subprocess.run(
        [sys.executable, "-m", "farm.cli.main", "submit", str(clip[0]), "--transcript", clip[1],
         "--template", "podcast", "--second-character", "bolt", "--expression", "happy",
         "--no-captions", "--logo", str(tmp_path / "logo.png"), "--format", "webm",
         "--quality", "preview", "--url", local_farm.scheduler_url, "--api-key", local_farm.api_key],
        capture_output=True, text=True, cwd=tmp_path, timeout=300)
    assert res.returncode == 0, res.stderr
    job_id = res.stdout.split("submitted ", 1)[1].split(":", 1)[0]
    facts = probe(tmp_path / f"{job_id}.webm")
    assert facts.video_codec == "vp9" and (facts.width, facts.height) == (640, 360)
    with ToonzClient(local_farm.scheduler_url, local_farm.api_key) as client:
        job = client.get(job_id).raw
    assert (job["template"], job["second_character"], job["expression"], job["captions"],
            job["logo"]) == ("podcast", "bolt", "happy", False, True)
