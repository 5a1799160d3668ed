"""Motion that follows the speech, and the idle gaze: when, and how far, in whole pixels.

Emphasis: the loudest words (each word's peak mouth-cue intensity), at most a share
of them, louder than the typical word and spaced apart, get a brow raise and a small
nod. Saccades: every second or three the eyes glance somewhere nearby, from a seeded
RNG. Both are decided once per render from the timeline and the character, so the
same inputs give the same frames, and both are rounded to whole pixels, so the
compositors stay on their exact path and still frames stay equal.
"""

from __future__ import annotations

import bisect
import math
import random
import statistics
from collections.abc import Sequence
from dataclasses import dataclass

from assets.loader import Gestures
from farm.timeline import MouthCue, WordTiming

# The brows rise over BROW_RISE_S before the stressed word starts, hold for
# BROW_HOLD_S and settle over BROW_FALL_S: about half a second up, as people do.
BROW_RISE_S = 0.12
BROW_HOLD_S = 0.35
BROW_FALL_S = 0.3
NOD_LEAD_S = 0.05  # the head starts down just before the word
# Where the gaze goes: (x, y) in units of the saccade amplitude, and how often back
# to the centre. Mostly sideways, as a speaker glances at the audience.
GAZE_TARGETS = ((-1.0, 0.0), (1.0, 0.0), (-0.5, -1.0), (0.5, -1.0), (-1.0, 1.0), (1.0, 1.0),
                (0.5, 0.0), (-0.5, 0.0))
GAZE_CENTRE_CHANCE = 0.35


def emphasis_times(cues: Sequence[MouthCue], words: Sequence[WordTiming],
                   gestures: Gestures) -> tuple[float, ...]:
    """Start times (seconds, ascending) of the words to emphasise.

    A word's loudness is the peak intensity of the mouth cues it overlaps. Candidates
    are the top `emphasis_share` of words by loudness (ties included) that are louder
    than the median word: flat speech gets no emphasis. The loudest go first; a word
    within `emphasis_gap_s` of one already chosen is skipped (earlier wins a tie).
    """
    starts = [c.start for c in cues]
    peaks = []
    for w in words:
        i = max(0, bisect.bisect_right(starts, w.start) - 1)
        peak = 0.0
        while i < len(cues) and cues[i].start < w.end:
            if cues[i].end > w.start:
                peak = max(peak, cues[i].intensity)
            i += 1
        peaks.append(peak)
    if not peaks:
        return ()
    ranked = sorted(peaks, reverse=True)
    cutoff = ranked[max(1, math.floor(gestures.emphasis_share * len(peaks))) - 1]
    median = statistics.median(peaks)
    candidates = sorted(((-p, w.start) for w, p in zip(words, peaks)
                         if p >= cutoff and p > median))
    chosen: list[float] = []
    for _, start in candidates:
        if all(abs(start - t) >= gestures.emphasis_gap_s for t in chosen):
            chosen.append(start)
    return tuple(sorted(chosen))


def brow_envelope(t: float, emphasis: Sequence[float]) -> float:
    """How far up the brows are at time `t`, 0..1 (eased), from the nearest emphasis."""
    k = bisect.bisect_right(emphasis, t + BROW_RISE_S) - 1
    if k < 0:
        return 0.0
    u = t - emphasis[k]  # seconds since the word started (negative while rising)
    if u < -BROW_RISE_S:
        return 0.0
    if u < 0:
        return _ease(1 + u / BROW_RISE_S)
    if u < BROW_HOLD_S:
        return 1.0
    return _ease(max(0.0, 1 - (u - BROW_HOLD_S) / BROW_FALL_S))


def nod_envelope(t: float, emphasis: Sequence[float], nod_s: float) -> float:
    """How far down the head is at time `t`, 0..1: a half sine over `nod_s` seconds."""
    k = bisect.bisect_right(emphasis, t + NOD_LEAD_S) - 1
    if k < 0:
        return 0.0
    u = (t - emphasis[k] + NOD_LEAD_S) / nod_s
    return math.sin(math.pi * u) if 0 <= u < 1 else 0.0


def _ease(u: float) -> float:
    return u * u * (3 - 2 * u)  # smoothstep: no jolt at either end


@dataclass(frozen=True)
class Saccades:
    """Where the eyes look, frame by frame: a step function of whole-pixel offsets."""

    starts: tuple[int, ...]  # first frame of each gaze, ascending; starts[0] == 0
    offsets: tuple[tuple[int, int], ...]  # (dx, dy) pixels for each gaze

    def at(self, i: int) -> tuple[int, int]:
        return self.offsets[bisect.bisect_right(self.starts, i) - 1]


def saccades(gestures: Gestures, seed: int, char_height: int, duration_s: float,
             fps: float) -> Saccades:
    """The gaze schedule: a glance every `saccade_interval_s`, seeded by `seed`.

    Times are drawn in seconds (every frame rate glances at the same moments) from
    an RNG of its own, so the blink schedule does not change with it.
    """
    rng = random.Random(f"saccades:{seed}")
    ax = gestures.saccade_amplitude[0] * char_height
    ay = gestures.saccade_amplitude[1] * char_height
    starts, offsets = [0], [(0, 0)]
    t = rng.uniform(*gestures.saccade_interval_s)
    while t < duration_s:
        if rng.random() < GAZE_CENTRE_CHANCE or offsets[-1] != (0, 0) and rng.random() < 0.5:
            target = (0, 0)
        else:
            gx, gy = rng.choice(GAZE_TARGETS)
            target = (round(gx * ax), round(gy * ay))
        frame = round(t * fps)
        if target != offsets[-1] and frame > starts[-1]:
            starts.append(frame)
            offsets.append(target)
        t += rng.uniform(*gestures.saccade_interval_s)
    return Saccades(tuple(starts), tuple(offsets))
