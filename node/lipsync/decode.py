"""Decoding speech chunk by chunk: which transcript words each chunk may hold, whether
the words it was aligned to really fit it, and phone recognition where they do not.

Chunks go to the pool in waves. Inside a wave each chunk gets a window of the
transcript around where proportional speaking time puts it; between waves the
window's anchor moves to the last word that really aligned, so estimates never
drift far, however long the audio. Then, align what matches, recognise the rest:
- a chunk whose alignment scores far below the free phone loop on this recording
  did not hear those words: it is split at its pauses and each piece is aligned
  on its own, and pieces that still do not fit are recognised;
- inside a chunk that fits, a run of words scoring far below the loop was forced
  onto other speech: those words are dropped and their stretch recognised.
"""

from __future__ import annotations

import logging
import math
import statistics
from concurrent.futures import Executor, Future
from dataclasses import dataclass, field

import numpy as np

from node.lipsync.align import ChunkAlignment, align_chunk
from node.lipsync.phones import recognize_phones
from node.lipsync.segment import pieces
from node.lipsync.sphinx import SAMPLES_PER_FRAME, Span

log = logging.getLogger(__name__)

# A chunk's alignment fits unless it scores this much worse per 10 ms frame than the
# phone loop does on this recording (log scores). Measured over 50 synthetic clips
# (5 voices, clean and with noise), each against its own words and another clip's:
# right words -0.8 to -18 a frame, wrong words -32 to -59.
MISMATCH_PER_FRAME = 25.0
# A word was forced onto other speech when its phone-pass score per frame is this far
# under the loop's (right words: -35 at worst; wrong ones: -54 to -110, measured on
# a transcript with one sentence swapped); it takes two such words in a row, or one
# lasting BAD_WORD_FRAMES, since one short word can score badly on its own.
WORD_MISMATCH_PER_FRAME = 50.0
BAD_WORD_FRAMES = 50
# The phone loop yardstick is measured on at least this many frames, spread over the
# recording (the loop's score per frame varied by +-3 inside one voice).
YARDSTICK_MIN_FRAMES = 500
YARDSTICK_SHARE = 0.05
# A window spans the estimated words +- this fraction, plus WINDOW_PAD_WORDS each side.
WINDOW_SLACK = 0.5
WINDOW_PAD_WORDS = 10
# Words before the anchor that a wave's first chunk may claim back: a chunk's edge
# can hold the first sound of the next chunk's first word (the louder claim wins).
OVERLAP_WORDS = 2
# A wave holds chunks covering at least this many frames (and two per worker): long
# enough to keep the workers busy, short enough that estimates cannot drift far.
WAVE_FRAMES = 6000


@dataclass(frozen=True)
class Decoded:
    phones: list[Span]  # absolute frames, in order
    words: list[Span]  # aligned transcript words, absolute frames, in order


@dataclass
class _Unit:
    """A stretch of audio [start, end) (absolute frames) and what became of it."""

    start: int
    end: int
    window: tuple[int, int] = (0, 0)  # the transcript slice it was aligned against
    aligned: ChunkAlignment | None = None  # set when the alignment fits
    first: int = 0  # transcript index of aligned.words[0]
    dropped: set[int] = field(default_factory=set)  # positions in aligned.words
    pending: Future | None = None  # its alignment, while the pool works on it
    loop: Future | None = None  # the phone loop over all of it (yardstick or fallback)
    gaps: list[tuple[int, Future]] = field(default_factory=list)  # (offset, loop) over dropped words


def decode_chunks(samples: np.ndarray, chunks: list[tuple[int, int]], words: list[str],
                  quiet: np.ndarray, pool: Executor, workers: int = 1) -> Decoded:
    """Phones (and aligned words, when `words` are given) for every chunk."""
    def clip(a: int, b: int) -> np.ndarray:
        return samples[a * SAMPLES_PER_FRAME: b * SAMPLES_PER_FRAME]

    units = [_Unit(a, b) for a, b in chunks]
    if not words:
        for u in units:
            u.loop = pool.submit(recognize_phones, clip(u.start, u.end))
        return _assemble(units)
    for k in _yardstick_chunks(chunks):
        units[k].loop = pool.submit(recognize_phones, clip(*chunks[k]))
    lengths = [b - a for a, b in chunks]
    yardstick: float | None = None
    rejected: list[_Unit] = []
    anchor, k = 0, 0
    while k < len(units):
        wave = units[k: _wave_end(lengths, k, 2 * workers)]
        for u, (lo, hi, expected) in zip(wave, _windows(anchor, len(words), lengths[k:k + len(wave)],
                                                        sum(lengths[k:]))):
            u.window = (lo, hi)
            u.pending = pool.submit(align_chunk, clip(u.start, u.end), words[lo:hi], expected - lo) \
                if hi > lo else None
        if yardstick is None:
            yardstick = _yardstick(units)
        for u in wave:
            if _accept(u, u.pending.result() if u.pending else None, yardstick):
                anchor = max(anchor, u.first + len(u.aligned.words))
            else:
                rejected.append(u)
        k += len(wave)
    # Second round: the pieces of rejected chunks, aligned on their own.
    retried = []
    for u in rejected:
        parts = pieces(quiet, u.start, u.end)
        if len(parts) < 2:
            u.loop = u.loop or pool.submit(recognize_phones, clip(u.start, u.end))
            continue
        u.end, u.loop = u.start, None  # the pieces stand in for it
        for a, b in parts:
            piece = _Unit(a, b, u.window)
            piece.pending = pool.submit(align_chunk, clip(a, b), words[slice(*u.window)], 0)
            retried.append(piece)
    for piece in retried:
        if not _accept(piece, piece.pending.result(), yardstick):
            piece.loop = pool.submit(recognize_phones, clip(piece.start, piece.end))
    units.extend(retried)
    for u in units:
        _drop_bad_words(u, yardstick, quiet)
    _keep_monotone(units, quiet)
    for u in units:  # recognise the stretches of words that were dropped
        for a, b in _dropped_runs(u):
            u.gaps.append((a, pool.submit(recognize_phones, clip(u.start + a, u.start + b))))
    return _assemble(units)


def _accept(u: _Unit, result: ChunkAlignment | None, yardstick: float | None) -> bool:
    """Keep `result` on `u` if it fits the audio."""
    if result is None or not result.words:
        return False
    n = u.end - u.start
    if result.score is not None and yardstick is not None \
            and result.score / n - yardstick < -MISMATCH_PER_FRAME:
        log.info("frames %d-%d do not fit their words (%.1f a frame against %.1f)",
                 u.start, u.end, result.score / n, yardstick)
        return False
    u.aligned, u.first = result, u.window[0] + result.first
    return True


def _drop_bad_words(u: _Unit, yardstick: float | None, quiet: np.ndarray) -> None:
    """Drop runs of words that were forced onto other speech: words scoring far below
    the loop, with any squeezed into pauses between them (no loud phones), when the
    run holds two words or more, or one long one."""
    if u.aligned is None or yardstick is None:
        return
    words = u.aligned.words
    scores = _word_scores(u.aligned, quiet[u.start:u.end])
    i = 0
    while i < len(words):
        j, bad = i, []
        while j < len(words) and (scores[j] is None or scores[j] - yardstick < -WORD_MISMATCH_PER_FRAME):
            if scores[j] is not None:
                bad.append(j)
            j += 1
        long_bad = any(words[k].end - words[k].start >= BAD_WORD_FRAMES for k in bad)
        if bad and (j - i >= 2 or long_bad):
            u.dropped.update(range(i, j))
        i = max(j, i + 1)


def _word_scores(aligned: ChunkAlignment, quiet: np.ndarray) -> list[float | None]:
    """Each word's phone-pass score per frame over its loud phones only: without
    fillers the aligner stretches words over pauses, and silence scores badly in any
    word. None for a word without loud phones or scores."""
    totals = [[0.0, 0] for _ in aligned.words]
    w = 0
    for phone, score in zip(aligned.phones, aligned.phone_scores):
        while w < len(aligned.words) and aligned.words[w].end <= phone.start:
            w += 1
        if score is None or w == len(aligned.words):
            continue
        n = phone.end - phone.start
        if n and np.count_nonzero(~quiet[phone.start:phone.end]) * 2 >= n:
            totals[w][0] += score
            totals[w][1] += n
    return [total / n if n else None for total, n in totals]


def _wave_end(lengths: list[int], k: int, min_chunks: int) -> int:
    end, frames = k, 0
    while end < len(lengths) and (frames < WAVE_FRAMES or end - k < min_chunks):
        frames += lengths[end]
        end += 1
    return end


def _windows(anchor: int, n_words: int, lengths: list[int], remaining_frames: int) -> list[tuple[int, int, int]]:
    """(lo, hi, expected first) transcript slices for a wave of chunks starting at `anchor`."""
    rate = (n_words - anchor) / max(1, remaining_frames)  # words per frame still to come
    out, offset = [], 0
    for i, length in enumerate(lengths):
        expected = anchor + round(rate * offset)
        lo = anchor - OVERLAP_WORDS if i == 0 else \
            anchor + math.floor(rate * offset * (1 - WINDOW_SLACK)) - WINDOW_PAD_WORDS
        hi = anchor + math.ceil(rate * (offset + length) * (1 + WINDOW_SLACK)) + WINDOW_PAD_WORDS
        lo, hi = max(0, lo), min(n_words, hi)
        out.append((lo, hi, min(max(expected, lo), hi)))
        offset += length
    return out


def _yardstick_chunks(chunks: list[tuple[int, int]]) -> list[int]:
    """Chunks spread over the recording, from the middle out, until enough frames."""
    total = sum(b - a for a, b in chunks)
    need = max(YARDSTICK_MIN_FRAMES, YARDSTICK_SHARE * total)
    order = sorted(range(len(chunks)), key=lambda k: abs(k - (len(chunks) - 1) / 2))
    picked, frames, stride = [], 0, max(1, len(chunks) // 8)
    for k in order[::stride] + order:
        if frames >= need:
            break
        if k not in picked:
            picked.append(k)
            frames += chunks[k][1] - chunks[k][0]
    return sorted(picked)


def _yardstick(units: list[_Unit]) -> float | None:
    """The phone loop's median log score per frame over the sampled chunks."""
    scores = [u.loop.result().score / (u.end - u.start) for u in units
              if u.loop is not None and u.loop.result().score is not None]
    return statistics.median(scores) if scores else None


def _keep_monotone(units: list[_Unit], quiet: np.ndarray) -> None:
    """Drop aligned words that break the transcript's order: keep the heaviest set of
    words (weight: their loud frames) whose transcript positions grow with time. A
    word claimed twice (a chunk's edge holding the next chunk's first sound) and a
    piece that latched onto words spoken elsewhere both go."""
    entries = [(u.start + w.start, u.first + i, 1 + int(np.count_nonzero(~quiet[u.start + w.start: u.start + w.end])), u, i)
               for u in units if u.aligned for i, w in enumerate(u.aligned.words) if i not in u.dropped]
    entries.sort(key=lambda e: e[0])
    size = max((e[1] for e in entries), default=0) + 2
    tree: list[tuple[int, int]] = [(0, -1)] * (size + 1)  # Fenwick tree of (best total, entry)
    best, back = [0] * len(entries), [-1] * len(entries)
    for n, (_, index, weight, _, _) in enumerate(entries):
        total, prev, k = 0, -1, index  # the best chain ending before this transcript index
        while k > 0:
            if tree[k][0] > total:
                total, prev = tree[k]
            k -= k & -k
        best[n], back[n] = total + weight, prev
        k = index + 1
        while k <= size:
            if best[n] > tree[k][0]:
                tree[k] = (best[n], n)
            k += k & -k
    keep, n = set(), max(range(len(entries)), key=best.__getitem__, default=-1)
    while n >= 0:
        keep.add(n)
        n = back[n]
    for n, (_, _, _, u, i) in enumerate(entries):
        if n not in keep:
            u.dropped.add(i)


def _dropped_runs(u: _Unit) -> list[tuple[int, int]]:
    """Frame stretches (from the unit's start) of consecutive dropped words."""
    if u.aligned is None:
        return []
    words, runs = u.aligned.words, []
    for i in sorted(u.dropped):
        if runs and runs[-1][2] == i - 1:
            runs[-1][1:] = [words[i].end, i]
        else:
            runs.append([words[i].start, words[i].end, i])
    return [(a, b) for a, b, _ in runs]


def _assemble(units: list[_Unit]) -> Decoded:
    """Every unit's phones and kept words, moved to absolute frames, in order."""
    phones: list[Span] = []
    kept: list[Span] = []
    for u in units:
        if u.aligned is None:
            if u.loop is not None:
                phones.extend(_shift(p, u.start) for p in u.loop.result().phones)
            continue
        gone = [w for i, w in enumerate(u.aligned.words) if i in u.dropped]
        phones.extend(_shift(p, u.start) for p in u.aligned.phones
                      if not any(w.start <= (p.start + p.end) // 2 < w.end for w in gone))
        kept.extend(_shift(w, u.start) for i, w in enumerate(u.aligned.words) if i not in u.dropped)
        for offset, future in u.gaps:
            phones.extend(_shift(p, u.start + offset) for p in future.result().phones)
    return Decoded(sorted(phones, key=lambda p: p.start), sorted(kept, key=lambda w: w.start))


def _shift(span: Span, frames: int) -> Span:
    return Span(span.label, span.start + frames, span.end + frames)
