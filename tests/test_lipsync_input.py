"""Bad input to the lip-sync engine: real audio (espeak-ng speech, the recorded sample)
spoiled the ways uploads are spoiled. Silence and noise are not errors; limits are
named and refused with their codes."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest

from farm.audio import decode_audio
from farm.errors import InvalidInput
from farm.timeline import SHAPES
from node.lipsync import MAX_AUDIO_S, MAX_TRANSCRIPT_WORDS, lipsync, lipsync_file
from node.lipsync.engine import MAX_TRANSCRIPT_CHARS, transcript_words

WORDS = ["go", "forward", "ten", "meters"]


@pytest.fixture(scope="module")
def sample(goforward) -> np.ndarray:
    return decode_audio(goforward[0])


def moving(tl) -> set[str]:
    return {c.shape for c in tl.cues} - {"X"}


def test_limits_are_named() -> None:
    assert MAX_AUDIO_S == 3600.0  # the enterprise tier's ceiling
    assert MAX_TRANSCRIPT_WORDS == 20_000
    assert MAX_TRANSCRIPT_CHARS >= 10 * MAX_TRANSCRIPT_WORDS


@pytest.mark.parametrize("make", [
    lambda n: np.zeros(n, np.float32),  # digital silence
    lambda n: (np.random.default_rng(1).standard_normal(n) * 0.3).astype(np.float32),  # loud hiss
    lambda n: np.sign(np.sin(2 * np.pi * 50 * np.arange(n) / 16000)).astype(np.float32),  # clipped hum
])
def test_silence_and_noise_rest(make) -> None:
    for transcript in (None, "go forward ten meters"):
        tl = lipsync(make(48000), transcript)
        assert tl.duration == pytest.approx(3.0)
        assert moving(tl) == set() and tl.words == ()


def test_speech_in_noise_still_aligns(sample: np.ndarray) -> None:
    noise = np.random.default_rng(2).standard_normal(sample.size).astype(np.float32) * 0.01  # ~10 dB SNR
    tl = lipsync(sample + noise, "go forward ten meters")
    assert [w.word for w in tl.words] == WORDS
    assert "A" in {c.shape for c in tl.cues}  # the M of "meters"


def test_clipped_speech_still_aligns(sample: np.ndarray) -> None:
    clipped = np.clip(sample * 30, -1.0, 1.0)  # about 20 dB of hard clipping
    assert np.mean(np.abs(clipped) >= 1.0) > 0.05
    tl = lipsync(clipped, "go forward ten meters")
    assert [w.word for w in tl.words] == WORDS
    assert len(moving(tl)) >= 3


def test_five_milliseconds(tmp_path: Path) -> None:
    tl = lipsync(np.full(80, 0.5, np.float32), "hello")
    assert tl.duration == pytest.approx(0.005)
    assert {c.shape for c in tl.cues} <= set(SHAPES) and tl.words == ()
    assert tl.to_tsv() == "0.00\tX\n"


def test_corrupt_and_empty_files(tmp_path: Path) -> None:
    for name, content in (("corrupt.wav", b"RIFF\x24\x00\x00\x00WAVEfmt \x10\x00garbage" * 3),
                          ("empty.mp3", b""), ("text.ogg", b"hello, I am text")):
        (tmp_path / name).write_bytes(content)
        with pytest.raises(InvalidInput) as info:
            lipsync_file(tmp_path / name)
        assert info.value.code == "unreadable_audio"


@pytest.mark.parametrize("transcript", [
    "Иди вперёд десять метров.",  # Cyrillic
    "前进十米",  # CJK
    "前进十米 go",  # mostly CJK with a Latin word
])
def test_transcript_in_another_script_falls_back_to_recognition(sample: np.ndarray, transcript: str) -> None:
    tl = lipsync(sample, transcript)
    assert tl.words == ()
    assert len(moving(tl)) >= 3
    assert tl == lipsync(sample, recognizer="phonetic")  # exactly what the phone loop gives


@pytest.mark.parametrize("transcript", ["", "   \n\t", "?!…", "— — —"])
def test_empty_transcript_means_none(sample: np.ndarray, transcript: str) -> None:
    assert lipsync(sample, transcript) == lipsync(sample)


def test_huge_transcript_is_refused_before_any_work(goforward) -> None:
    huge = "word " * 100_000
    started = time.monotonic()
    for call in (lambda: lipsync_file(goforward[0], huge), lambda: lipsync(np.zeros(16000, np.float32), huge)):
        with pytest.raises(InvalidInput) as info:
            call()
        assert info.value.code == "transcript_too_long"
        assert "100,000 words" in info.value.message and "20,000" in info.value.message
    assert time.monotonic() - started < 5  # refused up front, not after aligning
    with pytest.raises(InvalidInput, match="transcript_too_long|limit") as info:
        transcript_words("x" * (MAX_TRANSCRIPT_CHARS + 1))  # one giant "word"
    assert info.value.code == "transcript_too_long"
    # Written numbers grow when read out: the limit applies to the spoken words too.
    with pytest.raises(InvalidInput):
        transcript_words("1,234,567 " * 3000, max_words=10_000)
    assert len(transcript_words("go forward ten meters", max_words=4)) == 4


def test_audio_longer_than_the_limit(goforward, sample: np.ndarray) -> None:
    for call in (lambda: lipsync(sample, max_audio_s=2.0), lambda: lipsync_file(goforward[0], max_audio_s=2.0)):
        with pytest.raises(InvalidInput) as info:
            call()
        assert info.value.code == "audio_too_long"
    assert lipsync(sample, max_audio_s=None).duration == pytest.approx(sample.size / 16000)


def test_other_inputs_refused_clearly(sample: np.ndarray) -> None:
    with pytest.raises(InvalidInput) as info:
        lipsync(sample, recognizer="whisper")
    assert info.value.code == "invalid_recognizer"
    with pytest.raises(InvalidInput) as info:
        lipsync(sample, b"go forward")  # type: ignore[arg-type]
    assert info.value.code == "invalid_transcript"
    with pytest.raises(ValueError):
        lipsync(np.zeros((2, 100), np.float32))
    nan = sample.copy()
    nan[::100] = np.nan
    assert lipsync(nan).duration == pytest.approx(sample.size / 16000)


def test_low_sample_rates_are_resampled(goforward, tmp_path: Path) -> None:
    # Rhubarb refuses audio under 16 kHz; telephone-quality 8 kHz aligns here.
    import subprocess

    phone = tmp_path / "phone.wav"
    subprocess.run(["sox", str(goforward[0]), "-r", "8000", str(phone)], check=True)
    tl = lipsync_file(phone, "go forward ten meters")
    assert [w.word for w in tl.words] == WORDS
    assert tl.duration == pytest.approx(2.786, abs=0.01)


def test_the_phonetic_recognizer_ignores_the_transcript(sample: np.ndarray) -> None:
    phonetic = lipsync(sample, "go forward ten meters", recognizer="phonetic")
    assert phonetic.words == () and phonetic == lipsync(sample, "Иди вперёд", recognizer="phonetic")
    assert lipsync(sample, "x " * 100_000, recognizer="phonetic") == phonetic  # nor its length
