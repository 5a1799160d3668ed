"""Transcript normalisation: free text to the lowercase words PocketSphinx aligns.

Written text says less than speech does: "$3.50" is "three dollars fifty cents",
"1999" is "nineteen ninety nine", "Dr." is "doctor". Each rule here spells one such
habit the way a narrator reads it aloud; words the dictionary lacks get phones
from `g2p.letter_to_sound` later, at alignment.
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
_SYMBOLS = {"&": " and ", "%": " percent ", "+": " plus ", "@": " at ", "=": " equals ",
            "°": " degrees ", "#": " number "}
# (singular, plural, hundredth singular, hundredth plural)
_CURRENCY = {"$": ("dollar", "dollars", "cent", "cents"), "€": ("euro", "euros", "cent", "cents"),
             "£": ("pound", "pounds", "penny", "pence"), "¥": ("yen", "yen", "sen", "sen")}
_FRACTIONS = {"1/2": "one half", "1/3": "one third", "2/3": "two thirds", "1/4": "one quarter",
              "3/4": "three quarters"}
# Abbreviations read as words. "St." is "saint" before a name, "street" otherwise.
_ABBREVIATIONS = {
    "dr": "doctor", "mr": "mister", "mrs": "missus", "ms": "miz", "prof": "professor",
    "jr": "junior", "sr": "senior", "mt": "mount", "vs": "versus", "etc": "et cetera",
    "approx": "approximately", "dept": "department", "inc": "incorporated", "ltd": "limited",
    "co": "company", "ave": "avenue", "blvd": "boulevard", "no": "number", "fig": "figure",
}
# The longest number spelled out; beyond it digits are read one by one.
_MAX_NUMBER = 10**15 - 1
# Four-digit numbers in this range are read as years ("nineteen ninety nine").
_YEARS = range(1100, 2100)

_NUMBER_RE = re.compile(
    r"(?P<int>\d{1,3}(?:,\d{3})+|\d+)(?:\.(?P<frac>\d+))?(?P<ord>st|nd|rd|th)?(?![\w])")
_MONEY_RE = re.compile(
    r"(?P<cur>[$€£¥])\s?(?P<int>\d{1,3}(?:,\d{3})+|\d+)(?:\.(?P<frac>\d+))?"
    r"(?:\s?(?P<scale>thousand|million|billion|trillion|k|m|bn)\b)?", re.IGNORECASE)
_SCALE_WORDS = {"k": "thousand", "m": "million", "bn": "billion"}
_ABBREV_RE = re.compile(r"\b(" + "|".join(_ABBREVIATIONS) + r"|st)\.(?=\s+(\S))?", re.IGNORECASE)
_TITLE_RE = re.compile(r"\b(Dr|Mr|Mrs|Ms)\b(?=\s+[A-Z])")  # British style, no full stop
_DOTTED_RE = re.compile(r"\b((?:[A-Za-z]\.){2,})")  # U.S.A., e.g., a.m.
_TIME_RE = re.compile(r"\b(\d{1,2}):(\d{2})\b")
_DECADE_RE = re.compile(r"(?<![\d.,])'?(\d{2}|\d{4})s\b")
_YEAR_RE = re.compile(r"(?<![\d.,$€£¥-])(\d{4})(?![\d,.]\d|st|nd|rd|th|%)")
_RANGE_RE = re.compile(r"(?<=\d)\s*[-–]\s*(?=\d)")
_MINUS_RE = re.compile(r"(?<![\w.])[-−](?=\d)")
_FRACTION_RE = re.compile(r"(?<![\d/])([123])/([234])(?![\d/])")
_LATIN_LETTER = re.compile(r"[a-z]")


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


def year_to_words(n: int) -> list[str]:
    """A year as it is said: 1999 -> nineteen ninety nine, 1905 -> nineteen oh five,
    1900 -> nineteen hundred, 2005 -> two thousand five, 2024 -> twenty twenty four."""
    high, low = divmod(n, 100)
    if 2000 <= n < 2010:
        return number_to_words(n)
    if low == 0:
        return number_to_words(high) + ["hundred"]
    return number_to_words(high) + (["oh", _ONES[low]] if low < 10 else number_to_words(low))


def _ordinal(words: list[str]) -> list[str]:
    last = words[-1]
    if last in _ORDINAL_WORDS:
        last = _ORDINAL_WORDS[last]
    elif last.endswith("y"):
        last = last[:-1] + "ieth"
    else:
        last += "th"
    return words[:-1] + [last]


def _plural_number(words: list[str]) -> list[str]:
    """"ninety" -> "nineties", "eighty" -> "eighties", "hundred" -> "hundreds"."""
    last = words[-1]
    return words[:-1] + [last[:-1] + "ies" if last.endswith("y") else last + "s"]


def _digits(text: str) -> list[str]:
    return [_ONES[int(d)] for d in text]


def _integer(digits: str) -> list[str]:
    digits = digits.replace(",", "")
    # A leading zero ("007") is read digit by digit, as people say it.
    if len(digits) > 1 and digits.startswith("0"):
        return _digits(digits)
    return number_to_words(int(digits))


def _spell_money(m: re.Match) -> str:
    one, many, cent, cents = _CURRENCY[m.group("cur")]
    whole, frac, scale = int(m.group("int").replace(",", "")), m.group("frac"), m.group("scale")
    if scale:  # $1.5 million: one point five million dollars
        words = _integer(m.group("int")) + (["point", *_digits(frac)] if frac else [])
        return " ".join(words + [_SCALE_WORDS.get(scale.lower(), scale.lower()), many]) + " "
    if frac and len(frac) == 2:  # $3.50: three dollars fifty cents
        hundredths = int(frac)
        words = (_integer(m.group("int")) + [one if whole == 1 else many]) if whole else []
        if hundredths:
            words += number_to_words(hundredths)
            words.append(cent if hundredths == 1 else cents)
        return " ".join(words or ["zero", many]) + " "
    words = _integer(m.group("int")) + (["point", *_digits(frac)] if frac else [])
    return " ".join(words + [one if whole == 1 and not frac else many]) + " "


def _spell_number(m: re.Match) -> str:
    words = _integer(m.group("int"))
    if m.group("frac"):
        words += ["point"] + _digits(m.group("frac"))
    elif m.group("ord"):
        words = _ordinal(words)
    return " " + " ".join(words) + " "


def _spell_time(m: re.Match) -> str:
    hour, minute = int(m.group(1)), int(m.group(2))
    if hour > 24 or minute > 59:  # a score or a ratio ("3:30" is a time; "35:70" is not)
        return f" {' '.join(number_to_words(hour))} {' '.join(number_to_words(minute))} "
    tail = ["o'clock"] if minute == 0 else (["oh", _ONES[minute]] if minute < 10 else number_to_words(minute))
    return " " + " ".join(number_to_words(hour) + tail) + " "


def _spell_decade(m: re.Match) -> str:
    n = int(m.group(1))
    if len(m.group(1)) == 4:
        if n % 10 or n not in _YEARS:
            return m.group(0)
        return " " + " ".join(_plural_number(year_to_words(n))) + " "
    return " " + " ".join(_plural_number(number_to_words(n))) + " " if n % 10 == 0 and n else m.group(0)


def _spell_year(m: re.Match) -> str:
    n = int(m.group(1))
    return " " + " ".join(year_to_words(n)) + " " if n in _YEARS else m.group(0)


def _expand_abbreviation(m: re.Match) -> str:
    word, following = m.group(1).lower(), m.group(2)
    if word == "st":
        return "saint" if following and following[0].isupper() else "street"
    if word == "no" and not (following and following[0].isdigit()):
        return m.group(0)  # "no." ending a sentence is the word "no"
    return _ABBREVIATIONS[word]


def latin_share(text: str) -> float:
    """The share of the letters in `text` that are Latin (accents allowed); 1.0 when
    it has no letters. A Cyrillic or CJK transcript scores near 0."""
    letters = [ch for ch in unicodedata.normalize("NFKD", text) if ch.isalpha()]
    if not letters:
        return 1.0
    return sum(1 for ch in letters if _LATIN_LETTER.match(ch.lower())) / len(letters)


def normalize_transcript(text: str) -> list[str]:
    """Lowercase words of `text`: numbers, money, times, years and abbreviations spelled,
    accents and punctuation removed. Apostrophes inside words stay ("don't");
    hyphens split words; letters outside the Latin script are dropped."""
    text = unicodedata.normalize("NFKC", text)
    text = text.replace("\u2019", "'").replace("\u2018", "'").replace("`", "'")
    text = _DOTTED_RE.sub(lambda m: " " + " ".join(m.group(1).replace(".", "")) + " "
                          if m.group(1).lower() not in ("e.g.", "i.e.") else
                          {"e.g.": " for example ", "i.e.": " that is "}[m.group(1).lower()], text)
    text = _ABBREV_RE.sub(_expand_abbreviation, text)
    text = _TITLE_RE.sub(lambda m: _ABBREVIATIONS[m.group(1).lower()], text)
    text = _MONEY_RE.sub(_spell_money, text)
    text = _FRACTION_RE.sub(lambda m: f" {_FRACTIONS[m.group(0)]} " if m.group(0) in _FRACTIONS
                            else m.group(0), text)
    text = _TIME_RE.sub(_spell_time, text)
    text = _DECADE_RE.sub(_spell_decade, text)
    text = _RANGE_RE.sub(" to ", text)
    text = _MINUS_RE.sub(" minus ", text)
    text = _YEAR_RE.sub(_spell_year, text)
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
