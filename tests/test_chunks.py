"""Chunked renders through real processes (farm.localfarm.LocalFarm): a long MP4 split
into chunks rendered on several nodes, stitched, charged once; equal frame by frame to
the same render done in one piece; surviving a killed node; finishing on one node;
canceled as a whole. Chunks are made short (TOONZ_CHUNK_S) so a 30 s narration has four.
"""

from __future__ import annotations

import json
import math
from fractions import Fraction
import signal

import av
import numpy as np
import pytest

from farm import keys
from farm.audio import probe_duration
from farm.jobs import Job, JobState
from farm.lease import month_of
from farm.timeline import Timeline
from node.chunks import audio_frames
from tests.conftest import espeak
from tests.farms import farm_maker, job, wait_for
from tests.media import probe

TTL_S = 3.0
CHUNK_S = 8.0  # with about 30 s of audio: four chunks
ENV = {"TOONZ_LEASE_TTL_S": str(TTL_S), "TOONZ_REAP_INTERVAL_S": "0.3",
       "TOONZ_CHUNK_S": str(CHUNK_S), "TOONZ_MIN_CHUNK_S": "2"}
LOSSLESS = {"TOONZ_X264_QP0": "1"}
# Standard where nodes race for chunks (a preview chunk renders in a tenth of a second
# here, before another node has looked); preview where one node renders everything.
QUALITY_FPS = {"preview": 24, "standard": 30}
NARRATION = ("A long narration is cut into chunks of frames, and each chunk is drawn on the "
             "first node that is free. The node that took the whole render lip-syncs it once, "
             "splits it, draws what nobody else has taken, and waits for the rest. Then it joins "
             "the chunks without encoding them again, and lays the audio under them in one piece, "
             "so that nothing clicks at a join. Nothing is lost, nothing is shown twice, and "
             "the customer pays for one render.")


@pytest.fixture(scope="module")
def narration(tmp_path_factory):
    path = espeak(NARRATION, tmp_path_factory.mktemp("narration") / "n.wav", speed=150)
    assert probe_duration(path) >= 3 * CHUNK_S  # long enough for several chunks
    return path, NARRATION


@pytest.fixture
def make_farm(tmp_path):
    yield from farm_maker(tmp_path, ENV)


def submit(client, narration, quality: str = "preview", logo=None) -> str:
    return client.create_animation(audio_path=narration[0], transcript=narration[1],
                                   quality=quality, logo_path=logo).job_id


@pytest.fixture(scope="module")
def logo(tmp_path_factory):
    """A customer's logo: chunk nodes fetch it from the render (the related route)."""
    from PIL import Image, ImageDraw

    path = tmp_path_factory.mktemp("logo") / "logo.png"
    im = Image.new("RGBA", (120, 60), (0, 0, 0, 0))
    ImageDraw.Draw(im).ellipse((4, 4, 116, 56), fill=(220, 40, 90, 255))
    im.save(path)
    return path


def split_done(r, job_id: str) -> Job | None:
    j = job(r, job_id)
    return j if j.chunks else None


def frames_of(path) -> list[np.ndarray]:
    with av.open(str(path)) as c:
        return [f.to_ndarray(format="yuv420p") for f in c.decode(video=0)]


def expected_frames(audio, fps: int) -> int:
    """What a one-piece render writes: the timeline's frames, padded to the audio's."""
    return max(math.ceil(probe_duration(audio) * fps - 1e-9), audio_frames(audio, fps))


def check_charged_once(r, tenant: str, job_id: str) -> None:
    assert int(r.hget(keys.usage(tenant, month_of()), "renders")) == 1
    assert [e[1][b"job"].decode() for e in r.xrange(keys.ledger(tenant))] == [job_id]


def test_a_chunked_render_on_two_nodes(make_farm, narration, logo, tmp_path):
    farm, client, r = make_farm(nodes=2)
    job_id = submit(client, narration, "standard", logo)
    seen = []
    done = client.wait_for_completion(job_id, timeout=180, progress=seen.append)
    assert done.state == "succeeded" and done.raw["attempts"] == 1
    parent = job(r, job_id)
    assert len(parent.chunks) == 4
    chunks = [job(r, c) for c in parent.chunks]
    assert all(c.state == JobState.SUCCEEDED and c.kind == "chunk" for c in chunks)
    assert {c.node for c in chunks} == {"local-node-1", "local-node-2"}  # both nodes drew
    assert [(c.frame_start, c.frame_stop) for c in chunks][0][0] == 0
    assert all(a.frame_stop == b.frame_start for a, b in zip(chunks, chunks[1:]))
    check_charged_once(r, parent.tenant, job_id)
    folder = farm.data_dir / "artifacts" / job_id  # the chunks' streams are deleted once done
    wait_for(lambda: not list(folder.glob("c*.video.h264")), 10, "the chunk streams to go")
    # The tenant sees one render, with the usual files; chunks are the farm's business.
    assert [x.job_id for x in client.iter_renders()] == [job_id]
    assert set(done.raw["artifacts"]) == {"video.mp4", "timeline.json", "poster.png", "captions.vtt"}
    progress = [j.progress for j in seen]
    assert progress == sorted(progress) and progress[-1] == 1.0

    out = client.download(job_id, tmp_path / "video.mp4")
    facts = probe(out)
    audio_s = probe_duration(narration[0])
    fps = QUALITY_FPS["standard"]
    assert (facts.width, facts.height, facts.fps) == (1280, 720, fps)
    assert facts.video_codec == "h264" and facts.audio_codec == "aac"
    assert facts.frames == expected_frames(narration[0], fps) == chunks[-1].frame_stop
    assert abs(facts.duration_s - audio_s) <= 1 / fps + 1e-6
    assert abs(facts.audio_duration_s - facts.duration_s) <= 1 / fps
    with av.open(str(out)) as c:  # one frame per tick: no gap, no repeat at a join
        times = sorted(p.pts * p.time_base for p in c.demux(c.streams.video[0]) if p.size)
    assert times == [Fraction(i, fps) for i in range(facts.frames)]


def test_a_chunked_render_equals_the_render_in_one_piece_on_one_node(make_farm, narration, logo,
                                                                    tmp_path):
    """One node renders every chunk itself (it cannot wait on a farm of itself); with x264
    lossless, every decoded frame equals the same render done in one piece."""
    from node.pipeline import render

    farm, client, r = make_farm(nodes=1, env=LOSSLESS)
    job_id = submit(client, narration, logo=logo)
    assert client.wait_for_completion(job_id, timeout=180).state == "succeeded"
    parent = job(r, job_id)
    assert len(parent.chunks) == 4 and {job(r, c).node for c in parent.chunks} == {"local-node-1"}
    check_charged_once(r, parent.tenant, job_id)
    chunked = client.download(job_id, tmp_path / "chunked.mp4")

    # The same render in one piece, from the render's own timeline (lip sync is not on trial).
    stored = farm.data_dir / "artifacts" / job_id / "timeline.full.json"
    timeline = Timeline.from_dict(json.loads(stored.read_text()))
    whole = render(narration[0], tmp_path / "whole.mp4", timeline=timeline, transcript=narration[1],
                   quality="preview", backend="cpu", lossless=True, logo=logo)
    a, b = frames_of(whole.video), frames_of(chunked)
    assert len(a) == len(b) == expected_frames(narration[0], QUALITY_FPS["preview"])
    unequal = [i for i, (x, y) in enumerate(zip(a, b)) if not np.array_equal(x, y)]
    assert unequal == []
    assert len({x.tobytes() for x in a[::10]}) > 10  # the frames do move: the test can fail
    assert abs(probe(chunked).audio_duration_s - probe(whole.video).audio_duration_s) < 1e-3


def test_sigkill_the_node_rendering_a_chunk(make_farm, narration, tmp_path):
    farm, client, r = make_farm(nodes=2)
    job_id = submit(client, narration, "standard")
    parent = wait_for(lambda: split_done(r, job_id), 90, "the render to be split")

    def chunk_elsewhere() -> Job | None:
        for c in (job(r, cid) for cid in parent.chunks):
            if c.state in (JobState.LEASED, JobState.RUNNING) and c.node not in ("", parent.node):
                return c
        return None

    victim = wait_for(chunk_elsewhere, 60, "a chunk leased by the other node")
    farm.node_process(victim.node).send_signal(signal.SIGKILL)
    done = client.wait_for_completion(job_id, timeout=180)
    assert done.state == "succeeded" and done.raw["attempts"] == 1
    again = job(r, victim.id)
    assert again.state == JobState.SUCCEEDED and again.node == parent.node and again.attempts == 2
    check_charged_once(r, parent.tenant, job_id)
    frames = expected_frames(narration[0], QUALITY_FPS["standard"])
    assert probe(client.download(job_id, tmp_path / "v.mp4")).frames == frames


def test_sigkill_the_node_holding_the_render(make_farm, narration, tmp_path):
    """The render is leased again by the other node, which keeps the chunks already done."""
    farm, client, r = make_farm(nodes=2)
    job_id = submit(client, narration, "standard")
    parent = wait_for(lambda: split_done(r, job_id), 90, "the render to be split")
    done_before = wait_for(lambda: [c for c in (job(r, cid) for cid in parent.chunks)
                                    if c.state == JobState.SUCCEEDED], 60, "a chunk to succeed")
    farm.node_process(parent.node).send_signal(signal.SIGKILL)
    done = client.wait_for_completion(job_id, timeout=180)
    assert done.state == "succeeded" and done.raw["attempts"] == 2
    assert done.raw["node"] not in ("", parent.node)
    for before in done_before:  # reused, not drawn again
        after = job(r, before.id)
        assert (after.state, after.attempts, after.node, after.fence) == \
            (JobState.SUCCEEDED, 1, before.node, before.fence)
    check_charged_once(r, parent.tenant, job_id)
    frames = expected_frames(narration[0], QUALITY_FPS["standard"])
    assert probe(client.download(job_id, tmp_path / "v.mp4")).frames == frames


def test_cancel_of_the_render_cancels_its_chunks(make_farm, narration):
    farm, client, r = make_farm(nodes=2)
    job_id = submit(client, narration)
    parent = wait_for(lambda: split_done(r, job_id), 90, "the render to be split")
    client.cancel(job_id)
    wait_for(lambda: job(r, job_id).state == JobState.CANCELED, 3 * TTL_S, "the render to be canceled")

    def all_ended() -> list[Job] | None:
        chunks = [job(r, c) for c in parent.chunks]
        return chunks if all(c.state.terminal for c in chunks) else None

    chunks = wait_for(all_ended, 3 * TTL_S, "every chunk to end")
    assert any(c.state == JobState.CANCELED for c in chunks)
    assert r.zcard(keys.queue("pro")) == 0 and r.zcard(keys.LEASES) == 0
    assert r.hget(keys.usage(parent.tenant, month_of()), "renders") is None
    assert r.scard(keys.tenant_active(parent.tenant)) == 0
