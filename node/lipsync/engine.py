"""The lip-sync engine: audio (and maybe its transcript) to a mouth-cue timeline.

With a transcript, the words are force-aligned and their phones timed; without
one, or when the transcript does not fit the audio, phones are recognised. Either
way the phones become Rhubarb mouth shapes (see shapes.py).
"""

from __future__ import annotations

import logging
import math
import os
from typing import IO, Any

import numpy as np

from farm.timeline import Timeline, WordTiming
from node.lipsync import energy
from node.lipsync.align import align
from node.lipsync.phones import recognize_phones
from node.lipsync.shapes import build_cues
from node.lipsync.sphinx import FRAME_RATE, RATE, SAMPLES_PER_FRAME, Span
from node.lipsync.text import normalize_transcript

log = logging.getLogger(__name__)

# The transcript fits the audio unless forcing it scores this much worse, per
# 10 ms frame, than the free phone loop on the same audio (log scores). Measured
# on 14 right transcripts (synthetic and real speech; noisy, quiet, slowed, sped
# up): -4.5 to +2.8; one wrong word in four: -9.7; only the first half of the
# transcript: -14.7; the wrong sentence: -36 to -54.
MISMATCH_PER_FRAME = 12.0
# Audio beyond the first and last loud frame that the recognisers still hear.
_MARGIN_FRAMES = 10


def lipsync(samples: np.ndarray, transcript: str | None = None, *, rate: int = RATE) -> Timeline:
    """Mouth cues for mono `samples` (float in [-1, 1], or int16 PCM) at `rate` Hz.

    `Timeline.words` holds the aligned words as normalised for alignment ("10"
    becomes "ten"), empty when no transcript was given or trusted.

    Never raises for a transcript that does not match (it falls back to phone
    recognition); silence gives an all-rest (X) timeline.
    """
    samples = np.asarray(samples)
    if samples.dtype == np.int16:  # PCM as read from a WAV file
        samples = samples / np.float32(32768)
    samples = samples.astype(np.float32, copy=False)
    if not np.isfinite(samples).all():
        samples = np.nan_to_num(samples, nan=0.0, posinf=1.0, neginf=-1.0)
    if samples.ndim != 1:
        raise ValueError(f"lipsync wants mono samples of shape (n,), got {samples.shape}")
    if rate <= 0:
        raise ValueError(f"rate must be > 0, got {rate}")
    duration = samples.size / rate
    if rate != RATE:
        from farm.audio import resample

        samples = resample(samples, rate, RATE)
    n_frames = math.ceil(duration * FRAME_RATE - 1e-9)
    levels = energy.measure(samples, n_frames)
    if levels is None:
        return Timeline.silent(duration)

    # Only the stretch with sound goes to the recognisers: faster, and the aligner
    # (run without silence fillers) then has no leading silence to stretch words over.
    first, last = levels.speech_bounds(_MARGIN_FRAMES)
    speech = samples[first * SAMPLES_PER_FRAME: last * SAMPLES_PER_FRAME]
    words = normalize_transcript(transcript) if transcript else []
    phones: list[Span] | None = None
    word_spans: list[Span] = []
    loop = recognize_phones(speech)  # the fallback, and the yardstick for the transcript
    if words:
        aligned = align(speech, words)
        if aligned is not None and _fits(aligned.score, loop.score, last - first):
            phones, word_spans = aligned.phones, aligned.words
        elif aligned is not None:
            log.info("the transcript does not fit the audio (score %s against %s); "
                     "using phone recognition", aligned.score, loop.score)
    if phones is None:
        phones = loop.phones
    phones = [Span(p.label, p.start + first, p.end + first) for p in phones]
    cues = build_cues(phones, levels, duration)
    timed_words = tuple(_word_timing(Span(w.label, w.start + first, w.end + first), levels, duration)
                        for w in word_spans)
    return Timeline(duration, tuple(cues), timed_words)


def lipsync_file(path: str | os.PathLike | IO[bytes] | Any, transcript: str | None = None, *,
                 max_duration_s: float | None = None) -> Timeline:
    """`lipsync` on any audio file PyAV decodes (InvalidInput if it cannot)."""
    from farm.audio import decode_audio

    samples = decode_audio(os.fspath(path) if isinstance(path, os.PathLike) else path,
                           RATE, max_duration_s=max_duration_s)
    return lipsync(samples, transcript, rate=RATE)


def _fits(align_score: float | None, loop_score: float | None, n_frames: int) -> bool:
    """Whether the forced alignment scored close enough to the free phone loop."""
    if align_score is None or loop_score is None or n_frames <= 0:
        return True  # no yardstick (scores underflow on very long audio): trust it
    return (align_score - loop_score) / n_frames >= -MISMATCH_PER_FRAME


def _word_timing(span: Span, levels: energy.Levels, duration: float) -> WordTiming:
    """Seconds, without the quiet edges the aligner stretched the word over."""
    a, b = max(0, span.start), min(levels.quiet.size, span.end)
    while b - a > 1 and levels.quiet[a]:
        a += 1
    while b - a > 1 and levels.quiet[b - 1]:
        b -= 1
    end = min(b / FRAME_RATE, duration)
    return WordTiming(min(a / FRAME_RATE, end), end, span.label)
