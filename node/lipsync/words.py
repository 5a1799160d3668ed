"""Word recognition without a transcript: PocketSphinx's English language model.

Without a transcript the engine hears words chunk by chunk (in the worker pool), then
aligns those words like a transcript: phones timed inside real words, and word timings
for captions. Measured on labelled espeak-ng clips (bench/lipsync.py): 0.852 of frames
right against the phone loop's 0.820, at about 9x real time against 43x on two cores;
the words themselves are often wrong on synthetic voices (word error rate 0.75) and
right on the real recording in assets/samples. The phone loop stays as the
"phonetic" recognizer (any language, faster).
"""

from __future__ import annotations

import numpy as np

from node.lipsync import sphinx

# Fillers and noise the language model's dictionary writes in brackets or <>.
_NOT_WORDS = ("<", "[", "+")


def recognize_words(samples: np.ndarray) -> list[str]:
    """The words heard in 16 kHz `samples`, in order, as the dictionary spells them."""
    decoder = sphinx.word_decoder()
    try:
        sphinx.decode(decoder, sphinx.pcm16(samples))
    except RuntimeError:
        return []
    out = []
    for seg in decoder.seg() or ():
        word = seg.word.split("(")[0]  # "read(2)" is a second pronunciation of "read"
        if word and not word.startswith(_NOT_WORDS):
            out.append(word)
    return out


def recognize_chunks(samples: np.ndarray, chunks: list[tuple[int, int]], pool) -> list[str]:
    """Words of every chunk (absolute 10 ms frames), decoded in `pool`, in order."""
    spf = sphinx.SAMPLES_PER_FRAME
    futures = [pool.submit(recognize_words, samples[a * spf:b * spf]) for a, b in chunks]
    return [w for f in futures for w in f.result()]
