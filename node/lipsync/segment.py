"""Where to cut speech: at pauses, into chunks the decoders handle fast.

PocketSphinx gets slower per second as an utterance grows (its search keeps every
frame's backpointers): measured on synthetic narration, the word pass ran at 85x
real time on 6 s utterances, 68x on 66 s and 24x on 11 minutes, where it also held
150 MB more. Chunks of a few seconds, cut where the speaker pauses, keep both speed
and memory flat however long the audio, and can be decoded in parallel.
"""

from __future__ import annotations

import numpy as np

from node.lipsync.energy import Levels

# A chunk grows to about this many 10 ms frames before it is cut at the next pause...
CHUNK_TARGET_FRAMES = 600
# ...and never past this: speech without any pause is cut at its quietest frame.
CHUNK_MAX_FRAMES = 2000
# Quiet this long between loud frames is a pause between words, where a cut is safe.
MIN_PAUSE_FRAMES = 8
# A pause this long always ends a chunk: decoding silence is wasted work, and the
# aligner (which has no silence model) would stretch words over it.
LONG_PAUSE_FRAMES = 50
# A chunk whose words do not fit is re-aligned piece by piece, pieces at least this long.
PIECE_MIN_FRAMES = 150
# Frames kept on each side of a chunk's loud frames: soft consonants at the edges
# (an initial F or H, a final S) fall under the loudness threshold.
EDGE_FRAMES = 6


def speech_chunks(levels: Levels) -> list[tuple[int, int]]:
    """Frame ranges [start, end) to decode, in order and not overlapping; the frames
    between them are pauses (rest)."""
    phrases = _split_long(_phrases(levels.quiet), levels.rms)
    if not phrases:
        return []
    chunks: list[tuple[int, int]] = []
    i = 0
    while i < len(phrases):
        start = phrases[i][0]
        last = i  # the furthest phrase that keeps the chunk under the maximum
        while last + 1 < len(phrases) and phrases[last + 1][1] - start <= CHUNK_MAX_FRAMES \
                and phrases[last + 1][0] - phrases[last][1] < LONG_PAUSE_FRAMES:
            last += 1
        # Once the chunk is long enough, cut at the longest pause before it is half as
        # long again: sentence ends rather than commas, and chunks of even size.
        near = [j for j in range(i, last + 1)
                if CHUNK_TARGET_FRAMES <= phrases[j][1] - start <= CHUNK_TARGET_FRAMES * 3 // 2]
        if near and last < len(phrases) - 1:
            cut = max(near, key=lambda j: phrases[j + 1][0] - phrases[j][1])
        else:
            cut = next((j for j in range(i, last + 1) if phrases[j][1] - start >= CHUNK_TARGET_FRAMES), last)
        chunks.append((start, phrases[cut][1]))
        i = cut + 1
    return _widen(chunks, levels.quiet.size)


def pieces(quiet: np.ndarray, start: int, end: int) -> list[tuple[int, int]]:
    """The chunk [start, end) cut at its pauses into pieces of PIECE_MIN_FRAMES or more."""
    merged: list[list[int]] = []
    for a, b in _phrases(quiet[start:end]):
        if merged and (b - merged[-1][0] < PIECE_MIN_FRAMES or merged[-1][1] - merged[-1][0] < PIECE_MIN_FRAMES):
            merged[-1][1] = b
        else:
            merged.append([a, b])
    if len(merged) > 1 and merged[-1][1] - merged[-1][0] < PIECE_MIN_FRAMES:
        tail = merged.pop()  # a short tail joins the piece before it
        merged[-1][1] = tail[1]
    return [(start + a, start + b) for a, b in _widen([(a, b) for a, b in merged], end - start)]


def _phrases(quiet: np.ndarray) -> list[tuple[int, int]]:
    """Runs of loud frames, joined across gaps shorter than a pause."""
    loud = np.flatnonzero(~quiet)
    if loud.size == 0:
        return []
    gaps = np.flatnonzero(np.diff(loud) > MIN_PAUSE_FRAMES)
    starts = np.concatenate([[loud[0]], loud[gaps + 1]])
    ends = np.concatenate([loud[gaps], [loud[-1]]]) + 1
    return [(int(a), int(b)) for a, b in zip(starts, ends)]


def _split_long(phrases: list[tuple[int, int]], rms: np.ndarray) -> list[tuple[int, int]]:
    """Phrases longer than the maximum, cut at their quietest frame past the target."""
    out: list[tuple[int, int]] = []
    for a, b in phrases:
        while b - a > CHUNK_MAX_FRAMES:
            window = rms[a + CHUNK_TARGET_FRAMES: a + CHUNK_MAX_FRAMES]
            cut = a + CHUNK_TARGET_FRAMES + int(np.argmin(window))
            out.append((a, cut))
            a = cut
        out.append((a, b))
    return out


def _widen(chunks: list[tuple[int, int]], n: int) -> list[tuple[int, int]]:
    """Add EDGE_FRAMES on each side, never past a neighbour's edge or the audio."""
    out = []
    for k, (a, b) in enumerate(chunks):
        lo = chunks[k - 1][1] if k else 0
        hi = chunks[k + 1][0] if k + 1 < len(chunks) else n
        out.append((max(lo if lo == 0 else (lo + a + 1) // 2, a - EDGE_FRAMES),
                    min(hi if hi == n else (b + hi) // 2, b + EDGE_FRAMES)))
    return out
