"""Chunked renders: a long MP4 cut into frame ranges rendered apart, then stitched.

Each chunk is an H.264 elementary stream (`.h264`) of its frames, encoded with no
B-frames so that decode order is display order and its packets need no reordering;
it starts on an IDR frame, as every new encoder does. The stitch copies every
chunk's packets in order into one MP4 (no re-encoding), numbering frames from 0, and
encodes the whole audio once beside them: no gap, no repeated frame, and no click at
a join, since the audio is never cut. The scene is deterministic, so chunk k's frames
are exactly frames start..stop of the whole render.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

from farm.errors import InvalidInput

# Chunks shorter than this cost more in start-up (models, art, encoder) than they save.
MIN_CHUNK_S = 10.0
DEFAULT_CHUNK_S = 30.0
MAX_CHUNKS = 64  # stitching reads one chunk at a time; this bounds the bookkeeping
CHUNK_SUFFIX = ".h264"


@dataclass(frozen=True)
class FrameRange:
    """Frames start..stop (exclusive) of a scene, seen as a scene of their own (what
    the frame loops in node/render/frames.py need)."""

    scene: object
    start: int
    stop: int

    @property
    def art(self):
        return self.scene.art

    @property
    def fps(self) -> float:
        return self.scene.fps

    @property
    def n_frames(self) -> int:
        return self.stop - self.start

    def frame(self, i: int):
        if not 0 <= i < self.n_frames:
            raise IndexError(f"frame {i} out of range 0..{self.n_frames - 1}")
        # Past the scene's end (audio a frame longer than the timeline): its last frame
        # again, as a one-piece render's encoder pads (node/render/encode.py close()).
        return self.scene.frame(min(self.start + i, self.scene.n_frames - 1))


def plan(n_frames: int, fps: float, chunk_s: float = DEFAULT_CHUNK_S,
         min_chunk_s: float = MIN_CHUNK_S) -> list[range]:
    """Frame ranges of about `chunk_s` seconds covering `n_frames` (one range for a
    short render). InvalidInput "invalid_chunk" for a chunk under `min_chunk_s`
    (farm.config.ChunkSettings lowers it for tests)."""
    if not (math.isfinite(chunk_s) and chunk_s >= min_chunk_s):
        raise InvalidInput(f"chunks must last at least {min_chunk_s:g} s, got {chunk_s!r}",
                           code="invalid_chunk")
    size = max(1, round(chunk_s * fps))
    count = min(MAX_CHUNKS, max(1, math.ceil(n_frames / size)))
    bounds = [round(k * n_frames / count) for k in range(count + 1)]
    return [range(a, b) for a, b in zip(bounds, bounds[1:]) if b > a]


def chunk_options(options: dict[str, str]) -> dict[str, str]:
    """The render's encoder options for a chunk: no B-frames (see the module doc)."""
    return {**options, "bf": "0"}


def render_chunk(scene, frames: range, path: Path, codec: str, options: dict[str, str],
                 compositor=None, progress=None) -> int:
    """Encode `frames` of `scene` to the elementary stream `path`; frames written."""
    from node.render.cpu import CpuCompositor
    from node.render.encode import VideoEncoder
    from node.render.frames import encode_cpu

    if codec != "libx264":
        raise ValueError(f"chunks are H.264 from libx264, not {codec}")
    part = FrameRange(scene, frames.start, frames.stop)
    compositor = compositor or CpuCompositor(scene.art)
    with VideoEncoder(path, scene.art.width, scene.art.height, round(scene.fps), codec=codec,
                      options=chunk_options(options)) as enc:
        stats = encode_cpu(part, enc, compositor, progress)
    return stats.frames


def stitch(chunks: list[Path], audio_path: Path | None, out: Path, width: int, height: int,
           fps: int, audio_rate: int = 48_000) -> int:
    """Join chunk streams (in order) into the MP4 `out`, with `audio_path` encoded as
    AAC beside them, without re-encoding the video. Returns the frames written."""
    import av
    import numpy as np

    from node.render.audio import FileSource
    from node.render.audiotrack import AudioTrack
    from node.render.encode import AUDIO_CODECS, AUDIO_OPTIONS

    tb = Fraction(1, fps)
    source = FileSource(audio_path, audio_rate) if audio_path is not None else None
    frames = 0
    with av.open(str(chunks[0])) as first:
        template = first.streams.video[0]
        with av.open(str(out), "w", container_options={"movflags": "+faststart"}) as container:
            video = container.add_stream_from_template(template)
            video.time_base = tb
            track = None
            if source is not None:
                name, bit_rate = AUDIO_CODECS["mp4"]
                astream = container.add_stream(name, rate=audio_rate, layout="mono")
                astream.time_base = Fraction(1, audio_rate)
                astream.codec_context.bit_rate = bit_rate
                astream.codec_context.options = dict(AUDIO_OPTIONS[name])
                track = AudioTrack(astream, source, audio_rate)
            try:
                for path in chunks:
                    with av.open(str(path)) as part:
                        for packet in part.demux(part.streams.video[0]):
                            if packet.size == 0:
                                continue
                            packet.stream = video
                            packet.time_base = tb
                            packet.pts = packet.dts = frames
                            packet.duration = 1
                            container.mux(packet)
                            frames += 1
                            if track is not None:  # keep the file interleaved
                                container.mux(track.ready(frames * audio_rate // fps))
                if track is not None:
                    container.mux(track.drain())
                    # Audio shorter than the video: silence to the end, as a one-piece
                    # render's encoder does (node/render/encode.py close()).
                    video_end = frames * audio_rate // fps
                    if video_end > track.samples:
                        container.mux(track.encode(np.zeros(video_end - track.samples, np.float32),
                                                   track.samples))
                    container.mux(astream.encode(None))
            finally:
                if source is not None:
                    source.close()
    return frames


def audio_frames(audio_path: Path, fps: int, audio_rate: int = 48_000) -> int:
    """Frames a one-piece render of `audio_path` writes (its encoder pads the video to
    the audio's length): the decoded samples at `audio_rate`, in frames."""
    from node.render.audio import FileSource
    from node.render.encode import frame_count

    source = FileSource(audio_path, audio_rate)
    samples = 0
    try:
        while n := len(source.read(audio_rate)):
            samples += n
    finally:
        source.close()
    return frame_count(samples, audio_rate, fps)
