"""Audio decoding for the farm: any container and codec FFmpeg reads, to float32 mono.

PyAV and numpy are imported inside the functions: `farm` (the light SDK) imports
without them.
"""

from __future__ import annotations

from typing import IO, TYPE_CHECKING, Any

from farm.errors import InvalidInput

if TYPE_CHECKING:
    import numpy as np

# Encoders pad the last frame (AAC and MP3 priming); do not call that "too long".
_LENGTH_SLACK_S = 0.05
# The output buffer is sized from the declared duration, but a header may lie:
# never reserve more than this up front (it grows if the audio really is longer).
_MAX_PREALLOC_S = 7200.0


def _open_audio(path_or_file: str | IO[bytes] | Any) -> tuple[Any, Any]:
    """Open a container and its first audio stream, or raise unreadable_audio."""
    import av

    try:
        container = av.open(path_or_file, mode="r")
    except FileNotFoundError:
        raise
    except (av.FFmpegError, OSError, ValueError, UnicodeDecodeError) as exc:
        raise InvalidInput(f"the file could not be read as audio ({_reason(exc)})",
                           code="unreadable_audio") from None
    if not container.streams.audio:
        container.close()
        raise InvalidInput("the file has no audio stream", code="unreadable_audio")
    return container, container.streams.audio[0]


def _reason(exc: BaseException) -> str:
    """One line saying what FFmpeg disliked."""
    text = getattr(exc, "strerror", None) or str(exc) or type(exc).__name__
    return " ".join(str(text).split())


def decode_audio(path_or_file: str | IO[bytes] | Any, rate: int = 16000, *,
                 max_duration_s: float | None = None) -> np.ndarray:
    """Decode the first audio stream to float32 mono samples in [-1, 1] at `rate` Hz.

    Frames are decoded and resampled one at a time into one buffer sized from the
    container's declared duration, so memory holds the output and one frame. Raises InvalidInput with code "unreadable_audio" for a corrupt file,
    a file with no audio stream or no samples, and "audio_too_long" as soon as the
    audio runs past `max_duration_s`.
    """
    import av
    import numpy as np

    if max_duration_s is not None:
        limit = int((max_duration_s + _LENGTH_SLACK_S) * rate)
    else:
        limit = None
    container, stream = _open_audio(path_or_file)
    try:
        declared = _declared_duration(container, stream)
        if limit is not None and declared is not None and (declared - 1.0) * rate > limit:
            raise _too_long(max_duration_s, declared)
        out = _Samples(int((min(declared or 60.0, _MAX_PREALLOC_S) + 1.0) * rate))
        resampler = av.AudioResampler(format="flt", layout="mono", rate=rate)
        try:
            for frame in container.decode(stream):
                frame.pts = None  # resample by sample count: broken timestamps must not matter
                for resampled in resampler.resample(frame):
                    out.append(resampled.to_ndarray().reshape(-1))
                if limit is not None and out.size > limit:
                    raise _too_long(max_duration_s, out.size / rate)
            for resampled in resampler.resample(None):
                out.append(resampled.to_ndarray().reshape(-1))
        except (av.FFmpegError, ValueError) as exc:
            # ValueError: the resampler refuses a stream whose format changes midway.
            raise InvalidInput(f"the audio could not be decoded ({_reason(exc)})",
                               code="unreadable_audio") from None
    finally:
        container.close()
    if limit is not None and out.size > limit:
        raise _too_long(max_duration_s, out.size / rate)
    if out.size == 0:
        raise InvalidInput("the file has no audio samples", code="unreadable_audio")
    samples = out.result()
    np.clip(samples, -1.0, 1.0, out=samples)  # float sources may overshoot
    return samples


class _Samples:
    """A float32 buffer sized from the container's declared duration and grown if
    that was wrong: collecting frames and concatenating them would hold the audio
    twice (460 MB for an hour at 16 kHz)."""

    def __init__(self, capacity: int) -> None:
        import numpy as np

        self._buf = np.empty(max(capacity, 1), np.float32)
        self.size = 0

    def append(self, chunk: np.ndarray) -> None:
        import numpy as np

        end = self.size + chunk.size
        if end > self._buf.size:
            grown = np.empty(max(end, self._buf.size * 3 // 2), np.float32)
            grown[: self.size] = self._buf[: self.size]
            self._buf = grown
        self._buf[self.size:end] = chunk
        self.size = end

    def result(self) -> np.ndarray:
        # A declared duration far too long (a broken header) must not pin the memory.
        if self._buf.size - self.size > max(self.size // 8, 160000):
            return self._buf[: self.size].copy()
        return self._buf[: self.size]


def _too_long(max_duration_s: float | None, seconds: float) -> InvalidInput:
    return InvalidInput(
        f"the audio is longer than the {max_duration_s:g} s allowed (at least {seconds:.1f} s)",
        code="audio_too_long")


def _declared_duration(container: Any, stream: Any) -> float | None:
    """What the container says the audio lasts, in seconds, or None."""
    import av

    if stream.duration is not None and stream.time_base is not None:
        return float(stream.duration * stream.time_base)
    if container.duration is not None:
        return container.duration / av.time_base
    return None


def declared_duration(path: str | IO[bytes] | Any) -> float | None:
    """What the container says the audio lasts, in seconds, without decoding it; None
    when it does not say. Raises InvalidInput("unreadable_audio") like `decode_audio`."""
    container, stream = _open_audio(path)
    try:
        return _declared_duration(container, stream)
    finally:
        container.close()


def probe_duration(path: str | IO[bytes] | Any) -> float:
    """The audio's duration in seconds: the container's word, or counted by decoding.

    Raises InvalidInput("unreadable_audio") like `decode_audio`.
    """
    import av

    container, stream = _open_audio(path)
    try:
        declared = _declared_duration(container, stream)
        if declared is not None and declared > 0:
            return declared
        seconds = 0.0
        try:
            for frame in container.decode(stream):
                seconds += frame.samples / frame.sample_rate
        except av.FFmpegError as exc:
            raise InvalidInput(f"the audio could not be decoded ({_reason(exc)})",
                               code="unreadable_audio") from None
        if seconds == 0:
            raise InvalidInput("the file has no audio samples", code="unreadable_audio")
        return seconds
    finally:
        container.close()


def resample(samples: np.ndarray, from_rate: int, to_rate: int) -> np.ndarray:
    """Resample float32 mono samples with FFmpeg's resampler (band-limited)."""
    import av
    import numpy as np

    samples = np.ascontiguousarray(samples, dtype=np.float32).reshape(1, -1)
    if from_rate == to_rate or samples.size == 0:
        return samples.reshape(-1).copy()
    resampler = av.AudioResampler(format="flt", layout="mono", rate=to_rate)
    chunks = []
    step = 1 << 16  # feed bounded frames: FFmpeg copies each one
    for i in range(0, samples.shape[1], step):
        frame = av.AudioFrame.from_ndarray(samples[:, i:i + step], format="flt", layout="mono")
        frame.sample_rate = from_rate
        chunks.extend(f.to_ndarray().reshape(-1) for f in resampler.resample(frame))
    chunks.extend(f.to_ndarray().reshape(-1) for f in resampler.resample(None))
    if not chunks:
        return np.zeros(0, np.float32)
    return np.concatenate(chunks).astype(np.float32, copy=False)


def silent_wav(seconds: float, rate: int = 16000) -> bytes:
    """A mono 16-bit WAV of silence: what tests and benches upload when the sound
    itself does not matter."""
    import io
    import wave

    buf = io.BytesIO()
    with wave.open(buf, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(b"\x00\x00" * int(seconds * rate))
    return buf.getvalue()
