"""Transcript normalisation: free text to the lowercase words PocketSphinx aligns.

Numbers become words ("10" -> "ten", "2nd" -> "second", "3.5" -> "three point
five"), punctuation goes, and `letter_to_sound` spells words the dictionary lacks.
"""

from __future__ import annotations

import re
import unicodedata

_ONES = ("zero one two three four five six seven eight nine ten eleven twelve thirteen "
         "fourteen fifteen sixteen seventeen eighteen nineteen").split()
_TENS = "_ _ twenty thirty forty fifty sixty seventy eighty ninety".split()
_SCALES = ((10**12, "trillion"), (10**9, "billion"), (10**6, "million"), (1000, "thousand"))
_ORDINAL_WORDS = {"one": "first", "two": "second", "three": "third", "five": "fifth",
                  "eight": "eighth", "nine": "ninth", "twelve": "twelfth"}
_SYMBOLS = {"&": " and ", "%": " percent ", "+": " plus ", "@": " at ", "=": " equals "}
_CURRENCY = {"$": "dollars", "€": "euros", "£": "pounds"}
# The longest number spelled out; beyond it digits are read one by one.
_MAX_NUMBER = 10**15 - 1

_NUMBER_RE = re.compile(
    r"(?P<cur>[$€£])?(?P<int>\d{1,3}(?:,\d{3})+|\d+)(?:\.(?P<frac>\d+))?(?P<ord>st|nd|rd|th)?(?![\w])")


def number_to_words(n: int) -> list[str]:
    """Spell a non-negative integer: 1205 -> ["one", "thousand", "two", "hundred", "five"]."""
    if n < 0:
        return ["minus", *number_to_words(-n)]
    if n > _MAX_NUMBER:
        return [_ONES[int(d)] for d in str(n)]
    if n < 20:
        return [_ONES[n]]
    if n < 100:
        tens, ones = divmod(n, 10)
        return [_TENS[tens]] + ([_ONES[ones]] if ones else [])
    if n < 1000:
        hundreds, rest = divmod(n, 100)
        return [_ONES[hundreds], "hundred"] + (number_to_words(rest) if rest else [])
    for value, name in _SCALES:
        if n >= value:
            high, rest = divmod(n, value)
            return number_to_words(high) + [name] + (number_to_words(rest) if rest else [])
    raise AssertionError("unreachable")


def _ordinal(words: list[str]) -> list[str]:
    last = words[-1]
    if last in _ORDINAL_WORDS:
        last = _ORDINAL_WORDS[last]
    elif last.endswith("y"):
        last = last[:-1] + "ieth"
    else:
        last += "th"
    return words[:-1] + [last]


def _spell_number(match: re.Match) -> str:
    digits = match.group("int").replace(",", "")
    # A leading zero ("007") is read digit by digit, as people say it.
    if len(digits) > 1 and digits.startswith("0"):
        words = [_ONES[int(d)] for d in digits]
    else:
        words = number_to_words(int(digits))
    if match.group("frac"):
        words += ["point"] + [_ONES[int(d)] for d in match.group("frac")]
    elif match.group("ord"):
        words = _ordinal(words)
    if match.group("cur"):
        words.append(_CURRENCY[match.group("cur")])
    return " " + " ".join(words) + " "


def normalize_transcript(text: str) -> list[str]:
    """Lowercase words of `text`: numbers spelled, accents and punctuation removed.

    Apostrophes inside words stay ("don't"); hyphens split words.
    """
    text = unicodedata.normalize("NFKC", text)
    text = text.replace("\u2019", "'").replace("\u2018", "'").replace("`", "'")
    text = _NUMBER_RE.sub(_spell_number, text)
    for sym, spoken in _SYMBOLS.items():
        text = text.replace(sym, spoken)
    # Strip accents: "café" -> "cafe"; letters outside Latin are dropped below.
    text = unicodedata.normalize("NFKD", text)
    text = "".join(ch for ch in text if not unicodedata.combining(ch)).lower()
    # Digits glued to letters ("mp3", "4k") are read one by one.
    text = re.sub(r"\d", lambda m: f" {_ONES[int(m.group(0))]} ", text)
    words = (token.strip("'") for token in re.split(r"[^a-z']+", text))
    return [w for w in words if w]


# --- letter-to-sound rules --------------------------------------------------------
# Deliberately simple: the phones only need to be right enough to pick mouth shapes
# and to give the aligner a plausible length for a word the dictionary lacks.

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
_VOWELS = set("aeiouy")


def letter_to_sound(word: str) -> list[str]:
    """ARPAbet phones for `word` by simple English spelling rules (no stress marks)."""
    w = re.sub(r"[^a-z]", "", word.lower())
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
            ch = w[i]
            nxt = w[i + 1] if i + 1 < len(w) else ""
            if ch == "c" and nxt in ("e", "i", "y"):
                sound = "S"
            elif ch == "g" and nxt in ("e", "i", "y"):
                sound = "JH"
            elif ch == "y":
                sound = "Y" if i == 0 else ("IY" if i == len(w) - 1 else "IH")
            elif ch == "s" and i > 0 and i == len(w) - 1 and w[i - 1] not in "sptkf":
                sound = "Z"
            elif i + 1 < len(w) and w[i + 1] == ch:  # doubled letter: one sound
                i += 1
                sound = _SINGLE[ch]
            else:
                sound = _SINGLE[ch]
            phones.extend(sound.split())
            i += 1
    return phones
