"""Planar YUV 4:2:0 frames (and mono audio) to an MP4 file with PyAV.

The encoder never sees RGB: frames arrive as the GL pass's Y, U and V planes.
Audio is encoded as AAC in step with the video, so the muxer interleaves the two
and memory stays flat however long the render is. Video time base is 1/fps (pts =
frame index), audio time base is 1/audio_rate (pts = sample index).
"""

from __future__ import annotations

import functools
import logging
from fractions import Fraction
from pathlib import Path
from types import TracebackType

import av
import numpy as np
from av.video.reformatter import ColorPrimaries, ColorRange, Colorspace, ColorTrc

log = logging.getLogger(__name__)

AUDIO_BIT_RATE = 96_000  # mono AAC; speech needs no more
# x264 preset names to NVENC's p1 (fastest) .. p7 (slowest).
NVENC_PRESETS = {
    "ultrafast": "p1", "superfast": "p1", "veryfast": "p2", "faster": "p3",
    "fast": "p3", "medium": "p4", "slow": "p5", "slower": "p6", "veryslow": "p7",
}


def frame_count(samples: int, rate: int, fps: int) -> int:
    """Frames needed to cover `samples` of audio at `rate`: the video's length."""
    return -(-samples * fps // rate)


@functools.cache
def pick_video_codec() -> str:
    """"h264_nvenc" if PyAV can open it on this machine, else "libx264" (cached).

    Probes by opening a tiny encoder: NVENC is listed by FFmpeg builds whether or
    not a GPU with NVENC is present (H100, H200 and A100 have none).
    """
    try:
        ctx = av.CodecContext.create("h264_nvenc", "w")
        ctx.width, ctx.height, ctx.pix_fmt = 256, 256, "yuv420p"
        ctx.time_base, ctx.framerate = Fraction(1, 30), Fraction(30)
        ctx.open()
    except Exception as exc:  # FFmpeg and driver errors alike mean "not here"
        log.info("h264_nvenc unavailable (%s); using libx264", exc)
        return "libx264"
    log.info("h264_nvenc available")
    return "h264_nvenc"


def _video_options(codec: str, preset: str, crf: int) -> dict[str, str]:
    if codec in ("libx264", "libx265"):
        return {"preset": preset, "crf": str(crf)}
    if codec.endswith("_nvenc"):
        return {"preset": NVENC_PRESETS.get(preset, preset), "rc": "vbr", "cq": str(crf)}
    return {}


class VideoEncoder:
    """Writes yuv420p frames (and optional mono float32 audio as AAC) to `path`.

    Use as a context manager, or call `close()`: it pads the shorter stream so both
    end together (video repeats its last frame; audio gets silence), flushes the
    encoders and finishes the file. Write `frame_count(len(audio), audio_rate, fps)`
    frames to need no padding.
    """

    def __init__(
        self,
        path: str | Path,
        width: int,
        height: int,
        fps: int,
        *,
        audio: np.ndarray | None = None,
        audio_rate: int = 48000,
        codec: str = "libx264",
        preset: str = "veryfast",
        crf: int = 20,
    ) -> None:
        if width <= 0 or height <= 0 or width % 2 or height % 2:
            raise ValueError(f"Width and height must be positive and even. Got {width}x{height}")
        if int(fps) != fps or fps <= 0:
            raise ValueError(f"fps must be a positive integer. Got {fps!r}")
        if audio is not None:
            audio = np.asarray(audio)
            if audio.ndim != 1 or audio.dtype != np.float32:
                raise ValueError(
                    f"Audio must be mono float32 samples, shape (n,). Got {audio.shape} {audio.dtype}"
                )
        self.width, self.height, self.fps = width, height, int(fps)
        self.frames_written = 0
        self._audio, self._audio_rate, self._audio_pos = audio, audio_rate, 0
        self._closed = False
        self._video_tb, self._audio_tb = Fraction(1, self.fps), Fraction(1, audio_rate)

        # faststart moves the index to the front: downloads play while they load.
        self._container = av.open(str(path), "w", container_options={"movflags": "+faststart"})
        try:
            self._video = self._add_video(codec, preset, crf)
            self._audio_stream = self._add_audio() if audio is not None else None
        except Exception:
            self._container.close()
            raise
        # One frame, reused: fresh memory is slow to touch on the VMs (DESIGN.md).
        self._frame = av.VideoFrame(width, height, "yuv420p")

    def _add_video(self, codec: str, preset: str, crf: int) -> av.VideoStream:
        stream = self._container.add_stream(codec, rate=self.fps)
        stream.width, stream.height, stream.pix_fmt = self.width, self.height, "yuv420p"
        stream.time_base = stream.codec_context.time_base = self._video_tb
        cc = stream.codec_context
        # The planes are BT.709 limited range (shaders/yuv420.glsl): say so in the stream.
        cc.color_range = ColorRange.MPEG
        cc.colorspace = Colorspace.ITU709
        cc.color_primaries = ColorPrimaries.BT709
        cc.color_trc = ColorTrc.BT709
        cc.options = _video_options(codec, preset, crf)
        if codec == "libx264":
            # Frame threads: 1.3 to 1.45x faster than PyAV's default slices (DESIGN.md).
            cc.thread_type = "FRAME"
        return stream

    def _add_audio(self) -> av.AudioStream:
        stream = self._container.add_stream("aac", rate=self._audio_rate, layout="mono")
        stream.time_base = self._audio_tb
        stream.codec_context.bit_rate = AUDIO_BIT_RATE
        return stream

    def write_yuv(self, y: np.ndarray, u: np.ndarray, v: np.ndarray) -> None:
        """Encode one frame from its uint8 planes: Y (H, W), U and V (H/2, W/2)."""
        if self._closed:
            raise RuntimeError("VideoEncoder is closed")
        h, w = self.height, self.width
        shapes = (y.shape, u.shape, v.shape)
        if shapes != ((h, w), (h // 2, w // 2), (h // 2, w // 2)) or any(
            p.dtype != np.uint8 for p in (y, u, v)
        ):
            raise ValueError(
                f"Expected uint8 planes Y {(h, w)}, U and V {(h // 2, w // 2)}. "
                f"Got {', '.join(f'{p.shape} {p.dtype}' for p in (y, u, v))}"
            )
        frame = self._frame
        # A no-op unless the encoder still holds the last frame; then it gets its own.
        frame.make_writable()
        for plane, src in zip(frame.planes, (y, u, v)):
            # Plane rows may be padded past the width: copy into a view of the rows.
            rows = np.frombuffer(plane, np.uint8).reshape(plane.height, plane.line_size)
            rows[:, : plane.width] = src
        self._encode_frame()

    def _encode_frame(self) -> None:
        frame = self._frame
        frame.pts = self.frames_written
        # Not the stream's time_base: the muxer rewrites that when it writes the header.
        frame.time_base = self._video_tb
        self._container.mux(self._video.encode(frame))
        self.frames_written += 1
        # Audio up to the end of this frame, so the muxer can interleave as it goes.
        if self._audio is not None:
            self._write_audio(self.frames_written * self._audio_rate // self.fps)

    def _write_audio(self, until: int) -> None:
        """Encode audio samples [written, until), padding with silence past the end."""
        start = self._audio_pos
        if until <= start:
            return
        chunk = self._audio[start:until]
        if len(chunk) < until - start:
            chunk = np.concatenate([chunk, np.zeros(until - start - len(chunk), np.float32)])
        frame = av.AudioFrame.from_ndarray(chunk[None, :], format="fltp", layout="mono")
        frame.sample_rate = self._audio_rate
        frame.pts = start
        frame.time_base = self._audio_tb
        self._container.mux(self._audio_stream.encode(frame))
        self._audio_pos = until

    def close(self) -> None:
        """Pad the shorter stream, flush both encoders and finish the file."""
        self._finish(pad=True)

    def _finish(self, pad: bool) -> None:
        if self._closed:
            return
        self._closed = True
        try:
            if self._audio is not None and pad:
                needed = frame_count(len(self._audio), self._audio_rate, self.fps)
                if 0 < self.frames_written < needed:
                    log.warning(
                        "video is %d frames short of its audio; repeating the last frame",
                        needed - self.frames_written,
                    )
                    while self.frames_written < needed:
                        self._encode_frame()
                video_end = self.frames_written * self._audio_rate // self.fps
                self._write_audio(max(len(self._audio), video_end))
            self._container.mux(self._video.encode(None))
            if self._audio_stream is not None:
                self._container.mux(self._audio_stream.encode(None))
        finally:
            self._container.close()

    def __enter__(self) -> VideoEncoder:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        # On an error, finish what was written without padding it out.
        self._finish(pad=exc_type is None)

