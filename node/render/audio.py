"""Audio for the encoder, read as it is needed: a render's memory must not grow with
its length (a 10-minute narration is 115 MB as 48 kHz float32; one frame's worth
is 6 KB).

Both sources give mono float32 samples through `read(n)`: exactly n while there
are that many left, fewer at the end, then empty arrays.
"""

from __future__ import annotations

from pathlib import Path
from typing import Protocol

import numpy as np


class AudioSource(Protocol):
    def read(self, n: int) -> np.ndarray:
        """Up to `n` mono float32 samples; fewer only at the end."""


class ArraySource:
    """Samples already in memory (tests, callers that have them)."""

    def __init__(self, samples: np.ndarray) -> None:
        samples = np.asarray(samples)
        if samples.ndim != 1 or samples.dtype != np.float32:
            raise ValueError(
                f"Audio must be mono float32 samples, shape (n,). Got {samples.shape} {samples.dtype}"
            )
        self._samples = samples
        self._pos = 0

    def read(self, n: int) -> np.ndarray:
        out = self._samples[self._pos : self._pos + n]
        self._pos += len(out)
        return out

    def close(self) -> None:
        pass


class FileSource:
    """An audio file's first stream, decoded and resampled to mono float32 on demand.

    Open it after the file has been validated (farm.audio.decode_audio or
    probe_duration): FFmpeg errors here are not translated for users.
    """

    def __init__(self, path: str | Path, rate: int) -> None:
        import av

        self._container = av.open(str(path))
        try:
            stream = self._container.streams.audio[0]
        except IndexError:
            self._container.close()
            raise ValueError(f"{path} has no audio stream") from None
        self._frames = self._container.decode(stream)
        self._resampler = av.AudioResampler(format="flt", layout="mono", rate=rate)
        self._ahead = rate  # decode a second at a time: few concatenations, little memory
        self._buffer = np.zeros(0, np.float32)
        self._pos = 0
        self._done = False

    def _pull(self, need: int) -> None:
        """Decode until `need` samples are buffered past the read position, or the end."""
        chunks = [self._buffer[self._pos :]]
        have = len(chunks[0])
        while have < need and not self._done:
            frame = next(self._frames, None)
            if frame is None:
                outs = self._resampler.resample(None)
                self._done = True
            else:
                frame.pts = None  # resample by sample count, as farm.audio does
                outs = self._resampler.resample(frame)
            for out in outs:
                chunks.append(out.to_ndarray().reshape(-1))
                have += len(chunks[-1])
        self._buffer = np.clip(np.concatenate(chunks), -1.0, 1.0).astype(np.float32, copy=False)
        self._pos = 0

    def read(self, n: int) -> np.ndarray:
        if len(self._buffer) - self._pos < n and not self._done:
            self._pull(n + self._ahead)
        out = self._buffer[self._pos : self._pos + n]
        self._pos += len(out)
        return out

    def close(self) -> None:
        self._container.close()
