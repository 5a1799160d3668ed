"""The lip-sync timeline: mouth cues and word timings, in Rhubarb Lip Sync's shapes.

All times are in seconds. This module is pure Python (the SDK and the CLI use it);
the engine that produces timelines lives in `node.lipsync`.

Shapes (Rhubarb Lip Sync's):
    A closed (P, B, M)        B slightly open (most consonants)   C open (EH, AE)
    D wide open (AA)          E slightly rounded (AO, ER)         F puckered (UW, OW, W)
    G teeth on lip (F, V)     H tongue raised (long L)            X rest (silence)
"""

from __future__ import annotations

import bisect
import math
from dataclasses import dataclass, field
from typing import Any

from farm.errors import InvalidInput

SHAPES = "ABCDEFGHX"
REST = "X"
# Rhubarb writes times with two decimals; cue boundaries closer than this are equal.
_EPS_S = 0.005


def _check_time(value: Any, what: str) -> float:
    """A finite, non-negative number of seconds (bools are not numbers here)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise InvalidInput(f"{what} must be a number of seconds, got {value!r}")
    value = float(value)
    if not math.isfinite(value) or value < 0:
        raise InvalidInput(f"{what} must be a finite number >= 0, got {value!r}")
    return value


@dataclass(frozen=True)
class MouthCue:
    """One mouth shape held from `start` to `end` (seconds); `intensity` in [0, 1]."""

    start: float
    end: float
    shape: str
    intensity: float = 1.0

    def __post_init__(self) -> None:
        if not isinstance(self.shape, str) or len(self.shape) != 1 or self.shape not in SHAPES:
            raise InvalidInput(f"unknown mouth shape {self.shape!r}; expected one of {SHAPES}")
        if not self.start <= self.end:  # also rejects NaN
            raise InvalidInput(f"mouth cue ends ({self.end}) before it starts ({self.start})")
        if not 0.0 <= self.intensity <= 1.0:
            raise InvalidInput(f"mouth cue intensity must be in [0, 1], got {self.intensity!r}")


@dataclass(frozen=True)
class WordTiming:
    """One transcript word and when it is spoken (seconds)."""

    start: float
    end: float
    word: str

    def __post_init__(self) -> None:
        if not self.start <= self.end:
            raise InvalidInput(f"word {self.word!r} ends ({self.end}) before it starts ({self.start})")


@dataclass(frozen=True)
class Timeline:
    """Mouth cues (sorted, not overlapping) over `duration` seconds; X where no cue is."""

    duration: float
    cues: tuple[MouthCue, ...]
    words: tuple[WordTiming, ...] = ()
    _starts: tuple[float, ...] = field(default=(), init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if not (isinstance(self.duration, (int, float)) and math.isfinite(self.duration)
                and self.duration >= 0):
            raise InvalidInput(f"timeline duration must be a finite number >= 0, got {self.duration!r}")
        # Accept lists from callers, store tuples so the timeline stays hashable.
        object.__setattr__(self, "cues", tuple(self.cues))
        object.__setattr__(self, "words", tuple(self.words))
        prev_end = 0.0
        for i, cue in enumerate(self.cues):
            if not isinstance(cue, MouthCue):
                raise InvalidInput(f"cues[{i}] is not a MouthCue: {cue!r}")
            if cue.start < prev_end - _EPS_S:
                raise InvalidInput(f"cues[{i}] starts at {cue.start} before the previous cue ends ({prev_end})")
            prev_end = cue.end
        if prev_end > self.duration + _EPS_S:
            raise InvalidInput(f"the last cue ends at {prev_end}, after the duration {self.duration}")
        object.__setattr__(self, "_starts", tuple(c.start for c in self.cues))

    @classmethod
    def silent(cls, duration: float) -> Timeline:
        """A timeline at rest (one X cue) for `duration` seconds."""
        duration = _check_time(duration, "duration")
        return cls(duration, (MouthCue(0.0, duration, REST, 0.0),))

    def shape_at(self, t: float) -> str:
        """The shape shown at time `t`: the cue with start <= t < end, else X."""
        i = bisect.bisect_right(self._starts, t) - 1
        if i >= 0 and t < self.cues[i].end:
            return self.cues[i].shape
        return REST

    def sample(self, fps: float, n_frames: int | None = None) -> list[str]:
        """The shape for each video frame; frame i shows time i / fps.

        `n_frames` defaults to enough frames to cover the duration.
        """
        if not fps > 0:
            raise InvalidInput(f"fps must be > 0, got {fps!r}")
        if n_frames is None:
            n_frames = max(1, math.ceil(self.duration * fps - 1e-9))
        out: list[str] = []
        cues, j = self.cues, 0
        for i in range(n_frames):  # frame times only grow: walk the cues once
            t = i / fps
            while j < len(cues) and cues[j].end <= t:
                j += 1
            out.append(cues[j].shape if j < len(cues) and cues[j].start <= t else REST)
        return out

    # --- Rhubarb Lip Sync interchange -------------------------------------------

    def _rhubarb_cues(self) -> list[tuple[float, float, str]]:
        """Cues as Rhubarb writes them: centiseconds, contiguous from 0, X in gaps,
        equal neighbours joined, zero-length cues dropped."""
        end_cs = self._duration_cs()
        out: list[list[Any]] = []

        def put(a: int, b: int, shape: str) -> None:
            b = min(b, end_cs)
            if b <= a:
                return
            if out and out[-1][2] == shape and out[-1][1] == a:
                out[-1][1] = b
            else:
                out.append([a, b, shape])

        t = 0
        for cue in self.cues:
            a, b = max(round(cue.start * 100), t), round(cue.end * 100)
            put(t, a, REST)
            put(a, b, cue.shape)
            t = max(t, b)
        put(t, end_cs, REST)
        if not out:  # Rhubarb's dummyShapeIfEmpty: one zero-length X
            return [(0.0, 0.0, REST)]
        return [(a / 100, b / 100, s) for a, b, s in out]

    def _duration_cs(self) -> int:
        return round(self.duration * 100)

    def to_rhubarb_json(self, sound_file: str = "") -> dict:
        """The timeline as Rhubarb Lip Sync's JSON export, as a dict."""
        return {
            "metadata": {"soundFile": sound_file, "duration": self._duration_cs() / 100},
            "mouthCues": [{"start": a, "end": b, "value": s} for a, b, s in self._rhubarb_cues()],
        }

    def to_json_text(self, sound_file: str = "") -> str:
        """The timeline as the exact text `rhubarb -f json` writes."""
        lines = [
            "{",
            '  "metadata": {',
            f'    "soundFile": "{_escape_json(sound_file)}",',
            f'    "duration": {self._duration_cs() / 100:.2f}',
            "  },",
            '  "mouthCues": [',
            ",\n".join(f'    {{ "start": {a:.2f}, "end": {b:.2f}, "value": "{s}" }}'
                       for a, b, s in self._rhubarb_cues()),
            "  ]",
            "}",
        ]
        return "\n".join(lines) + "\n"

    def to_tsv(self) -> str:
        """The timeline as the exact text `rhubarb -f tsv` writes (start, shape; a final X)."""
        rows = [f"{a:.2f}\t{s}" for a, _, s in self._rhubarb_cues()]
        rows.append(f"{self._duration_cs() / 100:.2f}\t{REST}")
        return "\n".join(rows) + "\n"

    @classmethod
    def from_rhubarb_json(cls, data: dict) -> Timeline:
        """Read Rhubarb Lip Sync's JSON (as parsed by `json.loads`), validating it.

        An optional numeric "intensity" per cue is kept; the duration defaults to
        the last cue's end when the metadata does not give one.
        """
        if not isinstance(data, dict):
            raise InvalidInput(f"a Rhubarb timeline must be a JSON object, got {type(data).__name__}")
        if "mouthCues" not in data:
            raise InvalidInput("the Rhubarb timeline has no 'mouthCues' key")
        raw_cues = data["mouthCues"]
        if not isinstance(raw_cues, list):
            raise InvalidInput(f"'mouthCues' must be a list, got {type(raw_cues).__name__}")
        cues: list[MouthCue] = []
        for i, raw in enumerate(raw_cues):
            where = f"mouthCues[{i}]"
            if not isinstance(raw, dict):
                raise InvalidInput(f"{where} must be an object, got {raw!r}")
            for key in ("start", "end", "value"):
                if key not in raw:
                    raise InvalidInput(f"{where} has no '{key}' key")
            start = _check_time(raw["start"], f"{where}.start")
            end = _check_time(raw["end"], f"{where}.end")
            if end < start:
                raise InvalidInput(f"{where} ends ({end}) before it starts ({start})")
            shape = raw["value"]
            if not isinstance(shape, str) or len(shape) != 1 or shape not in SHAPES:
                raise InvalidInput(f"{where} has an unknown shape {shape!r}; expected one of {SHAPES}")
            intensity = raw.get("intensity", 1.0)
            if isinstance(intensity, bool) or not isinstance(intensity, (int, float)) \
                    or not 0.0 <= intensity <= 1.0:
                raise InvalidInput(f"{where}.intensity must be a number in [0, 1], got {intensity!r}")
            if cues and start < cues[-1].end - _EPS_S:
                raise InvalidInput(f"{where} starts at {start}, before the previous cue ends ({cues[-1].end})")
            cues.append(MouthCue(start, end, shape, float(intensity)))
        last_end = cues[-1].end if cues else 0.0
        duration = last_end
        meta = data.get("metadata")
        if meta is not None:
            if not isinstance(meta, dict):
                raise InvalidInput(f"'metadata' must be an object, got {type(meta).__name__}")
            if "duration" in meta:
                duration = _check_time(meta["duration"], "metadata.duration")
                if last_end > duration + _EPS_S:
                    raise InvalidInput(f"the last mouth cue ends at {last_end}, after the duration {duration}")
        return cls(duration, tuple(cues))

    # --- full-fidelity form (intensity and words), for storage and the wire ------

    def to_dict(self) -> dict:
        """Everything, as plain JSON-able data (unlike Rhubarb's export)."""
        return {
            "duration": self.duration,
            "cues": [[c.start, c.end, c.shape, c.intensity] for c in self.cues],
            "words": [[w.start, w.end, w.word] for w in self.words],
        }

    @classmethod
    def from_dict(cls, data: dict) -> Timeline:
        """The inverse of `to_dict`, validating what it reads."""
        try:
            cues = tuple(MouthCue(float(a), float(b), s, float(k)) for a, b, s, k in data["cues"])
            words = tuple(WordTiming(float(a), float(b), str(w)) for a, b, w in data.get("words", ()))
            return cls(float(data["duration"]), cues, words)
        except (KeyError, TypeError, ValueError) as exc:
            raise InvalidInput(f"malformed timeline: {exc!r}") from None


def _escape_json(s: str) -> str:
    """Escape a string as Rhubarb does: UTF-16 units at or above 0x80 and controls as \\uXXXX."""
    out = []
    for ch in s:
        if ch in '"\\':
            out.append("\\" + ch)
        elif ch in "\b\f\n\r\t":
            out.append({"\b": "\\b", "\f": "\\f", "\n": "\\n", "\r": "\\r", "\t": "\\t"}[ch])
        elif ord(ch) < 0x20 or ord(ch) >= 0x80:
            encoded = ch.encode("utf-16-be")
            out.extend(f"\\u{int.from_bytes(encoded[i:i + 2], 'big'):04x}"
                       for i in range(0, len(encoded), 2))
        else:
            out.append(ch)
    return "".join(out)
