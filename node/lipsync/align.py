"""Forced alignment of one chunk of audio to a window of the transcript.

Two passes, as PocketSphinx does it. The word pass searches a finite-state grammar
of the window's words in order that may start at any word and stop after any word:
the chunk holds some run of the transcript, and the search finds which run, so the
window can be wider than the chunk and transcript words the speaker skipped are
passed over. The phone pass (state alignment inside those word boundaries) then
times each phone.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass

import numpy as np

from node.lipsync import sphinx
from node.lipsync.g2p import letter_to_sound
from node.lipsync.sphinx import Span

log = logging.getLogger(__name__)

_ALT_PRON = re.compile(r"\(\d+\)$")
_VOWELS = {"AA", "AE", "AH", "AO", "AW", "AY", "EH", "ER", "EY", "IH", "IY", "OW", "OY", "UH", "UW"}
_SEARCH = "window"


@dataclass(frozen=True)
class ChunkAlignment:
    """Aligned words and phones, in frames from the chunk's start."""

    words: list[Span]
    first: int  # the window index of words[0]; the others follow in order
    phones: list[Span]
    score: float | None  # the word pass's log score (see sphinx.hyp_log_score)
    # Each phone's acoustic log score in the phone pass (None where that pass failed):
    # a word forced onto other speech scores far below its neighbours.
    phone_scores: list[float | None]


def align_chunk(samples: np.ndarray, window: list[str], expected_first: int = 0) -> ChunkAlignment | None:
    """Align 16 kHz `samples` to a run of the normalised words in `window`.

    `expected_first` breaks ties where the run could sit at several places (a
    repeated phrase). None when the search found no path.
    """
    if not window or samples.size == 0:
        return None
    decoder = sphinx.align_decoder()
    _ensure_in_dictionary(decoder, window)
    pcm = sphinx.pcm16(samples)
    try:
        decoder.add_fsg(_SEARCH, decoder.create_fsg(_SEARCH, 0, len(window), _transitions(window)))
        decoder.activate_search(_SEARCH)
        sphinx.decode(decoder, pcm)
    except RuntimeError as exc:
        log.info("the word pass failed: %s", exc)
        return None
    spans = [Span(_ALT_PRON.sub("", seg.word), seg.start_frame, seg.end_frame + 1)
             for seg in decoder.seg() or () if not seg.word.startswith(("<", "["))]
    first = _locate([s.label for s in spans], window, expected_first)
    if first is None:
        return None
    score = sphinx.hyp_log_score(decoder)
    phones, phone_scores = _phone_pass(decoder, pcm, spans)
    return ChunkAlignment(spans, first, phones, score, phone_scores)


def _transitions(window: list[str]) -> list[tuple]:
    """A chain through the words, entered before any word and left after any word."""
    n = len(window)
    chain = [(i, i + 1, 1.0, w) for i, w in enumerate(window)]
    enter = [(0, i + 1, 1.0, window[i]) for i in range(1, n)]
    leave = [(i, n, 1.0, window[i]) for i in range(n - 1)]
    return chain + enter + leave


def _locate(labels: list[str], window: list[str], expected_first: int) -> int | None:
    """Where the run `labels` sits in `window` (nearest `expected_first` if several)."""
    if not labels:
        return None
    k = len(labels)
    starts = [i for i in range(len(window) - k + 1) if window[i:i + k] == labels]
    return min(starts, key=lambda i: abs(i - expected_first)) if starts else None


def _ensure_in_dictionary(decoder, words: list[str]) -> None:
    """Spell words the dictionary lacks with our letter-to-sound rules."""
    added = 0
    for word in set(words):
        if decoder.lookup_word(word) is None:
            decoder.add_word(word, " ".join(letter_to_sound(word) or ["AH"]), update=False)
            added += 1
    if added:
        # update=False defers rebuilding the search: the FSG built next sees every word.
        sphinx.note_added_words(added)


def _phone_pass(decoder, pcm: bytes, spans: list[Span]) -> tuple[list[Span], list[float | None]]:
    """Phones inside the word pass's words, with their scores; if PocketSphinx fails,
    the dictionary's phones spread over each word (without scores)."""
    try:
        decoder.set_alignment()
        sphinx.decode(decoder, pcm)
        entries = list(decoder.get_alignment().phones())
        if entries:
            return [Span(p.name, p.start, p.start + p.duration) for p in entries], [p.score for p in entries]
    except RuntimeError as exc:
        log.info("phone alignment failed (%s); spreading dictionary phones over words", exc)
    phones = [p for span in spans for p in _spread(decoder, span)]
    return phones, [None] * len(phones)


def _spread(decoder, span: Span) -> list[Span]:
    """The word's dictionary phones over its span, vowels twice as long as consonants."""
    phones = (decoder.lookup_word(span.label) or "AH").split()
    weights = np.array([2.0 if p in _VOWELS else 1.0 for p in phones])
    edges = np.round(span.start + np.concatenate([[0], np.cumsum(weights)]) / weights.sum()
                     * (span.end - span.start)).astype(int)
    return [Span(p, int(a), int(b)) for p, a, b in zip(phones, edges[:-1], edges[1:]) if b > a]
