"""Speaker labels in a transcript ("HOST: Welcome back." on its own line), for
templates with two characters: who says which words, and so who moves their mouth when.
"""

from __future__ import annotations

import bisect
import difflib
import re
from collections.abc import Sequence
from dataclasses import dataclass, replace

from farm.errors import InvalidInput
from farm.timeline import REST, MouthCue, Timeline, WordTiming

MAX_SPEAKERS = 2  # the two-person templates have two seats
MAX_LABEL_CHARS = 32
# A label starts a line: a name of letters, digits, spaces, '.', '_' or '-', then ':'.
_LABEL = re.compile(r"^\s*([^\W\d_][\w .\-]{0,%d}?)\s*:\s*(.*)$" % (MAX_LABEL_CHARS - 1))


@dataclass(frozen=True)
class Turn:
    speaker: str
    text: str


def parse_turns(transcript: str) -> list[Turn] | None:
    """The transcript's turns, or None when no line starts with a label. Lines with no
    label continue the turn before them; text before the first label is refused.

    Raises InvalidInput "too_many_speakers" past MAX_SPEAKERS names and
    "unlabelled_text" for words before the first label.
    """
    turns: list[Turn] = []
    for line in transcript.splitlines():
        m = _LABEL.match(line)
        if m:
            turns.append(Turn(m.group(1).strip(), m.group(2).strip()))
        elif line.strip():
            if not turns:
                if any(_LABEL.match(x) for x in transcript.splitlines()):
                    raise InvalidInput("the transcript has words before its first speaker label "
                                       "('NAME: ...')", code="unlabelled_text")
                return None
            turns[-1] = replace(turns[-1], text=f"{turns[-1].text} {line.strip()}".strip())
    if not turns:
        return None
    names = speakers(turns)
    if len(names) > MAX_SPEAKERS:
        raise InvalidInput(f"the transcript names {len(names)} speakers ({', '.join(names)}); "
                           f"at most {MAX_SPEAKERS}", code="too_many_speakers")
    return turns


def speakers(turns: Sequence[Turn]) -> list[str]:
    """Speaker names in order of first appearance."""
    seen: list[str] = []
    for t in turns:
        if t.speaker not in seen:
            seen.append(t.speaker)
    return seen


def spoken_text(turns: Sequence[Turn]) -> str:
    """The words alone, for the aligner (labels are not spoken)."""
    return "\n".join(t.text for t in turns)


def split_timeline(timeline: Timeline, turns: Sequence[Turn]) -> list[Timeline]:
    """One timeline per speaker (in `speakers` order): each mouth moves while its
    speaker's words are spoken and rests (X) otherwise. A cue goes to the speaker of
    the word it overlaps most, or of the nearest word."""
    from node.lipsync.text import normalize_transcript

    names = speakers(turns)
    spoken, owner = [], []
    for t in turns:
        for w in normalize_transcript(t.text):
            spoken.append(w)
            owner.append(names.index(t.speaker))
    words = list(timeline.words)
    who = [0] * len(words)
    matcher = difflib.SequenceMatcher(a=spoken, b=[w.word for w in words], autojunk=False)
    for block in matcher.get_matching_blocks():
        for i in range(block.size):
            who[block.b + i] = owner[block.a + i]
    _fill_unmatched(who, matcher, len(words))
    starts = [w.start for w in words]
    per: list[list[MouthCue]] = [[] for _ in names]
    per_words: list[list[WordTiming]] = [[] for _ in names]
    for w, k in zip(words, who):
        per_words[k].append(w)
    for cue in timeline.cues:
        k = _speaker_at(cue, words, who, starts) if cue.shape != REST else None
        for n, cues in enumerate(per):
            cues.append(cue if n == k or k is None else replace(cue, shape=REST, intensity=0.0))
    return [Timeline(timeline.duration, tuple(_merge(c)), tuple(per_words[n]))
            for n, c in enumerate(per)]


def _fill_unmatched(who: list[int], matcher: difflib.SequenceMatcher, n: int) -> None:
    """Words the transcript does not account for take the speaker of the word before."""
    matched = set()
    for block in matcher.get_matching_blocks():
        matched.update(range(block.b, block.b + block.size))
    for i in range(n):
        if i not in matched and i > 0:
            who[i] = who[i - 1]


def _speaker_at(cue: MouthCue, words: list[WordTiming], who: list[int], starts: list[float]) -> int:
    if not words:
        return 0
    best, overlap = None, 0.0
    i = max(0, bisect.bisect_right(starts, cue.start) - 1)
    while i < len(words) and words[i].start < cue.end:
        o = min(cue.end, words[i].end) - max(cue.start, words[i].start)
        if o > overlap:
            best, overlap = i, o
        i += 1
    if best is None:  # between words: the nearer neighbour
        mid = (cue.start + cue.end) / 2
        j = bisect.bisect_right(starts, mid)
        near = [k for k in (j - 1, j) if 0 <= k < len(words)]
        best = min(near, key=lambda k: min(abs(words[k].start - mid), abs(words[k].end - mid)))
    return who[best]


def _merge(cues: list[MouthCue]) -> list[MouthCue]:
    out: list[MouthCue] = []
    for c in cues:
        if out and out[-1].shape == c.shape == REST:
            out[-1] = replace(out[-1], end=c.end)
        else:
            out.append(c)
    return out
