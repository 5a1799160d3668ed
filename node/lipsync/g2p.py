"""Letter-to-sound: ARPAbet phones for words the pronouncing dictionary lacks.

Deliberately simple: the phones only need to be right enough to pick mouth shapes
and to give the aligner a plausible length for the word. Words without a vowel
letter ("bbc", "html") are read as letter names, as people say acronyms.
"""

from __future__ import annotations

import re

_MULTI = [  # longest first
    ("tion", "SH AH N"), ("sion", "ZH AH N"), ("ough", "OW"), ("augh", "AO"),
    ("eigh", "EY"), ("igh", "AY"), ("tch", "CH"), ("dge", "JH"), ("sch", "S K"),
    ("ch", "CH"), ("sh", "SH"), ("th", "TH"), ("ph", "F"), ("wh", "W"), ("ng", "NG"),
    ("ck", "K"), ("qu", "K W"), ("gh", ""), ("kn", "N"), ("wr", "R"),
    ("ee", "IY"), ("ea", "IY"), ("oo", "UW"), ("ou", "AW"), ("ow", "OW"), ("oi", "OY"),
    ("oy", "OY"), ("ai", "EY"), ("ay", "EY"), ("ey", "EY"), ("oa", "OW"), ("au", "AO"),
    ("aw", "AO"), ("ew", "UW"), ("ie", "IY"), ("ue", "UW"), ("ar", "AA R"), ("or", "AO R"),
    ("er", "ER"), ("ir", "ER"), ("ur", "ER"),
]
_SINGLE = {
    "a": "AE", "b": "B", "c": "K", "d": "D", "e": "EH", "f": "F", "g": "G", "h": "HH",
    "i": "IH", "j": "JH", "k": "K", "l": "L", "m": "M", "n": "N", "o": "AA", "p": "P",
    "q": "K", "r": "R", "s": "S", "t": "T", "u": "AH", "v": "V", "w": "W", "x": "K S",
    "y": "Y", "z": "Z",
}
LETTER_NAMES = {
    "a": "EY", "b": "B IY", "c": "S IY", "d": "D IY", "e": "IY", "f": "EH F", "g": "JH IY",
    "h": "EY CH", "i": "AY", "j": "JH EY", "k": "K EY", "l": "EH L", "m": "EH M", "n": "EH N",
    "o": "OW", "p": "P IY", "q": "K Y UW", "r": "AA R", "s": "EH S", "t": "T IY", "u": "Y UW",
    "v": "V IY", "w": "D AH B AH L Y UW", "x": "EH K S", "y": "W AY", "z": "Z IY",
}
_VOWELS = set("aeiouy")


def letter_to_sound(word: str) -> list[str]:
    """ARPAbet phones for `word` by simple English spelling rules (no stress marks)."""
    w = re.sub(r"[^a-z]", "", word.lower())
    if w and not _VOWELS & set(w):  # "bbc", "html": spelled out
        return [p for ch in w for p in LETTER_NAMES[ch].split()]
    # A final silent e after a consonant ("make", "time").
    if len(w) > 2 and w.endswith("e") and w[-2] not in _VOWELS:
        w = w[:-1]
    phones: list[str] = []
    i = 0
    while i < len(w):
        for chunk, sound in _MULTI:
            if w.startswith(chunk, i):
                phones.extend(sound.split())
                i += len(chunk)
                break
        else:
            phones.extend(_single(w, i).split())
            i += 2 if i + 1 < len(w) and w[i + 1] == w[i] else 1  # a doubled letter: one sound
    return phones


def _single(w: str, i: int) -> str:
    ch, nxt = w[i], w[i + 1] if i + 1 < len(w) else ""
    if ch == "c" and nxt in ("e", "i", "y"):
        return "S"
    if ch == "g" and nxt in ("e", "i", "y"):
        return "JH"
    if ch == "y":
        return "Y" if i == 0 else ("IY" if i == len(w) - 1 else "IH")
    if ch == "s" and i > 0 and i == len(w) - 1 and w[i - 1] not in "sptkf":
        return "Z"
    return _SINGLE[ch]
