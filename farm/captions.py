"""Captions from word timings: cues of whole words, and WebVTT with a timestamp per word.

The lip-sync timeline holds the words as normalised for alignment ("10" reads
"ten"); captions show the transcript as written, so `display_words` maps each
written token onto the timed words it was spoken as. Cues break at pauses, at the
end of a sentence, and before a line grows past a reader's line length.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Sequence
from dataclasses import dataclass

from farm.timeline import WordTiming

# Broadcast caption practice: at most 42 characters a line, a cue on screen for at
# most about 6 s; a pause this long ends a cue (the caption clears while no one speaks).
MAX_LINE_CHARS = 42
MAX_CUE_S = 6.0
PAUSE_BREAK_S = 0.6
# A caption stays up at least this long, if the next one leaves room, so it can be read.
MIN_CUE_S = 0.8
_SENTENCE_END = re.compile(r"[.!?…][\"')\]]*$")
# Titles that end in a full stop without ending the sentence ("Dr. Smith").
_TITLES = frozenset({"dr.", "mr.", "mrs.", "ms.", "prof.", "st.", "mt.", "jr.", "sr.", "vs.", "no.",
                     "fig.", "e.g.", "i.e."})


@dataclass(frozen=True)
class CaptionCue:
    """One caption on screen: whole words, shown from `start` to `end` (seconds)."""

    start: float
    end: float
    words: tuple[WordTiming, ...]

    @property
    def text(self) -> str:
        return " ".join(w.word for w in self.words)


def display_words(transcript: str | None, timed: Sequence[WordTiming]) -> list[WordTiming]:
    """The transcript's written tokens ("$5," "Dr.") timed by the aligned words.

    A token spoken as several words spans them; a token the aligner did not place
    takes the time between its neighbours. Without a transcript, the timed words.
    """
    from node.lipsync.text import normalize_transcript

    tokens = (transcript or "").split()
    if not tokens:
        return list(timed)
    spoken: list[str] = []
    owner: list[int] = []  # for each spoken word, the token it came from
    for k, token in enumerate(tokens):
        for w in normalize_transcript(token):
            spoken.append(w)
            owner.append(k)
    spans: list[list[float] | None] = [None] * len(tokens)
    matcher = difflib.SequenceMatcher(a=spoken, b=[w.word for w in timed], autojunk=False)
    for block in matcher.get_matching_blocks():
        for i in range(block.size):
            k, w = owner[block.a + i], timed[block.b + i]
            span = spans[k]
            spans[k] = [w.start, w.end] if span is None else [min(span[0], w.start), max(span[1], w.end)]
    if all(s is None for s in spans):
        return list(timed)
    return _fill_gaps(tokens, spans)


def _fill_gaps(tokens: list[str], spans: list[list[float] | None]) -> list[WordTiming]:
    """Untimed tokens share the time between their timed neighbours equally."""
    out: list[WordTiming] = []
    k = 0
    while k < len(tokens):
        if spans[k] is not None:
            out.append(WordTiming(spans[k][0], spans[k][1], tokens[k]))
            k += 1
            continue
        j = k
        while j < len(tokens) and spans[j] is None:
            j += 1
        left = out[-1].end if out else (spans[j][0] if j < len(tokens) else 0.0)
        right = spans[j][0] if j < len(tokens) else left
        step = (right - left) / (j - k)
        for n in range(k, j):
            a = left + step * (n - k)
            out.append(WordTiming(a, a + step, tokens[n]))
        k = j
    return out


def caption_cues(words: Sequence[WordTiming], *, max_chars: int = MAX_LINE_CHARS,
                 max_cue_s: float = MAX_CUE_S, pause_s: float = PAUSE_BREAK_S) -> list[CaptionCue]:
    """Group timed words into one-line cues (see the module's docstring)."""
    groups: list[list[WordTiming]] = []
    for w in words:
        cur = groups[-1] if groups else None
        if cur:
            text_len = sum(len(x.word) + 1 for x in cur) + len(w.word)
            if (text_len > max_chars or w.start - cur[-1].end >= pause_s
                    or w.end - cur[0].start > max_cue_s or _ends_sentence(cur[-1].word)):
                cur = None
        if cur is None:
            groups.append([w])
        else:
            cur.append(w)
    cues = []
    for n, g in enumerate(groups):
        limit = groups[n + 1][0].start if n + 1 < len(groups) else float("inf")
        end = min(max(g[-1].end, g[0].start + MIN_CUE_S), limit)
        cues.append(CaptionCue(g[0].start, max(end, g[-1].end), tuple(g)))
    return cues


def _ends_sentence(word: str) -> bool:
    return bool(_SENTENCE_END.search(word)) and word.lower() not in _TITLES


def webvtt(cues: Sequence[CaptionCue]) -> str:
    """A WebVTT file; each word after the first carries its start as a timestamp tag,
    so players that style `::cue(:past)` highlight the word being spoken."""
    lines = ["WEBVTT", ""]
    for n, cue in enumerate(cues, 1):
        lines.append(str(n))
        lines.append(f"{_stamp(cue.start)} --> {_stamp(cue.end)}")
        parts = [_escape(cue.words[0].word)]
        for w in cue.words[1:]:
            parts.append(f"<{_stamp(w.start)}>{_escape(w.word)}")
        lines.append(" ".join(parts))
        lines.append("")
    return "\n".join(lines)


def _stamp(seconds: float) -> str:
    ms = max(0, round(seconds * 1000))
    h, rest = divmod(ms, 3_600_000)
    m, rest = divmod(rest, 60_000)
    s, ms = divmod(rest, 1000)
    return f"{h:02d}:{m:02d}:{s:02d}.{ms:03d}"


def _escape(text: str) -> str:
    # "-->" would end the cue timing line's meaning inside text; & and < start markup.
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
