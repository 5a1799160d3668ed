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
BASIC_SHAPES = "ABCDEF"
EXTENDED_SHAPES = "GHX"  # Rhubarb's default --extendedShapes: all of them
EXPORT_FORMATS = ("tsv", "json", "xml", "dat")
DAT_FRAME_RATE = 24.0  # Rhubarb's default --datFrameRate
DAT_MIN_FRAME_RATE, DAT_MAX_FRAME_RATE = 24.0, 100.0  # what Rhubarb's DAT exporter accepts
# The basic shape Rhubarb 1.13+ draws for an extended shape the character lacks.
_BASIC_FOR = {"G": "A", "H": "C", "X": "A"}
_PRESTON_BLAIR = {"A": "MBP", "B": "etc", "C": "E", "D": "AI", "E": "O", "F": "U", "G": "FV",
                  "H": "L", "X": "rest"}
# Rhubarb writes times with two decimals; cue boundaries closer than this are equal.
_EPS_S = 0.005


def check_extended_shapes(extended_shapes: str) -> str:
    """The extended shapes (some of G, H, X) a character has, validated; basic shapes
    A-F may be named too (every character has them)."""
    if not isinstance(extended_shapes, str) or set(extended_shapes) - set(SHAPES):
        raise InvalidInput(f"extended shapes must be letters from {EXTENDED_SHAPES} (for example "
                           f"'GX' or ''), got {extended_shapes!r}", code="invalid_extended_shapes")
    return "".join(s for s in EXTENDED_SHAPES if s in extended_shapes)


def check_dat_frame_rate(frame_rate: float) -> float:
    """A frame rate Rhubarb's DAT exporter accepts (24 to 100 fps: coarser drops shapes)."""
    if isinstance(frame_rate, bool) or not isinstance(frame_rate, (int, float)) \
            or not DAT_MIN_FRAME_RATE <= frame_rate <= DAT_MAX_FRAME_RATE:
        raise InvalidInput(f"the DAT frame rate must be between {DAT_MIN_FRAME_RATE:g} and "
                           f"{DAT_MAX_FRAME_RATE:g} fps, got {frame_rate!r}", code="invalid_frame_rate")
    return float(frame_rate)


def basic_shape(shape: str, extended_shapes: str = EXTENDED_SHAPES) -> str:
    """`shape` itself if the character has it, else the basic shape Rhubarb uses instead
    (G -> A, H -> C, X -> A)."""
    if shape in BASIC_SHAPES or shape in extended_shapes:
        return shape
    return _BASIC_FOR[shape]


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
    # Every exporter writes what Rhubarb Lip Sync 1.14 writes for the same cues:
    # times in centiseconds with two decimals, cues contiguous from 0 to the
    # duration (X in gaps, equal neighbours joined), the duration truncated to
    # centiseconds as Rhubarb truncates the audio's length.

    def _rhubarb_cues(self, extended_shapes: str = EXTENDED_SHAPES) -> list[tuple[int, int, str]]:
        """(start_cs, end_cs, shape) as Rhubarb's animation holds them (maybe empty)."""
        end_cs = self._duration_cs()
        out: list[list[Any]] = []

        def put(a: int, b: int, shape: str) -> None:
            b = min(b, end_cs)
            if b <= a:
                return
            shape = basic_shape(shape, extended_shapes)
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
        return [(a, b, s) for a, b, s in out]

    def _cues_or_dummy(self, extended_shapes: str) -> list[tuple[int, int, str]]:
        # Rhubarb's dummyShapeIfEmpty: JSON and XML never list zero cues.
        return self._rhubarb_cues(extended_shapes) or [(0, 0, basic_shape(REST, extended_shapes))]

    def _duration_cs(self) -> int:
        # The epsilon keeps 0.29 s (28.999... in binary) at 29 cs.
        return math.floor(self.duration * 100 + 1e-6)

    def to_rhubarb_json(self, sound_file: str = "", extended_shapes: str = EXTENDED_SHAPES) -> dict:
        """The timeline as Rhubarb Lip Sync's JSON export, as a dict."""
        return {
            "metadata": {"soundFile": sound_file, "duration": self._duration_cs() / 100},
            "mouthCues": [{"start": a / 100, "end": b / 100, "value": s}
                          for a, b, s in self._cues_or_dummy(extended_shapes)],
        }

    def to_json_text(self, sound_file: str = "", extended_shapes: str = EXTENDED_SHAPES) -> str:
        """The exact text `rhubarb -f json` writes."""
        cues = ",\n".join(f'    {{ "start": {_cs(a)}, "end": {_cs(b)}, "value": "{s}" }}'
                          for a, b, s in self._cues_or_dummy(extended_shapes))
        return (f'{{\n  "metadata": {{\n    "soundFile": "{_escape_json(sound_file)}",\n'
                f'    "duration": {_cs(self._duration_cs())}\n  }},\n  "mouthCues": [\n{cues}\n  ]\n}}\n')

    def to_tsv(self, extended_shapes: str = EXTENDED_SHAPES) -> str:
        """The exact text `rhubarb -f tsv` writes: start and shape per cue, then the end at rest."""
        rows = [f"{_cs(a)}\t{s}\n" for a, _, s in self._rhubarb_cues(extended_shapes)]
        rows.append(f"{_cs(self._duration_cs())}\t{basic_shape(REST, extended_shapes)}\n")
        return "".join(rows)

    def to_xml_text(self, sound_file: str = "", extended_shapes: str = EXTENDED_SHAPES) -> str:
        """The exact text `rhubarb -f xml` writes (Boost's property-tree XML, indented by 2)."""
        sound = f"<soundFile>{_escape_xml(sound_file)}</soundFile>" if sound_file else "<soundFile/>"
        cues = "".join(f'    <mouthCue start="{_cs(a)}" end="{_cs(b)}">{s}</mouthCue>\n'
                       for a, b, s in self._cues_or_dummy(extended_shapes))
        return ('<?xml version="1.0" encoding="utf-8"?>\n<rhubarbResult>\n  <metadata>\n'
                f"    {sound}\n    <duration>{_cs(self._duration_cs())}</duration>\n"
                f"  </metadata>\n  <mouthCues>\n{cues}  </mouthCues>\n</rhubarbResult>\n")

    def to_dat_text(self, frame_rate: float = DAT_FRAME_RATE, extended_shapes: str = EXTENDED_SHAPES,
                    preston_blair: bool = False) -> str:
        """The exact text `rhubarb -f dat` writes: Moho's switch data, one line per shape
        change, frame numbers from 1 at `frame_rate` (24 to 100 fps, as Rhubarb allows).

        `preston_blair` names shapes as Rhubarb's --datUsePrestonBlair does (MBP, etc, ...).
        """
        frame_rate = check_dat_frame_rate(frame_rate)
        names = _PRESTON_BLAIR if preston_blair else {s: s for s in SHAPES}

        def frame(cs: int) -> int:  # C++'s truncating int cast of fps * seconds
            return 1 + int(frame_rate * (cs / 100))

        lines, last = ["MohoSwitch1"], 0
        for a, _, s in self._rhubarb_cues(extended_shapes):
            n = frame(a)
            if n != last:  # two shapes starting in one frame: the first one shows
                lines.append(f"{n} {names[s]}")
                last = n
        n = frame(self._duration_cs())
        lines.append(f"{n + 1 if n == last else n} {names[basic_shape(REST, extended_shapes)]}")
        return "\n".join(lines) + "\n"

    def export(self, fmt: str, *, sound_file: str = "", extended_shapes: str = EXTENDED_SHAPES,
               dat_frame_rate: float = DAT_FRAME_RATE, dat_preston_blair: bool = False) -> str:
        """The text of `rhubarb -f FMT` (one of EXPORT_FORMATS) for this timeline."""
        if fmt == "tsv":
            return self.to_tsv(extended_shapes)
        if fmt == "json":
            return self.to_json_text(sound_file, extended_shapes)
        if fmt == "xml":
            return self.to_xml_text(sound_file, extended_shapes)
        if fmt == "dat":
            return self.to_dat_text(dat_frame_rate, extended_shapes, dat_preston_blair)
        raise InvalidInput(f"unknown export format {fmt!r}; expected one of {', '.join(EXPORT_FORMATS)}",
                           code="invalid_format")

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


def _cs(centiseconds: int) -> str:
    return f"{centiseconds / 100:.2f}"


def _escape_xml(s: str) -> str:
    """Escape text as Boost's XML writer does (all-space text keeps its first space as &#32;)."""
    if s and not s.strip(" "):
        return "&#32;" + s[1:]
    for ch, entity in (("&", "&amp;"), ("<", "&lt;"), (">", "&gt;"), ('"', "&quot;"), ("'", "&apos;")):
        s = s.replace(ch, entity)
    return s


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
