"""The lip-sync engine: audio (and maybe its transcript) to a mouth-cue timeline.

The speech is cut at pauses into chunks (segment.py) decoded in parallel
(decode.py, pool.py). With a transcript, each chunk is force-aligned to the words
it holds and its phones timed; without one, where the transcript does not fit, or
with the phonetic recogniser, phones are recognised. Either way the phones become
Rhubarb mouth shapes (shapes.py).
"""

from __future__ import annotations

import logging
import math
import os
from dataclasses import dataclass
from concurrent.futures.process import BrokenProcessPool
from typing import IO, Any

import numpy as np

from farm.errors import InvalidInput
from farm.presets import RECOGNIZERS, TIER_LIMITS, Tier
from farm.timeline import Timeline, WordTiming
from node.lipsync import energy, pool
from node.lipsync.decode import decode_chunks
from node.lipsync.segment import speech_chunks
from node.lipsync.shapes import RULES, ShapeRules, build_cues
from node.lipsync.sphinx import FRAME_RATE, RATE, Span
from node.lipsync.words import recognize_chunks
from node.lipsync.text import latin_share, normalize_transcript

log = logging.getLogger(__name__)

# The longest audio accepted: the enterprise tier's configured ceiling (one hour).
MAX_AUDIO_S = TIER_LIMITS[Tier.ENTERPRISE].max_audio_s
# The longest transcript accepted: an hour of fast speech is about 12,000 words.
MAX_TRANSCRIPT_WORDS = 20_000
MAX_TRANSCRIPT_CHARS = 20 * MAX_TRANSCRIPT_WORDS  # so one giant "word" is refused too
# Below this share of Latin letters a transcript is in another script (Cyrillic,
# CJK...): the English models cannot align it, so the audio is recognised instead.
MIN_LATIN_SHARE = 0.5
# Encoders pad the last audio frame; do not call that "too long".
_LENGTH_SLACK_S = 0.05


def lipsync(samples: np.ndarray, transcript: str | None = None, *, rate: int = RATE,
            recognizer: str = "pocketsphinx", workers: int | None = None,
            max_audio_s: float | None = MAX_AUDIO_S,
            max_transcript_words: int = MAX_TRANSCRIPT_WORDS, rules: ShapeRules = RULES) -> Timeline:
    """Mouth cues for mono `samples` (float in [-1, 1], or int16 PCM) at `rate` Hz.

    `recognizer` "pocketsphinx" aligns the transcript when there is one (English), and
    without one recognises English words and aligns those (node/lipsync/words.py);
    "phonetic" ignores any transcript and recognises phones, for any language (as does
    "pocketsphinx" for a transcript in another script).
    `workers` processes decode long audio in parallel (default: one per CPU).
    `Timeline.words` holds the aligned words as normalised for alignment ("10"
    becomes "ten"), empty when no transcript was given or none of it fit.

    Raises InvalidInput "audio_too_long" past `max_audio_s` seconds and
    "transcript_too_long" past `max_transcript_words` words. Never fails for a
    transcript that does not match (that audio is recognised); silence gives an
    all-rest (X) timeline.
    """
    samples = _mono_float(samples)
    if rate <= 0:
        raise ValueError(f"rate must be > 0, got {rate}")
    if recognizer not in RECOGNIZERS:
        raise InvalidInput(f"unknown recognizer {recognizer!r}; expected one of {', '.join(RECOGNIZERS)}",
                           code="invalid_recognizer")
    duration = samples.size / rate
    if max_audio_s is not None and duration > max_audio_s + _LENGTH_SLACK_S:
        raise InvalidInput(f"the audio lasts {duration:.1f} s; the limit is {max_audio_s:g} s",
                           code="audio_too_long")
    words = transcript_words(transcript, max_transcript_words) if recognizer == "pocketsphinx" else []
    # No transcript (or one without words): hear the words. One in another script: phones.
    hear_words = (recognizer == "pocketsphinx" and not words
                  and (transcript is None or latin_share(transcript) >= MIN_LATIN_SHARE))
    return timeline_from(analyse(samples, rate, words, workers, recognize=hear_words), rules)


@dataclass(frozen=True)
class Analysis:
    """What the decoder heard: timed phones and words (10 ms frames) and loudness;
    `levels` is None for silence."""

    duration: float
    levels: energy.Levels | None
    phones: list[Span]
    words: list[Span]


def analyse(samples: np.ndarray, rate: int, words: list[str], workers: int | None,
            recognize: bool = False) -> Analysis:
    """Decode mono float `samples` (checked by `lipsync`): aligned to `words`, or
    recognised; with `recognize` and no words, to the words the language model hears."""
    duration = samples.size / rate
    if rate != RATE:
        from farm.audio import resample

        samples = resample(samples, rate, RATE)
    n_frames = math.ceil(duration * FRAME_RATE - 1e-9)
    levels = energy.measure(samples, n_frames)
    if levels is None:
        return Analysis(duration, None, [], [])
    chunks = speech_chunks(levels)
    workers = pool.default_workers() if workers is None else max(1, int(workers))
    executor = pool.executor(workers, sum(b - a for a, b in chunks))
    try:
        if recognize and not words:
            words = recognize_chunks(samples, chunks, executor)
        decoded = decode_chunks(samples, chunks, words, levels.quiet, executor, workers)
    except BrokenProcessPool:
        log.warning("a lip-sync worker process died; decoding in this process instead")
        pool.discard(executor)
        if recognize and not words:
            words = recognize_chunks(samples, chunks, pool.INLINE)
        decoded = decode_chunks(samples, chunks, words, levels.quiet, pool.INLINE)
    return Analysis(duration, levels, decoded.phones, decoded.words)


def timeline_from(analysis: Analysis, rules: ShapeRules = RULES) -> Timeline:
    """The mouth cues and word timings for what was heard, under `rules`."""
    if analysis.levels is None:
        return Timeline.silent(analysis.duration)
    cues = build_cues(analysis.phones, analysis.levels, analysis.duration, rules)
    timed_words = tuple(_word_timing(w, analysis.levels, analysis.duration) for w in analysis.words)
    return Timeline(analysis.duration, tuple(cues), timed_words)


def lipsync_file(path: str | os.PathLike | IO[bytes] | Any, transcript: str | None = None, *,
                 recognizer: str = "pocketsphinx", workers: int | None = None,
                 max_audio_s: float | None = MAX_AUDIO_S,
                 max_transcript_words: int = MAX_TRANSCRIPT_WORDS) -> Timeline:
    """`lipsync` on any audio file PyAV decodes (InvalidInput "unreadable_audio" if it
    cannot; "audio_too_long" as soon as decoding passes `max_audio_s`)."""
    from farm.audio import decode_audio

    if transcript is not None and recognizer == "pocketsphinx":
        transcript_words(transcript, max_transcript_words)  # refuse before decoding
    if isinstance(path, (str, os.PathLike)) and workers != 1:
        _prestart_pool(path, workers)
    samples = decode_audio(os.fspath(path) if isinstance(path, os.PathLike) else path,
                           RATE, max_duration_s=max_audio_s)
    return lipsync(samples, transcript, rate=RATE, recognizer=recognizer, workers=workers,
                   max_audio_s=max_audio_s, max_transcript_words=max_transcript_words)


def _prestart_pool(path: str | os.PathLike, workers: int | None) -> None:
    """Let the workers start and load their models while the audio decodes."""
    from farm.audio import declared_duration

    try:
        seconds = declared_duration(os.fspath(path))
    except (InvalidInput, OSError):
        return  # decode_audio reports it
    if seconds is None:
        return
    workers = pool.default_workers() if workers is None else max(1, int(workers))
    pool.prestart(workers, int(seconds * FRAME_RATE))


def transcript_words(transcript: str | None, max_words: int = MAX_TRANSCRIPT_WORDS) -> list[str]:
    """The words to align: [] for no transcript, an empty one, or one in another script.

    Raises InvalidInput "transcript_too_long" past `max_words` words (counted before
    normalisation too, so a huge text is refused before any work on it).
    """
    if transcript is None:
        return []
    if not isinstance(transcript, str):
        raise InvalidInput(f"the transcript must be text, got {type(transcript).__name__}",
                           code="invalid_transcript")
    if len(transcript) > max(MAX_TRANSCRIPT_CHARS, 20 * max_words) or len(transcript.split()) > max_words:
        raise InvalidInput(f"the transcript has {len(transcript.split()):,} words "
                           f"({len(transcript):,} characters); the limit is {max_words:,} words",
                           code="transcript_too_long")
    if latin_share(transcript) < MIN_LATIN_SHARE:
        log.info("the transcript is not in the Latin script; recognising phones instead")
        return []
    words = normalize_transcript(transcript)
    if len(words) > max_words:  # "$1,234,567" is one token but six words
        raise InvalidInput(f"the transcript reads as {len(words):,} words; the limit is {max_words:,}",
                           code="transcript_too_long")
    return words


def _mono_float(samples: np.ndarray) -> np.ndarray:
    samples = np.asarray(samples)
    if samples.dtype == np.int16:  # PCM as read from a WAV file
        samples = samples / np.float32(32768)
    samples = samples.astype(np.float32, copy=False)
    if samples.ndim != 1:
        raise ValueError(f"lipsync wants mono samples of shape (n,), got {samples.shape}")
    if not np.isfinite(samples).all():
        samples = np.nan_to_num(samples, nan=0.0, posinf=1.0, neginf=-1.0)
    return samples


def _word_timing(span: Span, levels: energy.Levels, duration: float) -> WordTiming:
    """Seconds, without the quiet edges the aligner stretched the word over."""
    a, b = max(0, span.start), min(levels.quiet.size, span.end)
    while b - a > 1 and levels.quiet[a]:
        a += 1
    while b - a > 1 and levels.quiet[b - 1]:
        b -= 1
    end = min(b / FRAME_RATE, duration)
    return WordTiming(min(a / FRAME_RATE, end), end, span.label)
