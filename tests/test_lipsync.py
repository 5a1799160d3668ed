"""node.lipsync: real PocketSphinx alignment and phone recognition on real and
synthesized speech (espeak-ng), down to the mouth cues."""

from __future__ import annotations

import json
import math
import shutil
import subprocess
import threading
from pathlib import Path

import numpy as np
import pytest

from farm.audio import decode_audio
from farm.timeline import SHAPES, Timeline
from node.lipsync import lipsync, lipsync_file
from node.lipsync.align import _spread
from node.lipsync.segment import CHUNK_MAX_FRAMES
from node.lipsync.energy import Levels
from node.lipsync.shapes import MIN_CUE_FRAMES, ShapeRules, build_cues, phone_shapes
from node.lipsync.sphinx import Span, align_decoder
from node.lipsync.g2p import letter_to_sound
from node.lipsync.text import normalize_transcript, number_to_words

SAMPLE = Path(__file__).resolve().parents[1] / "assets" / "samples" / "goforward.wav"
SAMPLE_WORDS = ["go", "forward", "ten", "meters"]
SENTENCE = "Bob met my mom by the big pool, and we baked twelve apple pies for the party."
SENTENCE_WORDS = normalize_transcript(SENTENCE)


def espeak(path: Path, text: str) -> Path:
    if shutil.which("espeak-ng") is None:
        pytest.skip("espeak-ng is not installed")
    subprocess.run(["espeak-ng", "-w", str(path), text], check=True)
    return path


@pytest.fixture(scope="module")
def sample() -> np.ndarray:
    return decode_audio(SAMPLE)


@pytest.fixture(scope="module")
def sentence_wav(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return espeak(tmp_path_factory.mktemp("speech") / "sentence.wav", SENTENCE)  # 22050 Hz


@pytest.fixture(scope="module")
def sample_timeline(sample: np.ndarray) -> Timeline:
    return lipsync(sample, "Go forward 10 meters.")


def assert_well_formed(tl: Timeline, duration: float) -> None:
    """Contiguous cues from 0 to the end, known shapes, none shorter than a 24 fps frame."""
    assert tl.duration == pytest.approx(duration, abs=1e-6)
    assert tl.cues[0].start == 0.0
    assert tl.cues[-1].end == pytest.approx(duration, abs=1e-6)
    for a, b in zip(tl.cues, tl.cues[1:]):
        assert a.end == pytest.approx(b.start, abs=1e-9)
        assert a.shape != b.shape
    for cue in tl.cues:
        assert cue.shape in SHAPES
        assert 0.0 <= cue.intensity <= 1.0
        assert cue.end - cue.start >= MIN_CUE_FRAMES / 100 - 0.006, cue
    # The Rhubarb export reads back.
    back = Timeline.from_rhubarb_json(json.loads(tl.to_json_text("a.wav")))
    assert back.duration == pytest.approx(duration, abs=0.0101)  # Rhubarb truncates to 10 ms


def cues_between(tl: Timeline, start: float, end: float) -> set[str]:
    return {c.shape for c in tl.cues if c.end > start and c.start < end}


# --- with a transcript -------------------------------------------------------------

def test_sample_words_align_in_order(sample_timeline: Timeline, sample: np.ndarray) -> None:
    duration = sample.size / 16000
    words = sample_timeline.words
    assert [w.word for w in words] == SAMPLE_WORDS
    for w in words:
        assert 0 < w.start < w.end < duration
    for a, b in zip(words, words[1:]):
        assert a.end <= b.start + 1e-9
    # The clip opens with ~0.45 s of silence and "meters" ends ~0.65 s before the end.
    assert 0.35 < words[0].start < 0.6
    assert 1.9 < words[-1].end < 2.6


def test_sample_shapes_follow_speech(sample_timeline: Timeline, sample: np.ndarray) -> None:
    duration = sample.size / 16000
    assert_well_formed(sample_timeline, duration)
    assert sample_timeline.shape_at(0.1) == "X"
    assert sample_timeline.shape_at(duration - 0.1) == "X"
    for w in sample_timeline.words:
        assert cues_between(sample_timeline, w.start, w.end) - {"X"}, w
    # "forward" starts with F: lip on teeth (G); "go"'s OW and "forward"'s W round (F/E).
    forward = sample_timeline.words[1]
    assert "G" in cues_between(sample_timeline, forward.start - 0.03, forward.start + 0.1)
    speech = [c for c in sample_timeline.cues if c.shape != "X"]
    assert max(c.intensity for c in speech) > 0.7
    assert all(c.intensity == 0.0 for c in sample_timeline.cues if c.shape == "X")


def test_m_gives_a_closed_mouth(sample_timeline: Timeline) -> None:
    meters = sample_timeline.words[3]
    assert "A" in cues_between(sample_timeline, meters.start - 0.05, meters.start + 0.12)


def test_espeak_sentence_aligns_every_word(sentence_wav: Path) -> None:
    tl = lipsync_file(sentence_wav, SENTENCE)
    samples = decode_audio(sentence_wav)
    assert_well_formed(tl, samples.size / 16000)
    assert [w.word for w in tl.words] == SENTENCE_WORDS
    assert all(a.end <= b.start + 1e-9 for a, b in zip(tl.words, tl.words[1:]))
    # Every word starting with a bilabial shows the closed mouth near its start.
    for w in tl.words:
        if w.word[0] in "bmp":
            assert "A" in cues_between(tl, w.start - 0.05, w.start + 0.12), w
    assert "D" in {c.shape for c in tl.cues} or "C" in {c.shape for c in tl.cues}


def test_long_audio_is_phone_aligned_in_chunks(sentence_wav: Path) -> None:
    # Past CHUNK_MAX_FRAMES the phone pass runs per chunk: the chunks' times must
    # be put back in place, so every bilabial still lands on its word.
    samples = decode_audio(sentence_wav)
    repeats = math.ceil(CHUNK_MAX_FRAMES / 100 / (samples.size / 16000)) + 1
    tl = lipsync(np.tile(samples, repeats), " ".join([SENTENCE] * repeats))
    assert tl.duration > CHUNK_MAX_FRAMES / 100
    assert [w.word for w in tl.words] == SENTENCE_WORDS * repeats
    for w in tl.words:
        if w.word[0] in "bmp":
            assert "A" in cues_between(tl, w.start - 0.05, w.start + 0.12), w


def test_spread_phones_over_a_word() -> None:
    phones = _spread(align_decoder(), Span("bob", 100, 140))
    assert [p.label for p in phones] == ["B", "AA", "B"]
    assert phones[0].start == 100 and phones[-1].end == 140
    assert all(a.end == b.start for a, b in zip(phones, phones[1:]))
    assert phones[1].end - phones[1].start == 20  # the vowel gets twice a consonant's time


def test_native_rate_samples_give_the_same_words(sentence_wav: Path) -> None:
    samples = decode_audio(sentence_wav, rate=22050)  # espeak's own rate
    tl = lipsync(samples, SENTENCE, rate=22050)
    assert tl.duration == pytest.approx(samples.size / 22050)
    assert [w.word for w in tl.words] == SENTENCE_WORDS


def test_stereo_44k_file(tmp_path: Path) -> None:
    if shutil.which("sox") is None:
        pytest.skip("sox is not installed")
    path = tmp_path / "gf44.wav"
    subprocess.run(["sox", str(SAMPLE), "-r", "44100", "-c", "2", str(path)], check=True)
    tl = lipsync_file(path, "go forward ten meters")
    assert [w.word for w in tl.words] == SAMPLE_WORDS
    assert tl.duration == pytest.approx(2.786, abs=0.01)


def test_words_missing_from_the_dictionary(tmp_path: Path) -> None:
    text = "Zorblax met Quiggly at Toonzville."
    tl = lipsync_file(espeak(tmp_path / "odd.wav", text), text)
    assert [w.word for w in tl.words] == ["zorblax", "met", "quiggly", "at", "toonzville"]


# --- transcripts that do not fit -------------------------------------------------

@pytest.mark.parametrize("transcript", [
    "the quick brown fox jumps over the lazy dog",
    "hello",
    "turn left at the big tree and then stop",
])
def test_mismatched_transcript_falls_back(sample: np.ndarray, transcript: str) -> None:
    tl = lipsync(sample, transcript)
    assert tl.words == ()  # the transcript was not trusted
    assert_well_formed(tl, sample.size / 16000)
    assert {c.shape for c in tl.cues} - {"X"}
    assert tl.shape_at(0.1) == "X"


@pytest.mark.parametrize("transcript", ["", "   ", "?!", "..."])
def test_empty_transcripts_mean_none(sample: np.ndarray, transcript: str) -> None:
    tl = lipsync(sample, transcript)
    assert [w.word for w in tl.words] == SAMPLE_WORDS  # heard, as without a transcript
    assert {c.shape for c in tl.cues} - {"X"}


# --- without a transcript ------------------------------------------------------------

def test_phone_recognition_without_transcript(sample: np.ndarray) -> None:
    tl = lipsync(sample, recognizer="phonetic")
    duration = sample.size / 16000
    assert_well_formed(tl, duration)
    assert tl.words == ()
    shapes = [c.shape for c in tl.cues]
    assert len(set(shapes) - {"X"}) >= 3
    assert tl.shape_at(0.1) == "X" and tl.shape_at(duration - 0.1) == "X"
    # Speech (0.45 s to 2.1 s) is mostly not at rest.
    frames = tl.sample(100)[50:200]
    assert frames.count("X") < 15


def test_espeak_without_transcript(sentence_wav: Path) -> None:
    tl = lipsync_file(sentence_wav)
    assert_well_formed(tl, decode_audio(sentence_wav).size / 16000)
    assert len({c.shape for c in tl.cues} - {"X"}) >= 3


@pytest.mark.parametrize("samples", [
    np.zeros(16000 * 2, np.float32),
    (np.random.default_rng(0).standard_normal(16000 * 2) * 1e-4).astype(np.float32),  # -80 dB hiss
    (0.05 * np.sin(2 * np.pi * 60 * np.arange(32000) / 16000)).astype(np.float32),  # steady hum
])
def test_silence_is_all_rest(samples: np.ndarray) -> None:
    for transcript in (None, "hello world"):
        tl = lipsync(samples, transcript)
        assert tl.duration == pytest.approx(2.0)
        assert {c.shape for c in tl.cues} == {"X"}
        assert tl.cues[-1].end == pytest.approx(2.0)


def test_tiny_and_empty_inputs() -> None:
    assert lipsync(np.zeros(0, np.float32)).duration == 0.0
    tl = lipsync(np.zeros(100, np.float32), "hi")
    assert {c.shape for c in tl.cues} == {"X"}
    with pytest.raises(ValueError):
        lipsync(np.zeros((2, 100), np.float32))


def test_pause_closes_the_mouth(sample: np.ndarray) -> None:
    # Two utterances with 1 s of silence between: the mouth rests in the gap.
    gap = np.zeros(16000, np.float32)
    speech = sample[6000:36000]
    tl = lipsync(np.concatenate([speech, gap, speech]), "go forward ten meters go forward ten meters")
    assert [w.word for w in tl.words] == SAMPLE_WORDS * 2
    start = speech.size / 16000
    assert set(tl.sample(100)[int(start * 100) + 20: int(start * 100) + 80]) == {"X"}


def test_deterministic_and_thread_safe(sample: np.ndarray) -> None:
    # Decoders are reused per thread: state left by earlier audio must not leak.
    results: list[tuple[Timeline, Timeline]] = []

    def run() -> None:  # a new thread starts with fresh decoders
        results.append((lipsync(sample), lipsync(sample, "go forward ten meters")))

    threads = [threading.Thread(target=run) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(results) == 3
    fresh = results[0]
    assert all(r == fresh for r in results)
    # A noisy recording must not leave its noise estimate behind in the decoders.
    noise = np.random.default_rng(1).standard_normal(sample.size).astype(np.float32)
    noisy = np.tile(sample + 0.05 * noise, 10)
    after: list[Timeline] = []

    def run_around_noise() -> None:
        for transcript in (None, "go forward ten meters"):
            after.append(lipsync(sample, transcript))
            lipsync(noisy, transcript)
            after.append(lipsync(sample, transcript))

    thread = threading.Thread(target=run_around_noise)
    thread.start()
    thread.join()
    assert after == [fresh[0], fresh[0], fresh[1], fresh[1]]


# --- the pieces -------------------------------------------------------------------------

def test_normalize_transcript() -> None:
    assert normalize_transcript("Go forward 10 meters!") == SAMPLE_WORDS
    assert normalize_transcript("It's 3.5% of $1,250 — on the 2nd try.") == [
        "it's", "three", "point", "five", "percent", "of", "one", "thousand", "two", "hundred",
        "fifty", "dollars", "on", "the", "second", "try"]
    assert normalize_transcript("Café “déjà vu” well-known") == ["cafe", "deja", "vu", "well", "known"]


@pytest.mark.parametrize("n, words", [
    (0, "zero"), (13, "thirteen"), (40, "forty"), (99, "ninety nine"), (100, "one hundred"),
    (101, "one hundred one"), (999, "nine hundred ninety nine"), (1000, "one thousand"),
    (12345, "twelve thousand three hundred forty five"),
    (999999, "nine hundred ninety nine thousand nine hundred ninety nine"),
    (1000000, "one million"), (2000017, "two million seventeen"),
])
def test_number_to_words(n: int, words: str) -> None:
    assert " ".join(number_to_words(n)) == words


def test_letter_to_sound() -> None:
    assert letter_to_sound("toonz") == ["T", "UW", "N", "Z"]
    assert letter_to_sound("bomp")[0] == "B" and letter_to_sound("bomp")[-2:] == ["M", "P"]
    assert letter_to_sound("shake") == ["SH", "AE", "K"]


def test_phone_shapes() -> None:
    assert phone_shapes("M", 5, None) == [("A", 5)]
    assert phone_shapes("F", 5, None) == [("G", 5)]
    assert phone_shapes("AA1", 8, None) == [("D", 8)]
    assert phone_shapes("OW", 10, None, ShapeRules(diphthong_split=0.6)) == [("E", 6), ("F", 4)]
    assert phone_shapes("OW", 10, None, ShapeRules(diphthong_split=0.5)) == [("E", 5), ("F", 5)]
    assert phone_shapes("HH", 4, "AA") == [("D", 4)]
    assert phone_shapes("L", 10, None, ShapeRules(long_l_frames=8)) == [("H", 10)]
    assert phone_shapes("L", 10, None, ShapeRules(long_l_frames=16)) == [("B", 10)]
    assert phone_shapes("L", 3, None) == [("B", 3)]
    assert phone_shapes("SIL", 20, None) == [("", 20)]


def _levels(n: int, quiet: slice | None = None) -> Levels:
    q = np.zeros(n, bool)
    if quiet is not None:
        q[quiet] = True
    rms = np.where(q, 0.0, 0.1).astype(np.float32)
    return Levels(rms=rms, ref=0.1, threshold=0.02, quiet=q)


def test_rules_lead_and_pause() -> None:
    # "ma ... ma": M (A) then AA (D), a 20-frame pause, then again.
    phones = [Span("SIL", 0, 20), Span("M", 20, 30), Span("AA", 30, 60), Span("SIL", 60, 80),
              Span("M", 80, 90), Span("AA", 90, 120), Span("SIL", 120, 150)]
    levels = _levels(150, quiet=slice(60, 80))
    plain = ShapeRules(tween=False)

    def frames(rules: ShapeRules) -> str:
        cues = build_cues(phones, levels, 1.5, rules)
        return "".join(next(c.shape for c in cues if c.start <= t / 100 < c.end) for t in range(150))

    base = frames(plain)
    assert base[20:30] == "A" * 10 and base[30:60] == "D" * 30
    # Anticipation: every shape starts (and ends) `lead_frames` before its sound.
    ahead = frames(ShapeRules(tween=False, lead_frames=3))
    assert ahead[17:27] == "A" * 10 and ahead[27:57] == "D" * 30
    # A 20-frame pause shuts the mouth when pauses of 15 frames do, and holds it when
    # only pauses of 30 frames do.
    assert set(frames(ShapeRules(tween=False, pause_frames=15))[60:80]) == {"X"}
    assert "X" not in frames(ShapeRules(tween=False, pause_frames=30))[60:80]
    # In-betweens: the jump from closed (A) to wide open (D) passes through C.
    assert "AC" in "".join(c.shape for c in build_cues(phones, levels, 1.5, ShapeRules(tween=True)))


def test_without_a_transcript_the_words_are_heard(sample: np.ndarray) -> None:
    # The real recording: the language model hears all four words, which are then
    # aligned like a transcript, so the timeline has word timings (captions) too.
    tl = lipsync(sample, workers=1)
    assert [w.word for w in tl.words] == SAMPLE_WORDS
    assert all(a.end <= b.start + 1e-9 for a, b in zip(tl.words, tl.words[1:]))
    shapes = {c.shape for c in tl.cues}
    assert "X" in shapes and len(shapes) >= 4  # rests at the ends, moves between
    # The phone loop ("phonetic") hears sounds only: no words.
    assert lipsync(sample, recognizer="phonetic", workers=1).words == ()
