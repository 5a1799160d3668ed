"""Forced alignment of a transcript with PocketSphinx: words, then phones.

Two passes, as PocketSphinx does it: the word pass finds where each word is
(an FSG of the words in order); the phone pass (state alignment inside those
word boundaries) finds each phone. The phone pass keeps a backpointer per HMM
state per frame, which grows as frames x phones, so long audio is phone-aligned
in chunks of at most `CHUNK_MAX_FRAMES`, cut at quiet word boundaries.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass

import numpy as np

from node.lipsync import sphinx
from node.lipsync.sphinx import SAMPLES_PER_FRAME, Span
from node.lipsync.text import letter_to_sound

log = logging.getLogger(__name__)

CHUNK_TARGET_FRAMES = 1000  # 10 s
CHUNK_MAX_FRAMES = 2000  # 20 s: about 60 MB of backpointers for fast speech
_ALT_PRON = re.compile(r"\(\d+\)$")
_VOWELS = {"AA", "AE", "AH", "AO", "AW", "AY", "EH", "ER", "EY", "IH", "IY", "OW", "OY", "UH", "UW"}


@dataclass(frozen=True)
class Alignment:
    """Aligned words and phones, in frames from the start of the aligned audio."""

    words: list[Span]
    phones: list[Span]
    score: float | None  # the word pass's log score (see sphinx.hyp_log_score)


def align(samples: np.ndarray, words: list[str]) -> Alignment | None:
    """Align `words` (normalised, see text.py) to 16 kHz `samples`.

    Returns None when PocketSphinx cannot fit every word in order: the transcript
    does not match the audio, or the search lost the path.
    """
    if not words:
        return None
    decoder = sphinx.align_decoder()
    _ensure_in_dictionary(decoder, words)
    pcm = sphinx.pcm16(samples)
    spans = _word_pass(decoder, pcm, words)
    if spans is None:
        log.info("forced alignment did not place every transcript word")
        return None
    score = sphinx.hyp_log_score(decoder)
    n_frames = len(pcm) // 2 // SAMPLES_PER_FRAME
    if n_frames <= CHUNK_MAX_FRAMES:
        phones = _phone_pass(decoder, pcm, spans, redo_words=False)
    else:
        phones = []
        for first, last in _chunks(spans, samples):
            a, b = spans[first].start, spans[last].end
            chunk_pcm = pcm[a * SAMPLES_PER_FRAME * 2: b * SAMPLES_PER_FRAME * 2]
            chunk = [Span(s.label, s.start - a, s.end - a) for s in spans[first:last + 1]]
            phones.extend(Span(p.label, p.start + a, p.end + a)
                          for p in _phone_pass(decoder, chunk_pcm, chunk, redo_words=True))
    return Alignment(words=spans, phones=phones, score=score)


def _ensure_in_dictionary(decoder, words: list[str]) -> None:
    """Spell words the dictionary lacks with our letter-to-sound rules."""
    added = 0
    for word in set(words):
        if decoder.lookup_word(word) is None:
            phones = letter_to_sound(word) or ["AH"]
            decoder.add_word(word, " ".join(phones), update=False)
            added += 1
    if added:
        # Adding with update=False defers rebuilding the search; the next
        # set_align_text rebuilds it with every word in place.
        sphinx.note_added_words(added)


def _word_pass(decoder, pcm: bytes, words: list[str]) -> list[Span] | None:
    """Word spans in order, or None unless every word was placed."""
    try:
        decoder.set_align_text(" ".join(words))
        sphinx.decode(decoder, pcm)
    except RuntimeError:
        return None
    spans = [Span(_ALT_PRON.sub("", seg.word), seg.start_frame, seg.end_frame + 1)
             for seg in decoder.seg() or ()
             if not seg.word.startswith(("<", "["))]
    if [s.label for s in spans] != words:
        return None
    return spans


def _phone_pass(decoder, pcm: bytes, spans: list[Span], *, redo_words: bool) -> list[Span]:
    """Phones inside the word spans; if PocketSphinx fails, the dictionary's phones
    spread over each word. `redo_words`: run the word pass on `pcm` first (the
    decoder's last word pass was over other audio)."""
    try:
        if redo_words and _word_pass(decoder, pcm, [s.label for s in spans]) is None:
            raise RuntimeError("the chunk's word pass failed")
        decoder.set_alignment()
        sphinx.decode(decoder, pcm)
        phones = [Span(p.name, p.start, p.start + p.duration) for p in decoder.get_alignment().phones()]
        if phones:
            return phones
    except RuntimeError as exc:
        log.info("phone alignment failed (%s); spreading dictionary phones over words", exc)
    return [p for span in spans for p in _spread(decoder, span)]


def _spread(decoder, span: Span) -> list[Span]:
    """The word's dictionary phones over its span, vowels twice as long as consonants."""
    phones = (decoder.lookup_word(span.label) or "AH").split()
    weights = np.array([2.0 if p in _VOWELS else 1.0 for p in phones])
    edges = np.round(span.start + np.concatenate([[0], np.cumsum(weights)]) / weights.sum()
                     * (span.end - span.start)).astype(int)
    return [Span(p, int(a), int(b)) for p, a, b in zip(phones, edges[:-1], edges[1:]) if b > a]


def _chunks(spans: list[Span], samples: np.ndarray) -> list[tuple[int, int]]:
    """Runs of words (first, last index) each at most CHUNK_MAX_FRAMES long where
    possible, cut at the quietest word boundary past CHUNK_TARGET_FRAMES."""
    def loudness(frame: int) -> float:
        a = max(0, frame - 2) * SAMPLES_PER_FRAME
        return float(np.mean(np.square(samples[a: a + 4 * SAMPLES_PER_FRAME], dtype=np.float64)))

    out, first = [], 0
    while first < len(spans):
        start = spans[first].start
        last = first
        while last + 1 < len(spans) and spans[last + 1].end - start <= CHUNK_TARGET_FRAMES:
            last += 1
        # Candidates: boundaries after `last` that keep the chunk under the maximum.
        candidates = [i for i in range(last, len(spans))
                      if spans[i].end - start <= CHUNK_MAX_FRAMES] or [last]
        if candidates[-1] == len(spans) - 1:
            cut = len(spans) - 1
        else:
            cut = min(candidates, key=lambda i: loudness(spans[i].end))
        out.append((first, cut))
        first = cut + 1
    return out
