"""PocketSphinx decoders, configured once per thread and reused.

A Decoder loads a 135k-word dictionary and the acoustic model (about 0.1 s) and is
not thread-safe, so each thread keeps its own pair. All times here are decoder
frames: 100 a second, 160 samples at 16 kHz.
"""

from __future__ import annotations

import threading
import warnings
from typing import TYPE_CHECKING, NamedTuple

if TYPE_CHECKING:
    import numpy as np
    from pocketsphinx import Decoder

RATE = 16000  # the acoustic model's sample rate
FRAME_RATE = 100  # decoder frames per second
SAMPLES_PER_FRAME = RATE // FRAME_RATE

# The forced-alignment FSG is a chain, so a wide beam costs little (measured: 30 s
# of speech aligned in 0.3 s at 1e-60, 0.4 s at 1e-300; 280 s in 5.7 s and 7.6 s).
# Without the noise floor (see pcm16), DESIGN.md's 1e-60 lost the path on 2 of 28
# synthetic clips and 1e-150 on none; with it all three aligned all 28: the width
# is margin. Fillers off: with the implicit <sil> self-loops the search often
# never reached the final word; pauses come from the energy instead. bestpath
# off: its lattice pass put a zero-length <s> first, which broke the phone pass.
# Not ds=2 (the acoustic model scored every other frame): it cost 30% less CPU with
# the same share of right mouth shapes on labelled clips, but made each result
# depend on what the decoder heard before (12 of 25 chunk pairs differed), so a
# pool's output would change with which worker got which chunk.
ALIGN_CONFIG = dict(lm=None, beam=1e-250, pbeam=1e-250, wbeam=1e-250, maxhmmpf=-1,
                    fsgusefiller=False, bestpath=False, loglevel="FATAL")
# Phone loop: a lower language weight than the default 6.5 gives about 11 phones a
# second on speech (close to real speaking rates) instead of 5.
PHONE_CONFIG = dict(lw=2.0, bestpath=False, loglevel="FATAL")
# Word recognition (no transcript): the wheel's English trigram model with
# PocketSphinx's default beams; tighter beams ran 3x faster but heard far fewer
# right words on espeak-ng speech (word error 0.66 at default beams, 0.90 at 1e-30).
WORD_CONFIG = dict(bestpath=False, loglevel="FATAL")
# Words spelled by our letter-to-sound rules accumulate in a reused decoder's
# dictionary; past this many, start a fresh decoder.
_MAX_ADDED_WORDS = 5000
_NOISE_FLOOR = 3e-4  # -70 dBFS: under any real recording's own noise


class Span(NamedTuple):
    """A labelled stretch of decoder frames, end exclusive."""

    label: str
    start: int
    end: int


class _Local(threading.local):
    align: Decoder | None = None
    phone: Decoder | None = None
    words: Decoder | None = None
    added_words: int = 0


_local = _Local()


def align_decoder() -> Decoder:
    """This thread's forced-alignment decoder (no language model)."""
    from pocketsphinx import Decoder

    if _local.align is None or _local.added_words > _MAX_ADDED_WORDS:
        _local.align = Decoder(**ALIGN_CONFIG)
        _local.added_words = 0
    return _local.align


def note_added_words(n: int) -> None:
    _local.added_words += n


def phone_decoder() -> Decoder:
    """This thread's phone-loop decoder (the wheel's English phone bigram model)."""
    from pocketsphinx import Decoder, get_model_path

    if _local.phone is None:
        _local.phone = Decoder(allphone=get_model_path("en-us/en-us-phone.lm.bin"), **PHONE_CONFIG)
    return _local.phone


def word_decoder() -> Decoder:
    """This thread's word decoder (the wheel's English language model and dictionary)."""
    from pocketsphinx import Decoder, get_model_path

    if _local.words is None:
        _local.words = Decoder(lm=get_model_path("en-us/en-us.lm.bin"), **WORD_CONFIG)
    return _local.words


def pcm16(samples: np.ndarray) -> bytes:
    """float32 samples in [-1, 1] as the 16-bit PCM the decoder reads, with a
    -70 dBFS noise floor added.

    Runs of exact zeros (synthetic voices put them inside words) make degenerate
    features that the models read as long silences: on espeak speech the phone loop
    called 65% of frames silence, 10% with the noise floor. The noise is seeded, so
    the same audio always decodes the same.
    """
    import numpy as np

    noise = np.random.default_rng(0).standard_normal(samples.size).astype(np.float32)
    noisy = samples + noise * _NOISE_FLOOR
    return (np.clip(noisy, -1.0, 1.0) * 32767.0).astype("<i2").tobytes()


def decode(decoder: Decoder, pcm: bytes) -> None:
    """Run one whole utterance through `decoder`'s active search."""
    # The model removes noise, and its noise estimate otherwise carries over from
    # the previous utterance: a reused decoder would then answer differently for
    # the same audio. pocketsphinx 5 calls start_stream deprecated; it is not.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        decoder.start_stream()
    decoder.start_utt()
    try:
        decoder.process_raw(pcm, full_utt=True)
    finally:
        decoder.end_utt()


def hyp_log_score(decoder: Decoder) -> float | None:
    """The best path's score in the decoder's log domain, or None if it has none.

    The Python API returns exp(score); very long utterances underflow to 0.
    """
    hyp = decoder.hyp()
    if hyp is None or not hyp.score > 0:
        return None
    return float(decoder.logmath.log(hyp.score))
