"""Phone recognition without a transcript: PocketSphinx's phone loop.

The wheel ships `en-us-phone.lm.bin`, a phone bigram model; the allphone search
finds the likeliest phone sequence. It is far less accurate than alignment with
a transcript, but mouth shapes forgive confusions inside a shape's group.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from node.lipsync import sphinx
from node.lipsync.sphinx import Span

SILENCE = "SIL"


@dataclass(frozen=True)
class PhoneResult:
    phones: list[Span]  # ARPAbet, or SIL for silence and noise
    score: float | None  # log score of the best path (see sphinx.hyp_log_score)


def recognize_phones(samples: np.ndarray) -> PhoneResult:
    """The phones heard in 16 kHz `samples`, with frame times."""
    decoder = sphinx.phone_decoder()
    try:
        sphinx.decode(decoder, sphinx.pcm16(samples))
    except RuntimeError:
        return PhoneResult([], None)
    phones = []
    for seg in decoder.seg() or ():
        # Fillers come as SIL, +NSN+ (noise), +SPN+ (spoken noise) and the like.
        label = seg.word if seg.word.isalpha() and seg.word.isupper() else SILENCE
        phones.append(Span(label, seg.start_frame, seg.end_frame + 1))
    return PhoneResult(phones, sphinx.hyp_log_score(decoder))
