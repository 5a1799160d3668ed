"""Transcript normalisation and letter-to-sound: written text as a narrator reads it."""

from __future__ import annotations

import pytest

from node.lipsync.g2p import letter_to_sound
from node.lipsync.sphinx import ALIGN_CONFIG
from node.lipsync.text import latin_share, normalize_transcript, year_to_words


def said(text: str) -> str:
    return " ".join(normalize_transcript(text))


@pytest.mark.parametrize("text, spoken", [
    # numbers, ordinals, decimals, negatives, ranges, fractions
    ("Go forward 10 meters!", "go forward ten meters"),
    ("1,250 people", "one thousand two hundred fifty people"),
    ("the 1st, 2nd, 3rd, 21st and 103rd", "the first second third twenty first and one hundred third"),
    ("pi is 3.14", "pi is three point one four"),
    ("agent 007", "agent zero zero seven"),
    ("-5 degrees", "minus five degrees"),
    ("pages 10-20", "pages ten to twenty"),
    ("1/2 a cup and 3/4 of it", "one half a cup and three quarters of it"),
    ("50% more & 2+2=4", "fifty percent more and two plus two equals four"),
    # years and decades
    ("in 1999", "in nineteen ninety nine"),
    ("from 1905 to 2024", "from nineteen oh five to twenty twenty four"),
    ("in 1900 and 2005", "in nineteen hundred and two thousand five"),
    ("the 1990s and the '80s", "the nineteen nineties and the eighties"),
    # money
    ("$3.50", "three dollars fifty cents"),
    ("$1 or $0.99", "one dollar or ninety nine cents"),
    ("€5 and £2.50", "five euros and two pounds fifty pence"),
    ("$1.5 million", "one point five million dollars"),
    ("$2,000", "two thousand dollars"),
    # times
    ("at 3:30", "at three thirty"),
    ("at 10:05 or 7:00", "at ten oh five or seven o'clock"),
    # abbreviations
    ("Dr. Smith and Mr. Jones met Mrs. Brown", "doctor smith and mister jones met missus brown"),
    ("Mr Bean", "mister bean"),
    ("St. Patrick on Main St.", "saint patrick on main street"),
    ("apples, pears, etc.", "apples pears et cetera"),
    ("fruit, e.g. apples, i.e. food", "fruit for example apples that is food"),
    ("No. 5 is fine. No.", "number five is fine no"),
    ("the U.S.A. at 9 a.m.", "the u s a at nine a m"),
    # punctuation, quotes, accents
    ("“Don’t,” she said — well-known café.", "don't she said well known cafe"),
    ("mp3 and 4k", "mp three and four k"),
])
def test_normalize(text: str, spoken: str) -> None:
    assert said(text) == spoken


def test_year_to_words() -> None:
    assert year_to_words(1066) == ["ten", "sixty", "six"]
    assert year_to_words(2000) == ["two", "thousand"]
    assert year_to_words(2010) == ["twenty", "ten"]


def test_latin_share() -> None:
    assert latin_share("hello world") == 1.0
    assert latin_share("Привет, мир") == 0.0
    assert latin_share("ça déjà") == 1.0  # accents are Latin
    assert latin_share("123 !?") == 1.0  # no letters: nothing foreign
    assert 0.4 < latin_share("你好世界 hello") < 0.6


def test_letter_to_sound_for_words_the_dictionary_lacks() -> None:
    from pocketsphinx import Decoder

    fresh = Decoder(**ALIGN_CONFIG)  # the shared one may have learnt them in other tests
    assert all(fresh.lookup_word(w) is None for w in ("zorblax", "toonzville", "quiggly"))
    assert letter_to_sound("toonz") == ["T", "UW", "N", "Z"]
    assert letter_to_sound("shake") == ["SH", "AE", "K"]
    assert letter_to_sound("zorblax")[:2] == ["Z", "AO"]
    # No vowel letter: read as letters, as acronyms are said.
    assert letter_to_sound("xkcd") == ["EH", "K", "S", "K", "EY", "S", "IY", "D", "IY"]
    assert letter_to_sound("") == []
