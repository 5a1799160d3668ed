"""Encode, reopen and check what was written (PyAV's own test habit)."""

from __future__ import annotations

from fractions import Fraction

import av
import numpy as np
import pytest
import torch

from kernels import rgb_to_yuv420
from node.render.encode import VideoEncoder, frame_count, pick_video_codec

W, H, FPS, RATE = 160, 96, 24, 48000
COLOUR = (200, 60, 30)


def tone(seconds: float) -> np.ndarray:
    t = np.arange(int(seconds * RATE)) / RATE
    return (0.25 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)


def planes(rgb: tuple[int, int, int]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    img = torch.tensor(rgb, dtype=torch.uint8)[:, None, None].expand(3, H, W)
    return tuple(p.numpy() for p in rgb_to_yuv420(img))


def to_rgb(y: float, u: float, v: float) -> np.ndarray:
    """BT.709 limited range codes back to 8-bit RGB, in float64."""
    luma, cb, cr = (y - 16) / 219, (u - 128) / 224, (v - 128) / 224
    r = luma + 1.5748 * cr
    b = luma + 1.8556 * cb
    g = (luma - 0.2126 * r - 0.0722 * b) / 0.7152
    return np.array([r, g, b]) * 255


def test_round_trip(tmp_path):
    audio = tone(1.3)
    n = frame_count(len(audio), RATE, FPS)
    path = tmp_path / "out.mp4"
    y, u, v = planes(COLOUR)
    with VideoEncoder(path, W, H, FPS, audio=audio, audio_rate=RATE) as enc:
        for _ in range(n):
            enc.write_yuv(y, u, v)
    with av.open(str(path)) as c:
        vs, aus = c.streams.video[0], c.streams.audio[0]
        assert (vs.codec_context.width, vs.codec_context.height) == (W, H)
        assert vs.average_rate == Fraction(FPS)
        assert aus.codec_context.name == "aac" and aus.rate == RATE
        frames = list(c.decode(vs))
        assert len(frames) == n
        assert abs(c.duration / 1e6 - len(audio) / RATE) <= 1 / FPS
        first = frames[0]
        assert first.color_range == 1 and first.colorspace == 1  # MPEG (limited), BT.709
        got = first.to_ndarray()  # (H * 3 / 2, W) I420
    got_y, got_u = got[:H], got[H : H + H // 4].reshape(H // 2, W // 2)
    got_v = got[H + H // 4 :].reshape(H // 2, W // 2)
    centre = (float(got_y[H // 2, W // 2]), float(got_u[H // 4, W // 4]), float(got_v[H // 4, W // 4]))
    assert np.abs(to_rgb(*centre) - COLOUR).max() <= 4


def test_audio_is_interleaved_with_video(tmp_path):
    audio = tone(2.0)
    path = tmp_path / "out.mp4"
    y, u, v = planes(COLOUR)
    with VideoEncoder(path, W, H, FPS, audio=audio, audio_rate=RATE) as enc:
        for _ in range(frame_count(len(audio), RATE, FPS)):
            enc.write_yuv(y, u, v)
    with av.open(str(path)) as c:
        kinds = [p.stream.type for p in c.demux() if p.size]
    last_video = max(i for i, k in enumerate(kinds) if k == "video")
    first_audio = kinds.index("audio")
    assert first_audio < last_video // 2


def test_short_video_is_padded_to_the_audio(tmp_path):
    audio = tone(1.0)
    path = tmp_path / "out.mp4"
    y, u, v = planes(COLOUR)
    with VideoEncoder(path, W, H, FPS, audio=audio, audio_rate=RATE) as enc:
        for _ in range(10):
            enc.write_yuv(y, u, v)
    with av.open(str(path)) as c:
        assert sum(1 for _ in c.decode(video=0)) == FPS
        assert abs(c.duration / 1e6 - 1.0) <= 1 / FPS


def test_video_without_audio(tmp_path):
    path = tmp_path / "out.mp4"
    y, u, v = planes(COLOUR)
    with VideoEncoder(path, W, H, FPS) as enc:
        for _ in range(5):
            enc.write_yuv(y, u, v)
    with av.open(str(path)) as c:
        assert not c.streams.audio
        assert sum(1 for _ in c.decode(video=0)) == 5


def test_bad_input_is_rejected(tmp_path):
    with pytest.raises(ValueError, match="even. Got 161x96"):
        VideoEncoder(tmp_path / "a.mp4", 161, 96, FPS)
    with pytest.raises(ValueError, match="float32"):
        VideoEncoder(tmp_path / "b.mp4", W, H, FPS, audio=np.zeros(10, np.float64))
    with VideoEncoder(tmp_path / "c.mp4", W, H, FPS) as enc:
        y, u, v = planes(COLOUR)
        with pytest.raises(ValueError, match="Got"):
            enc.write_yuv(y[:-2], u, v)


def test_pick_video_codec_is_cached():
    assert pick_video_codec() in ("h264_nvenc", "libx264")
    assert pick_video_codec() is pick_video_codec()
