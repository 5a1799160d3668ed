"""Test helpers to read back what the encoder wrote."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import av


@dataclass(frozen=True)
class VideoFacts:
    width: int
    height: int
    fps: float
    frames: int
    duration_s: float
    video_codec: str
    audio_codec: str | None
    audio_duration_s: float | None


def probe(path: Path) -> VideoFacts:
    with av.open(str(path)) as c:
        v = c.streams.video[0]
        a = c.streams.audio[0] if c.streams.audio else None
        frames = sum(1 for _ in c.decode(v))
        adur = float(a.duration * a.time_base) if a is not None and a.duration else None
        return VideoFacts(width=v.codec_context.width, height=v.codec_context.height,
                          fps=float(v.average_rate), frames=frames, duration_s=frames / float(v.average_rate),
                          video_codec=v.codec_context.name, audio_codec=a.codec_context.name if a else None,
                          audio_duration_s=adur)
