"""Loudness per decoder frame (10 ms): where the speech is, and how loud.

The aligner runs without silence fillers, so it stretches words over pauses; the
energy says where the pauses really are.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from node.lipsync.sphinx import SAMPLES_PER_FRAME

# Below this (-60 dBFS) nothing is speech, however quiet the recording.
SILENCE_FLOOR = 1e-3
# A frame is quiet below the larger of: 3x the noise floor (its 10th percentile)
# and -30 dB under the speech level; never above -16 dB under it.
_NOISE_FACTOR = 3.0
_REL_QUIET = 10 ** (-30 / 20)
_REL_QUIET_MAX = 10 ** (-16 / 20)
_MIN_DYNAMIC_RANGE = 10 ** (6 / 20)
_SMOOTH_FRAMES = 5  # 50 ms: one noisy frame must not split a pause


@dataclass(frozen=True)
class Levels:
    """Per-frame RMS and what counts as loud for this recording."""

    rms: np.ndarray  # float32, one per 10 ms frame
    ref: float  # the speech level: the 95th percentile of frame RMS
    threshold: float  # quiet below this
    quiet: np.ndarray  # bool per frame, from the smoothed RMS

    def speech_bounds(self, margin: int = 10) -> tuple[int, int]:
        """First and last+1 loud frame, widened by `margin` frames."""
        loud = np.flatnonzero(~self.quiet)
        if loud.size == 0:
            return 0, 0
        return max(0, int(loud[0]) - margin), min(self.quiet.size, int(loud[-1]) + 1 + margin)

    def intensity(self, start: int, end: int) -> float:
        """Loudness of frames [start, end) mapped to [0, 1]: 0 at -30 dB under the
        speech level, 1 at it (loudness is heard on a log scale)."""
        if end <= start:
            return 0.0
        level = float(np.sqrt(np.mean(np.square(self.rms[start:end], dtype=np.float64))))
        if level <= 0:
            return 0.0
        db = 20 * math.log10(level / self.ref)
        return round(min(1.0, max(0.0, 1.0 + db / 30.0)), 2)


# Frames squared at a time: float64 squares of a whole hour would need 460 MB.
_BLOCK_FRAMES = 6000


def frame_rms(samples: np.ndarray) -> np.ndarray:
    """RMS of each 10 ms frame of 16 kHz samples (the last frame zero-padded)."""
    n = math.ceil(samples.size / SAMPLES_PER_FRAME)
    out = np.empty(n, np.float32)
    whole = samples.size // SAMPLES_PER_FRAME
    for a in range(0, whole, _BLOCK_FRAMES):
        b = min(whole, a + _BLOCK_FRAMES)
        frames = samples[a * SAMPLES_PER_FRAME: b * SAMPLES_PER_FRAME].reshape(b - a, SAMPLES_PER_FRAME)
        out[a:b] = np.sqrt(np.mean(np.square(frames, dtype=np.float64), axis=1))
    if whole < n:  # the last, partial frame
        tail = samples[whole * SAMPLES_PER_FRAME:].astype(np.float64)
        out[whole] = math.sqrt(float(np.sum(tail * tail)) / SAMPLES_PER_FRAME)
    return out


def measure(samples: np.ndarray, n_frames: int | None = None) -> Levels | None:
    """The recording's levels, or None when it holds no sound at all."""
    rms = frame_rms(samples)
    if n_frames is not None:  # align to the timeline's frame count
        rms = np.pad(rms, (0, max(0, n_frames - rms.size)))[:n_frames]
    if rms.size == 0 or float(rms.max()) < SILENCE_FLOOR:
        return None
    ref = max(float(np.percentile(rms, 95)), SILENCE_FLOOR)
    noise = float(np.percentile(rms, 10))
    threshold = min(max(noise * _NOISE_FACTOR, ref * _REL_QUIET, SILENCE_FLOOR / 3), ref * _REL_QUIET_MAX)
    kernel = np.ones(_SMOOTH_FRAMES) / _SMOOTH_FRAMES
    smooth = np.convolve(rms, kernel, mode="same")
    quiet = smooth < threshold
    # Speech comes and goes: a recording that never varies by 6 dB is hum or hiss.
    if quiet.all() or ref < noise * _MIN_DYNAMIC_RANGE:
        return None
    return Levels(rms=rms, ref=ref, threshold=threshold, quiet=quiet)

