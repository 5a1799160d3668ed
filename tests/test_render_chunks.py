"""node/chunks.py: frame ranges rendered apart and stitched equal the whole render."""

from __future__ import annotations

import subprocess
from pathlib import Path

import av
import numpy as np
import pytest

from farm import presets
from farm.errors import InvalidInput
from node import chunks
from node.render.encode import choose_codec
from node.render.scene import build_scene
from tests.test_render_cpu import cue_timeline


def test_plan_covers_every_frame_once():
    for n in (1, 239, 240, 241, 7200, 10**6):
        ranges = chunks.plan(n, 24, 10)
        assert ranges[0].start == 0 and ranges[-1].stop == n
        assert all(a.stop == b.start for a, b in zip(ranges, ranges[1:]))
        assert len(ranges) <= chunks.MAX_CHUNKS
    assert len(chunks.plan(720, 24, 10)) == 3
    with pytest.raises(InvalidInput) as err:
        chunks.plan(720, 24, 1)
    assert err.value.code == "invalid_chunk"


def test_stitched_chunks_equal_the_whole_render(toonz, explainer, goforward, tmp_path):
    audio, _ = goforward
    long = tmp_path / "long.wav"
    subprocess.run(["sox", str(audio), str(long), "repeat", "9"], check=True)
    with av.open(str(long)) as c:
        seconds = float(c.duration / 1e6)
    scene = build_scene(explainer, toonz, cue_timeline(seconds, "XDAFXBCE"), 320, 180, 24)
    codec, options = choose_codec(presets.encoder_preset("mp4", "preview"))
    lossless = {k: v for k, v in options.items() if k != "crf"} | {"qp": "0"}
    parts = []
    for k, frames in enumerate(chunks.plan(scene.n_frames, 24, 10)):
        parts.append(tmp_path / f"c{k}.h264")
        assert chunks.render_chunk(scene, frames, parts[-1], codec, lossless) == len(frames)
    assert len(parts) == 3
    out = tmp_path / "stitched.mp4"
    assert chunks.stitch(parts, long, out, 320, 180, 24) == scene.n_frames
    whole = tmp_path / "whole.h264"
    chunks.render_chunk(scene, range(scene.n_frames), whole, codec, lossless)

    def decoded(path: Path) -> list[np.ndarray]:
        with av.open(str(path)) as c:
            return [f.to_ndarray() for f in c.decode(video=0)]

    got, want = decoded(out), decoded(whole)
    assert len(got) == len(want) == scene.n_frames
    assert all(np.array_equal(a, b) for a, b in zip(got, want))  # no gap, no repeat
    with av.open(str(out)) as c:
        v, a = c.streams.video[0], c.streams.audio[0]
        assert float(v.duration * v.time_base) == pytest.approx(scene.n_frames / 24)
        samples = sum(f.samples for f in c.decode(a))
    assert abs(samples / 48000 - seconds) < 0.05  # the audio whole, encoded once
