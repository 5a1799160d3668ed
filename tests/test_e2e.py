"""The whole product: `toonz up`'s real processes, a render through the SDK, the MP4."""

from __future__ import annotations

import json

import pytest
import requests

from farm.audio import probe_duration
from farm.client import ToonzClient
from farm.errors import NotFound, Unauthorized
from tests.farms import one_node_farm
from tests.media import probe


@pytest.fixture(scope="module")
def farm(tmp_path_factory):
    yield from one_node_farm(tmp_path_factory)


def test_sdk_render_through_the_farm(farm, speech, tmp_path):
    audio, text = speech
    client = ToonzClient(base_url=farm.scheduler_url, api_key=farm.api_key)
    job = client.create_animation(audio_path=audio, transcript=text, template="explainer",
                                  quality="standard")
    seen = []
    result = client.wait_for_completion(job.job_id, timeout=300, progress=seen.append)
    out = client.download(job.job_id, tmp_path / "output" / "animation.mp4")

    facts = probe(out)
    audio_s = probe_duration(audio)
    assert (facts.width, facts.height, facts.fps) == (1280, 720, 30)
    assert facts.video_codec == "h264" and facts.audio_codec == "aac"
    assert abs(facts.duration_s - audio_s) <= 1 / 30 + 1e-6
    assert result.raw["attempts"] == 1 and result.raw["node"] == "local-node-1"
    assert result.raw["started_at"] <= result.raw["finished_at"]
    # The transcript's words give captions; the job log stays private.
    assert set(result.raw["artifacts"]) == {"video.mp4", "timeline.json", "poster.png", "captions.vtt"}

    log = requests.get(f"{farm.scheduler_url}/v1/admin/jobs/{job.job_id}/log",
                       headers={"Authorization": f"Bearer {farm.admin_key}"})
    assert log.status_code == 200
    assert log.text.startswith(f"# toonz job {job.job_id}, attempt 1") and "rendered in" in log.text
    with pytest.raises(NotFound):
        client.download(job.job_id, tmp_path / "log.txt", artifact="log.txt")
    progress = [j.progress for j in seen]
    assert progress == sorted(progress) and progress[-1] == 1.0

    cues = json.loads(client.download(job.job_id, tmp_path / "t.json", artifact="timeline.json").read_text())
    shapes = [c["value"] for c in cues["mouthCues"]]
    assert len(set(shapes) - {"X"}) >= 3  # the mouth moves through several shapes

    usage = client.get_usage()
    assert usage["renders_used"] == 1 and usage["renders_in_progress"] == 0
    assert usage["renders_remaining"] == 999 and usage["cost"] == 0.5


def test_sdk_errors_are_typed(farm, tmp_path):
    client = ToonzClient(base_url=farm.scheduler_url, api_key=farm.api_key)
    with pytest.raises(NotFound):
        client.get("r_0123456789abcdef")
    with pytest.raises(Unauthorized):
        ToonzClient(base_url=farm.scheduler_url, api_key="tz_live_wrong").get_usage()


def test_silence_renders_with_the_mouth_at_rest(farm, tmp_path):
    """Silence is not an error: the render succeeds and every cue is X."""
    import wave
    client = ToonzClient(base_url=farm.scheduler_url, api_key=farm.api_key)
    path = tmp_path / "silence.wav"
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(16000)
        w.writeframes(b"\x00\x00" * 16000)
    job = client.create_animation(audio_path=path, quality="preview")
    result = client.wait_for_completion(job.job_id, timeout=120)
    assert result.state == "succeeded"
    cues = json.loads(client.download(job.job_id, tmp_path / "t.json", artifact="timeline.json").read_text())
    assert {c["value"] for c in cues["mouthCues"]} == {"X"}


def test_webm_and_its_poster_through_the_farm(farm, goforward, tmp_path):
    from PIL import Image

    client = ToonzClient(base_url=farm.scheduler_url, api_key=farm.api_key)
    job = client.create_animation(audio_path=goforward[0], transcript=goforward[1], quality="preview",
                                  format="webm")
    client.wait_for_completion(job.job_id, timeout=120)
    facts = probe(client.download(job.job_id, tmp_path / "out.webm"))
    assert (facts.width, facts.height, facts.video_codec, facts.audio_codec) == (640, 360, "vp9", "opus")
    poster = client.download(job.job_id, tmp_path / "poster.png", artifact="poster.png")
    assert Image.open(poster).size == (640, 360)
