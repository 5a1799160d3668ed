"""Planar YUV 4:2:0 frames (and mono audio) to MP4 (H.264 + AAC) or WebM (VP9/AV1 + Opus).

The encoder never sees RGB on the node: frames arrive as Y, U and V planes,
copied in with `write_yuv` or drawn straight into one of the encoder's reused
frames (`frame_planes` then `write_frame`, what node/render/frames.py does: only
a frame's damage is written). Audio is read from its source as the video
advances and encoded on its own thread (node/render/audiotrack.py); this thread
muxes its packets in step with the frames, so the file is interleaved and
memory stays flat however long the render is. Video time base is 1/fps (pts =
frame index), audio time base is 1/audio_rate (pts = sample index). GIF has its
own encoder (node/render/gif.py).
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

from farm import presets
from node.render.audio import ArraySource, AudioSource
from node.render.audiotrack import AudioTrack

log = logging.getLogger(__name__)

# Mono speech needs no more; Opus is transparent for speech at lower rates than AAC.
AUDIO_CODECS = {"mp4": ("aac", 96_000), "webm": ("libopus", 64_000)}
# FFmpeg's AAC "fast" coder: 0.16 s of CPU for 30 s of speech against 0.51 s for the
# default "twoloop" search, a third of a preview render's encoding time.
AUDIO_OPTIONS = {"aac": {"aac_coder": "fast"}, "libopus": {}}
# Four: the drawing thread runs ahead of the encoder instead of in lockstep with it
# (each hand-over in lockstep waited on a thread wake-up).
FRAME_SLOTS = 4


def frame_count(samples: int, rate: int, fps: int) -> int:
    """Frames needed to cover `samples` of audio at `rate`: the video's length."""
    return -(-samples * fps // rate)


def pick_video_codec() -> str:
    """"h264_nvenc" where this machine can open it, else "libx264" (probed once)."""
    return "h264_nvenc" if codec_available("h264_nvenc") else "libx264"


@functools.cache
def software_encoders() -> frozenset[str]:
    """The formats' software video encoders this node can open (what jobs record as
    `needs_codec`; the lease script gives a node only jobs it can encode)."""
    names = {presets.encoder_preset(fmt, "standard").codec for fmt in presets.FORMATS}
    have = set()
    for name in names:
        if name == "gif":  # palette frames, not yuv420p: being built in is enough
            try:
                av.codec.Codec(name, "w")
                have.add(name)
            except Exception:
                log.info("gif encoder unavailable")
        elif codec_available(name):
            have.add(name)
    return frozenset(have)


@functools.cache
def codec_available(name: str) -> bool:
    """Whether PyAV can open encoder `name` here (cached per process).

    Opens a tiny encoder: FFmpeg builds list NVENC whether or not the GPU has it
    (H100, H200 and A100 have none), so being listed proves nothing.
    """
    try:
        ctx = av.CodecContext.create(name, "w")
        ctx.width, ctx.height, ctx.pix_fmt = 256, 256, "yuv420p"
        ctx.time_base, ctx.framerate = Fraction(1, 30), Fraction(30)
        ctx.open()
    except Exception as exc:  # FFmpeg and driver errors alike mean "not here"
        log.info("%s unavailable (%s)", name, exc)
        return False
    log.info("%s available", name)
    return True


def choose_codec(preset: presets.EncoderPreset) -> tuple[str, dict[str, str]]:
    """The preset's NVENC encoder and options where the device has it, else its software one."""
    if preset.hardware and codec_available(preset.hardware):
        return preset.hardware, dict(preset.hardware_options)
    return preset.codec, dict(preset.options)


def _x264_options(preset: str, crf: int) -> dict[str, str]:
    return {"preset": preset, "crf": str(crf)}


class VideoEncoder:
    """Writes yuv420p frames (and optional mono float32 audio) to an MP4 or WebM `path`.

    `audio` is an array, or a source read as the video advances (node.render.audio:
    memory stays flat). The container follows the suffix: `.webm` with Opus audio,
    otherwise MP4 with AAC. `options` are the video encoder's own (see farm.presets.encoder_preset); without
    them, x264's `preset` and `crf`. Use as a context manager, or call `close()`: it
    pads the shorter stream so both end together (video repeats its last frame;
    audio gets silence), flushes the encoders and finishes the file. Write
    `frame_count(len(audio), audio_rate, fps)` frames to need no padding.
    """

    def __init__(
        self,
        path: str | Path,
        width: int,
        height: int,
        fps: int,
        *,
        audio: np.ndarray | AudioSource | None = None,
        audio_rate: int = 48000,
        codec: str = "libx264",
        options: dict[str, str] | None = None,
        preset: str = "veryfast",
        crf: int = 20,
    ) -> None:
        if width <= 0 or height <= 0 or width % 2 or height % 2:
            raise ValueError(f"Width and height must be positive and even. Got {width}x{height}")
        if int(fps) != fps or fps <= 0:
            raise ValueError(f"fps must be a positive integer. Got {fps!r}")
        if audio is not None and not hasattr(audio, "read"):
            audio = ArraySource(audio)  # validates: mono float32
        self.width, self.height, self.fps = width, height, int(fps)
        self.codec = codec
        self.frames_written = 0
        self._audio, self._audio_rate = audio, audio_rate
        self._track: AudioTrack | None = None
        self._closed = False
        self._video_tb, self._audio_tb = Fraction(1, self.fps), Fraction(1, audio_rate)
        suffix = Path(path).suffix.lower()
        # .h264: a bare H.264 stream, a chunk of a longer render (node/chunks.py)
        self._kind = {".webm": "webm", ".h264": "h264"}.get(suffix, "mp4")
        if self._kind == "h264" and audio is not None:
            raise ValueError("a bare .h264 stream carries no audio")

        # faststart moves the MP4 index to the front: downloads play while they load.
        opts = {"movflags": "+faststart"} if self._kind == "mp4" else {}
        self._container = av.open(str(path), "w", container_options=opts)
        try:
            self._video = self._add_video(codec, options or _x264_options(preset, crf))
            self._audio_stream = self._add_audio() if audio is not None else None
        except Exception:
            self._container.close()
            raise
        # Frames reused: fresh memory is slow to touch on the VMs (DESIGN.md). Several,
        # so that some can be drawn while another is encoded (node/render/frames.py).
        self._frames = [av.VideoFrame(width, height, "yuv420p") for _ in range(FRAME_SLOTS)]
        self._frame = self._frames[0]
        if audio is not None:
            self._track = AudioTrack(self._audio_stream, audio, audio_rate)

    def _add_video(self, codec: str, options: dict[str, str]) -> av.VideoStream:
        stream = self._container.add_stream(codec, rate=self.fps)
        stream.width, stream.height, stream.pix_fmt = self.width, self.height, "yuv420p"
        stream.time_base = stream.codec_context.time_base = self._video_tb
        cc = stream.codec_context
        # The planes are BT.709 limited range (shaders/yuv420.glsl): say so in the stream.
        cc.color_range = ColorRange.MPEG
        cc.colorspace = Colorspace.ITU709
        cc.color_primaries = ColorPrimaries.BT709
        cc.color_trc = ColorTrc.BT709
        cc.options = dict(options)
        if codec == "libx264":
            # Frame threads: 1.3 to 1.45x faster than PyAV's default slices (DESIGN.md).
            cc.thread_type = "FRAME"
        return stream

    def _add_audio(self) -> av.AudioStream:
        name, bit_rate = AUDIO_CODECS[self._kind]
        stream = self._container.add_stream(name, rate=self._audio_rate, layout="mono")
        stream.time_base = self._audio_tb
        stream.codec_context.bit_rate = bit_rate
        stream.codec_context.options = dict(AUDIO_OPTIONS[name])
        return stream

    @property
    def slots(self) -> int:
        """How many frames `frame_planes` and `write_frame` take turns with."""
        return len(self._frames)

    def frame_planes(self, slot: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Writable Y (H, W), U and V (H/2, W/2) views of frame `slot` (0 .. slots - 1).

        They hold the pixels that slot was last encoded with (undefined before that),
        so a caller may write only what changed. Fetch them again before every
        frame: the encoder may have kept the last buffer, and then the frame gets a
        copy. Another thread may draw into some slots while `write_frame` encodes
        another.
        """
        frame = self._frames[slot]
        frame.make_writable()  # a no-op unless the encoder still holds the buffer
        return tuple(
            np.frombuffer(plane, np.uint8).reshape(plane.height, plane.line_size)[:, : plane.width]
            for plane in frame.planes
        )

    def write_frame(self, slot: int = 0) -> None:
        """Encode frame `slot` as it was left (the same pixels again if untouched)."""
        if self._closed:
            raise RuntimeError("VideoEncoder is closed")
        self._encode_frame(self._frames[slot])

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
        for dst, src in zip(self.frame_planes(), (y, u, v)):
            dst[...] = src  # plane rows may be padded past the width: a view of the rows
        self._encode_frame()

    def write_rgb(self, rgb: np.ndarray) -> None:
        """Encode one (H, W, 3) uint8 RGB frame, converted by swscale (BT.709, limited).

        The straightforward path, kept for comparison (bench/render.py): converting
        costs as much as encoding (DESIGN.md); the node hands over YUV planes.
        """
        if self._closed:
            raise RuntimeError("VideoEncoder is closed")
        if rgb.shape != (self.height, self.width, 3) or rgb.dtype != np.uint8:
            raise ValueError(f"Expected ({self.height}, {self.width}, 3) uint8. Got {rgb.shape} {rgb.dtype}")
        frame = av.VideoFrame.from_ndarray(rgb, format="rgb24").reformat(
            format="yuv420p", dst_colorspace=Colorspace.ITU709, dst_color_range=ColorRange.MPEG)
        self._encode_frame(frame)

    def _encode_frame(self, frame: av.VideoFrame | None = None) -> None:
        frame = self._frame if frame is None else frame
        self._last_frame = frame  # what padding at close repeats
        frame.pts = self.frames_written
        # Not the stream's time_base: the muxer rewrites that when it writes the header.
        frame.time_base = self._video_tb
        self._container.mux(self._video.encode(frame))
        self.frames_written += 1
        # The audio encoded up to the end of this frame, so the file stays interleaved.
        if self._track is not None:
            self._mux(self._track.ready(self.frames_written * self._audio_rate // self.fps))

    def _mux(self, packets: list[av.Packet]) -> None:
        if packets:
            self._container.mux(packets)

    def close(self) -> None:
        """Pad the shorter stream, flush both encoders and finish the file."""
        self._finish(pad=True)

    def _finish(self, pad: bool) -> None:
        if self._closed:
            return
        self._closed = True
        track = self._track
        try:
            if track is not None and not pad:
                track.stop()
            elif track is not None:
                self._mux(track.drain())  # the rest of the audio
                needed = frame_count(track.samples, self._audio_rate, self.fps)
                if 0 < self.frames_written < needed:
                    log.warning(
                        "video is %d frames short of its audio; repeating the last frame",
                        needed - self.frames_written,
                    )
                    while self.frames_written < needed:
                        self._encode_frame(self._last_frame)
                video_end = self.frames_written * self._audio_rate // self.fps
                if video_end > track.samples:  # audio shorter than the video: silence
                    self._mux(track.encode(np.zeros(video_end - track.samples, np.float32),
                                           track.samples))
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

