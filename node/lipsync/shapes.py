"""From timed phones and loudness to Rhubarb mouth cues.

Works on 10 ms decoder frames: paint each phone's shape a little ahead of its
sound (lips move before the voice does), close the mouth (X) in pauses, then make
every cue at least one 24 fps video frame long and put a brief in-between shape
where the mouth would jump from closed to open. The numbers are ShapeRules fields,
tuned by bench/tune_shapes.py on labelled clips.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from farm.timeline import REST, MouthCue
from node.lipsync.energy import Levels
from node.lipsync.sphinx import FRAME_RATE, Span

# Frames this close to the speech level (-20 dB) are speech whatever the recogniser says.
_LOUD_REL = 0.1


@dataclass(frozen=True)
class ShapeRules:
    """The timing rules from phones to cues, in 10 ms frames."""

    # One 24 fps video frame (4.2 frames, rounded up): a shorter cue could fall
    # between two video frames and never be seen.
    min_cue_frames: int = math.ceil(FRAME_RATE / 24)
    # Pauses at least this long close the mouth to rest; shorter ones hold it.
    pause_frames: int = 15
    # An L this long shows the tongue (H); a quick one barely moves the lips.
    long_l_frames: int = 16
    # Where a diphthong changes shape, as a fraction of its length.
    diphthong_split: float = 0.5
    # Anticipation: each shape starts this many frames before its sound. Measured:
    # each frame of lead costs about 0.015 of the score on espeak-ng's labels.
    lead_frames: int = 0
    # In-between shapes at jumps from closed to wide open.
    tween: bool = True


RULES = ShapeRules()
MIN_CUE_FRAMES = RULES.min_cue_frames

_PHONE_SHAPES: dict[str, str] = {
    # vowels
    "AA": "D", "AE": "C", "AH": "C", "AO": "E", "EH": "C", "ER": "E", "IH": "B",
    "IY": "B", "UH": "E", "UW": "F",
    # diphthongs: the shape moves (first, second)
    "AW": "DF", "AY": "DB", "EY": "CB", "OW": "EF", "OY": "EB",
    # lips closed, lip on teeth, puckered
    "B": "A", "M": "A", "P": "A", "F": "G", "V": "G", "W": "F",
    # everything else shows slightly open lips with the teeth together
    "CH": "B", "D": "B", "DH": "B", "G": "B", "JH": "B", "K": "B", "N": "B",
    "NG": "B", "R": "B", "S": "B", "SH": "B", "T": "B", "TH": "B", "Y": "B",
    "Z": "B", "ZH": "B",
}
# How open each shape is, for deciding where an in-between shape is needed.
_OPENNESS = {"X": 0, "A": 0, "B": 1, "G": 1, "F": 1, "H": 2, "E": 2, "C": 2, "D": 3}


def phone_shapes(phone: str, n_frames: int, following: str | None,
                 rules: ShapeRules = RULES) -> list[tuple[str, int]]:
    """Shapes (with frame counts) for one phone lasting `n_frames`; "" for silence.

    `following` is the next phone, if any.
    """
    base = phone.rstrip("012")
    if base == "HH":  # an H is breathed through the next vowel's mouth
        shapes = _PHONE_SHAPES.get(following or "", "B")[:1]
    elif base == "L":
        shapes = "H" if n_frames >= rules.long_l_frames else "B"
    else:
        shapes = _PHONE_SHAPES.get(base, "")
    if not shapes:
        return [("", n_frames)]
    if len(shapes) == 2 and n_frames >= 2:
        first = max(1, round(n_frames * rules.diphthong_split))
        return [(shapes[0], first), (shapes[1], n_frames - first)]
    return [(shapes[0], n_frames)]


def build_cues(phones: list[Span], levels: Levels, duration_s: float,
               rules: ShapeRules = RULES) -> list[MouthCue]:
    """Contiguous cues from 0 to `duration_s` for phones timed in frames."""
    n = levels.rms.size
    if n == 0:
        return [MouthCue(0.0, duration_s, REST, 0.0)]
    frames = _paint(phones, n, rules)
    _close_pauses(frames, levels.quiet, levels.rms, levels.ref * _LOUD_REL, rules)
    runs = _runs(frames)
    runs = _enforce_min_length(runs, rules.min_cue_frames)
    if rules.tween:
        runs = _tween(runs, rules.min_cue_frames)
    cues = []
    for i, (shape, a, b) in enumerate(runs):
        end = duration_s if i == len(runs) - 1 else min(b / FRAME_RATE, duration_s)
        start = min(a / FRAME_RATE, end)
        intensity = 0.0 if shape == REST else levels.intensity(a, b)
        cues.append(MouthCue(start, end, shape, intensity))
    return cues


def _paint(phones: list[Span], n: int, rules: ShapeRules) -> list[str]:
    """A shape per frame, `rules.lead_frames` ahead of the sound; "" where no phone or
    a silence phone is. A phone after a pause starts no earlier than the pause does."""
    frames = [""] * n
    labels = [p.label.rstrip("012") for p in phones]
    for i, (label, start, end) in enumerate(phones):
        lead = rules.lead_frames
        start, end = max(0, start - lead), min(n, end - lead)
        if end <= start:
            continue
        following = labels[i + 1] if i + 1 < len(phones) else None
        t = start
        for shape, count in phone_shapes(label, end - start, following, rules):
            frames[t:t + count] = [shape] * count
            t += count
    return frames


def _close_pauses(frames: list[str], quiet: np.ndarray, rms: np.ndarray, loud_level: float,
                  rules: ShapeRules) -> None:
    """Rest (X) in long pauses and at the ends; short pauses hold a near-closed mouth.

    A frame is a pause when no phone covers it or it is quiet. Quiet frames inside
    phones stay (a P or T closure is silent); only long or edge runs become X.
    """
    n = len(frames)
    unlabelled = np.array([f == "" for f in frames], dtype=bool)
    # Loud frames the recogniser called silence are speech it did not follow
    # (it happens on synthetic voices): the mouth stays slightly open.
    loud = rms[:n] >= loud_level
    for t in np.flatnonzero(unlabelled & loud):
        frames[t] = "B"
    pause = (unlabelled & ~loud) | quiet[:n]
    i = 0
    while i < n:
        if not pause[i]:
            i += 1
            continue
        j = i
        while j < n and pause[j]:
            j += 1
        if i == 0 or j == n or j - i >= rules.pause_frames:
            frames[i:j] = [REST] * (j - i)
        else:
            before = frames[i - 1]
            hold = "A" if before == "A" else "B"
            frames[i:j] = [f or hold for f in frames[i:j]]
        i = j


def _runs(frames: list[str]) -> list[list]:
    """[shape, start, end) runs of equal frames."""
    runs: list[list] = []
    for t, shape in enumerate(frames):
        if runs and runs[-1][0] == shape:
            runs[-1][2] = t + 1
        else:
            runs.append([shape, t, t + 1])
    return runs


def _merge_equal(runs: list[list]) -> list[list]:
    out: list[list] = []
    for run in runs:
        if out and out[-1][0] == run[0]:
            out[-1][2] = run[2]
        else:
            out.append(run)
    return out


def _enforce_min_length(runs: list[list], min_frames: int) -> list[list]:
    """No cue shorter than `min_frames`: short closures (A) borrow time from a
    neighbour, since a missed P/B/M is the most visible lip-sync error; other short
    cues are absorbed by a neighbour."""
    runs = [list(r) for r in runs]
    while len(runs) > 1:
        short = [i for i, r in enumerate(runs) if r[2] - r[1] < min_frames]
        if not short:
            break
        i = min(short, key=lambda k: runs[k][2] - runs[k][1])
        shape, a, b = runs[i]
        prev = runs[i - 1] if i > 0 else None
        nxt = runs[i + 1] if i + 1 < len(runs) else None
        if shape == "A":
            need = min_frames - (b - a)
            donors = [r for r in (prev, nxt) if r is not None and r[2] - r[1] - need >= min_frames]
            if donors:
                donor = max(donors, key=lambda r: r[2] - r[1])
                if donor is prev:
                    prev[2] -= need
                    runs[i][1] -= need
                else:
                    nxt[1] += need
                    runs[i][2] += need
                continue
            # No neighbour can spare the time: the closure swallows the shorter one.
            victim = min((r for r in (prev, nxt) if r is not None), key=lambda r: r[2] - r[1])
            runs[i][1], runs[i][2] = min(a, victim[1]), max(b, victim[2])
            runs.remove(victim)
        else:
            # Prefer a moving-mouth neighbour over rest, then the longer one.
            options = [r for r in (prev, nxt) if r is not None]
            target = max(options, key=lambda r: (r[0] != REST, r[2] - r[1]))
            target[1], target[2] = min(a, target[1]), max(b, target[2])
            del runs[i]
        runs = _merge_equal(runs)
    return runs


def _tween_shape(a: str, b: str) -> str | None:
    """The in-between shape for a jump from closed (X, A) to open, or back."""
    closed, other = (a, b) if _OPENNESS[a] == 0 else (b, a)
    if _OPENNESS[closed] != 0:
        return None
    if other == "D":
        return "C"
    if other in ("C", "E", "H"):
        return "B"
    return None


def _tween(runs: list[list], min_frames: int) -> list[list]:
    """Insert a one-video-frame in-between shape at big jumps, taken from the
    longer side when it can spare the time."""
    out: list[list] = [list(runs[0])] if runs else []
    for nxt in runs[1:]:
        nxt = list(nxt)
        cur = out[-1]
        mid = _tween_shape(cur[0], nxt[0])
        if mid is not None:
            if cur[2] - cur[1] >= nxt[2] - nxt[1] and cur[2] - cur[1] >= 2 * min_frames:
                cur[2] -= min_frames
                out.append([mid, cur[2], cur[2] + min_frames])
            elif nxt[2] - nxt[1] >= 2 * min_frames:
                out.append([mid, nxt[1], nxt[1] + min_frames])
                nxt[1] += min_frames
        out.append(nxt)
    return out
