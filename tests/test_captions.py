"""Captions: written words timed by the aligned ones, cue breaking, WebVTT read back by
FFmpeg's WebVTT demuxer (PyAV), and a whole render that writes captions.vtt."""

from __future__ import annotations

from pathlib import Path

import av
import pytest

from farm.captions import MAX_LINE_CHARS, caption_cues, display_words, webvtt
from farm.timeline import WordTiming as W


def _timed(*words: tuple[str, float, float]) -> list[W]:
    return [W(a, b, w) for w, a, b in words]


TIMED = _timed(("it", 0.1, 0.3), ("costs", 0.3, 0.5), ("five", 0.5, 0.8), ("dollars", 0.8, 1.1),
               ("doctor", 2.0, 2.3), ("smith", 2.3, 2.6), ("agreed", 2.6, 2.9))


def test_written_tokens_span_their_spoken_words() -> None:
    words = display_words("It costs $5. Dr. Smith agreed!", TIMED)
    assert [(w.word, w.start, w.end) for w in words] == [
        ("It", 0.1, 0.3), ("costs", 0.3, 0.5), ("$5.", 0.5, 1.1), ("Dr.", 2.0, 2.3),
        ("Smith", 2.3, 2.6), ("agreed!", 2.6, 2.9)]


def test_unaligned_tokens_share_the_gap() -> None:
    # The aligner did not place "very": it takes the time between its neighbours.
    timed = _timed(("a", 0.0, 0.2), ("big", 0.2, 0.4), ("dog", 1.0, 1.2))
    words = display_words("a big very dog", timed)
    assert [w.word for w in words] == ["a", "big", "very", "dog"]
    assert words[2].start == pytest.approx(0.4) and words[2].end == pytest.approx(1.0)


def test_no_transcript_or_no_match_keeps_the_timed_words() -> None:
    assert display_words(None, TIMED) == TIMED
    assert display_words("совсем другой текст", TIMED) == TIMED


def test_cues_break_at_sentences_pauses_and_line_length() -> None:
    cues = caption_cues(display_words("It costs $5. Dr. Smith agreed!", TIMED))
    # A title's full stop does not end the sentence; the real one does.
    assert [c.text for c in cues] == ["It costs $5.", "Dr. Smith agreed!"]
    long = [W(i * 0.3, i * 0.3 + 0.25, "word%02d" % i) for i in range(30)]
    cues = caption_cues(long)
    assert all(len(c.text) <= MAX_LINE_CHARS for c in cues)
    assert [w for c in cues for w in c.words] == long  # every word, once, in order
    paused = caption_cues(_timed(("one", 0.0, 0.3), ("two", 2.0, 2.3)))
    assert [c.text for c in paused] == ["one", "two"]
    # Short cues stay up long enough to read, but never overlap the next.
    assert paused[0].end == pytest.approx(0.8) and paused[0].end <= paused[1].start


def test_webvtt_reads_back(tmp_path: Path) -> None:
    cues = caption_cues(display_words("It costs $5 <b> & more. Dr. Smith agreed!",
                                      TIMED[:4] + TIMED[4:]))
    path = tmp_path / "c.vtt"
    path.write_text(webvtt(cues))
    text = path.read_text()
    assert text.startswith("WEBVTT\n") and "&lt;b&gt;" in text and "&amp;" in text
    with av.open(str(path)) as container:
        stream = container.streams.subtitles[0]
        packets = [p for p in container.demux(stream) if p.size]
        base = stream.time_base
        got = [(float(p.pts * base), float((p.pts + p.duration) * base), bytes(p).decode())
               for p in packets]
    assert len(got) == len(cues)
    for (start, end, payload), cue in zip(got, cues):
        assert start == pytest.approx(cue.start, abs=1e-3) and end == pytest.approx(cue.end, abs=1e-3)
        assert payload.startswith(cue.words[0].word.replace("&", "&amp;").replace("<", "&lt;")
                                  .replace(">", "&gt;"))
    # Word timestamps: "<00:00:00.300>costs" marks when each later word is spoken.
    assert "<00:00:00.300>costs" in got[0][2]
