"""Every output format, rendered by the pipeline and decoded back: size, frames, duration.

Plus the poster PNG, the encoder presets per format and quality, streamed audio,
and `toonz render --format`.
"""

from __future__ import annotations

import math
import re
from pathlib import Path
import subprocess
import sys
import wave

import av
import numpy as np
import pytest
from PIL import Image

from farm import presets
from farm.audio import decode_audio, probe_duration
from farm.errors import InvalidInput
from farm.timeline import MouthCue, Timeline
from node.pipeline import fit_timeline, output_paths, render
from node.render.cpu import CpuCompositor
from node.render.scene import build_scene
from node.render.audio import FileSource
from node.render.encode import VideoEncoder, choose_codec

CODECS = {"mp4": ("h264", "aac"), "webm": ("vp9", "opus"), "gif": ("gif", None)}


def cues(duration: float) -> Timeline:
    shapes = "XBDAFCX"
    step = duration / len(shapes)
    return Timeline(duration, tuple(MouthCue(k * step, (k + 1) * step, s) for k, s in enumerate(shapes)))


def decoded(path):
    """(width, height, frames, seconds from the frame timestamps, video codec, audio codec)."""
    with av.open(str(path)) as c:
        v = c.streams.video[0]
        a = c.streams.audio[0].codec_context.name if c.streams.audio else None
        frames = list(c.decode(v))
        last = frames[-1]
        end = float((last.pts + last.duration) * last.time_base)
        return v.codec_context.width, v.codec_context.height, len(frames), end, v.codec_context.name, a


@pytest.mark.parametrize("fmt", presets.FORMATS)
def test_every_format_decodes_back(fmt, goforward, tmp_path):
    audio, _ = goforward
    seconds = probe_duration(audio)
    result = render(audio, tmp_path / "out.mp4", timeline=cues(seconds), quality="preview",
                    format=fmt, backend="cpu")
    assert result.video == tmp_path / f"out.{fmt}" and result.video.is_file()
    assert result.format == fmt
    width, height, frames, end, vcodec, acodec = decoded(result.video)
    assert (width, height) == (640, 360)
    assert frames == result.frames == math.ceil(seconds * 24 - 1e-9)
    assert abs(end - seconds) <= 1 / 24
    assert (vcodec, acodec) == CODECS[fmt]
    with Image.open(result.poster) as poster:
        assert poster.format == "PNG" and poster.size == (640, 360) and poster.mode == "RGB"


def test_gif_runs_at_most_30_fps(tmp_path):
    path = tmp_path / "short.wav"
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(16000)
        w.writeframes(b"\x00\x00" * 8000)  # half a second
    result = render(path, tmp_path / "video.gif", timeline=cues(0.5), quality="ultra", format="gif")
    width, height, frames, end, _, _ = decoded(result.video)
    assert (width, height, frames) == (3840, 2160, 15)
    assert abs(end - 0.5) <= 1 / 30
    assert result.poster == tmp_path / "poster.png" and result.timeline == tmp_path / "timeline.json"


def test_gif_frames_look_like_the_render(goforward, toonz, explainer, tmp_path):
    audio, _ = goforward
    timeline = fit_timeline(cues(probe_duration(audio)), probe_duration(audio))
    result = render(audio, tmp_path / "x.gif", timeline=timeline, quality="preview", format="gif")
    scene = build_scene(explainer, toonz, timeline, 640, 360, 24)
    cpu = CpuCompositor(scene.art)
    with av.open(str(result.video)) as c:
        for i, frame in enumerate(c.decode(video=0)):
            if i % 20:
                continue
            got = frame.to_ndarray(format="rgb24").astype(int)
            want = cpu.render_rgba(scene.frame(i))[..., :3].astype(int)
            # Flat colours survive the palette; the +-3 level dither and antialiased
            # edges mapped to their nearest entry leave a small error (measured: mean
            # 1.6, 99th percentile 9 codes).
            err = np.abs(got - want)
            assert err.mean() < 2.5 and np.percentile(err, 99) <= 12


def test_cpu_and_gl_backends_give_the_same_video_frames(goforward, tmp_path):
    audio, _ = goforward
    timeline = cues(probe_duration(audio))
    got = {}
    for backend in ("cpu", "gl"):
        result = render(audio, tmp_path / f"{backend}.mp4", timeline=timeline, quality="preview",
                        backend=backend)
        assert result.backend == backend
        with av.open(str(result.video)) as c:
            got[backend] = [f.to_ndarray().astype(int) for f in c.decode(video=0)][::9]
    for a, b in zip(got["cpu"], got["gl"]):
        # Inputs within one code; x264 then quantises both: compare the mean, not the max.
        assert np.abs(a - b).mean() < 0.5


def test_renders_are_bit_identical(goforward, tmp_path):
    audio, _ = goforward
    timeline = cues(probe_duration(audio))
    frames = []
    for k in range(2):
        result = render(audio, tmp_path / f"{k}.mp4", timeline=timeline, quality="preview")
        with av.open(str(result.video)) as c:
            frames.append([f.to_ndarray() for f in c.decode(video=0)])
    assert len(frames[0]) == len(frames[1])
    for a, b in zip(*frames):
        np.testing.assert_array_equal(a, b)


def test_output_paths():
    assert output_paths(Path("/w/video.mp4"), "webm") == (
        Path("/w/video.webm"), Path("/w/timeline.json"), Path("/w/poster.png"))
    assert output_paths(Path("/w/talk.mp4"), "gif") == (
        Path("/w/talk.gif"), Path("/w/talk.timeline.json"), Path("/w/talk.poster.png"))


def test_encoder_presets_per_format_and_quality():
    for quality in presets.QUALITIES:
        mp4 = presets.encoder_preset("mp4", quality)
        assert mp4.codec == "libx264" and mp4.hardware == "h264_nvenc"
        assert dict(mp4.options)["preset"] == presets.quality(quality).x264_preset
        webm = presets.encoder_preset("webm", quality)
        assert webm.codec == "libvpx-vp9" and dict(webm.options)["deadline"] == "realtime"
        assert presets.encoder_preset("gif", quality).codec == "gif"
    with pytest.raises(InvalidInput, match="unknown format 'mov'"):
        presets.encoder_preset("mov", "hd")
    # No NVENC on this machine (nor on an H100 or H200): the software encoders.
    codec, options = choose_codec(presets.encoder_preset("mp4", "hd"))
    assert codec in ("libx264", "h264_nvenc") and "preset" in options


def test_file_source_streams_what_decode_audio_gives(goforward):
    audio, _ = goforward
    whole = decode_audio(audio, 48000)
    source = FileSource(audio, 48000)
    parts = [source.read(n) for n in (1, 1999, 48000, 10**7, 5)]
    source.close()
    np.testing.assert_array_equal(np.concatenate(parts), whole)
    assert len(parts[-1]) == 0


def test_encoder_frame_slots_round_trip(tmp_path):
    path = tmp_path / "slots.webm"
    with VideoEncoder(path, 64, 48, 10, codec="libvpx-vp9", options={"deadline": "realtime"}) as enc:
        for k in range(6):
            y, u, v = enc.frame_planes(k % 2)
            y[...], u[...], v[...] = 16 + 40 * k, 128, 128
            enc.write_frame(k % 2)
    with av.open(str(path)) as c:
        lumas = [float(f.to_ndarray()[:48].mean()) for f in c.decode(video=0)]
    assert [round(x / 10) * 10 for x in lumas] == [20, 60, 100, 140, 180, 220]


def test_toonz_render_format_webm(goforward, tmp_path):
    audio, _ = goforward
    (tmp_path / "cues.json").write_text(cues(probe_duration(audio)).to_json_text())
    res = subprocess.run([sys.executable, "-m", "farm.cli.main", "render", str(audio), "--timeline",
                          str(tmp_path / "cues.json"), "--quality", "preview", "--format", "webm",
                          "-o", str(tmp_path / "out.webm")], capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr
    assert decoded(tmp_path / "out.webm")[4:] == ("vp9", "opus")
    assert (tmp_path / "out.poster.png").is_file()


def test_a_render_with_a_transcript_writes_captions(goforward, tmp_path):
    audio, transcript = goforward
    result = render(audio, tmp_path / "video.mp4", transcript=transcript, quality="preview",
                    backend="cpu")
    assert result.captions == tmp_path / "captions.vtt"
    text = result.captions.read_text()
    assert text.startswith("WEBVTT")
    # The clip says "Go forward ten meters" (the transcript may write the number).
    spoken = " ".join(line for line in text.splitlines() if line and "-->" not in line
                      and not line.isdigit() and line != "WEBVTT")
    words = re.sub(r"<[^>]+>", "", spoken).split()
    assert [w.strip(".,").lower() for w in words][:2] == ["go", "forward"]
    # Without words there are no captions, and no stale file from an earlier render.
    again = render(audio, tmp_path / "video.mp4", timeline=cues(probe_duration(audio)),
                   quality="preview", backend="cpu")
    assert again.captions is None and not (tmp_path / "captions.vtt").exists()
