"""Two-person templates: speaker labels in the transcript decide whose mouth moves."""

from __future__ import annotations

import subprocess
from pathlib import Path

import av
import pytest

from farm.errors import InvalidInput
from farm.speakers import MAX_SPEAKERS, Turn, parse_turns, split_timeline, spoken_text
from farm.timeline import MouthCue, Timeline, WordTiming
from node.pipeline import render

DIALOGUE = """HOST: Welcome back to the show.
GUEST: Thanks for having me.
I build render farms.
HOST: Tell us more."""


def test_turns_and_the_words_spoken():
    turns = parse_turns(DIALOGUE)
    assert turns == [Turn("HOST", "Welcome back to the show."),
                     Turn("GUEST", "Thanks for having me. I build render farms."),
                     Turn("HOST", "Tell us more.")]
    assert "HOST" not in spoken_text(turns) and "GUEST" not in spoken_text(turns)


def test_no_labels_means_one_voice():
    assert parse_turns("Welcome back to the show. Note this.") is None
    assert parse_turns("") is None


@pytest.mark.parametrize("text, code", [
    ("A: one\nB: two\nC: three", "too_many_speakers"),
    ("Hello there.\nHOST: Welcome.", "unlabelled_text"),
])
def test_bad_dialogues_are_refused(text, code):
    with pytest.raises(InvalidInput) as err:
        parse_turns(text)
    assert err.value.code == code
    assert MAX_SPEAKERS == 2


def test_each_speaker_gets_their_own_cues_and_words():
    words = [WordTiming(0.0, 0.4, "hello"), WordTiming(0.5, 0.9, "there"),
             WordTiming(1.2, 1.6, "hi"), WordTiming(1.6, 2.0, "back")]
    cues = (MouthCue(0.0, 0.4, "C", 0.8), MouthCue(0.4, 0.5, "B", 0.5), MouthCue(0.5, 0.9, "D", 0.9),
            MouthCue(0.9, 1.2, "X"), MouthCue(1.2, 1.6, "E", 0.7), MouthCue(1.6, 2.0, "A", 0.6))
    tl = Timeline(2.0, cues, tuple(words))
    a, b = split_timeline(tl, parse_turns("ANN: hello there\nBOB: hi back"))
    assert [w.word for w in a.words] == ["hello", "there"] and [w.word for w in b.words] == ["hi", "back"]
    assert [a.shape_at(t) for t in (0.2, 0.7, 1.4, 1.8)] == ["C", "D", "X", "X"]
    assert [b.shape_at(t) for t in (0.2, 0.7, 1.4, 1.8)] == ["X", "X", "E", "A"]
    assert a.duration == b.duration == 2.0


@pytest.fixture(scope="module")
def dialogue_wav(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("dialogue")
    parts = []
    for k, turn in enumerate(parse_turns(DIALOGUE)):
        voice = "en-us+m3" if turn.speaker == "HOST" else "en-us+f3"
        path = folder / f"{k}.wav"
        subprocess.run(["espeak-ng", "-v", voice, "-w", str(path), turn.text], check=True)
        parts.append(str(path))
    out = folder / "dialogue.wav"
    subprocess.run(["sox", *parts, str(out)], check=True)
    return out


def test_podcast_render_moves_the_speaking_mouth(dialogue_wav, tmp_path):
    from assets.loader import load_character, load_template
    from node.lipsync import lipsync_file
    from node.render.scene import CastMember, build_cast

    turns = parse_turns(DIALOGUE)
    timeline = lipsync_file(dialogue_wav, spoken_text(turns), workers=1)
    host, guest = split_timeline(timeline, turns)
    tpl = load_template("podcast")
    scene = build_cast(tpl, [CastMember(load_character("toonz"), tpl.character, host),
                             CastMember(load_character("ada"), tpl.second_character, guest)],
                       640, 360, 24)
    # While the host's first line is spoken the guest rests, and the other way round.
    at = {w.word: w for w in timeline.words}
    host_line = range(round(at["welcome"].start * 24), round(at["show"].start * 24))
    guest_line = range(round(at["for"].start * 24), round(at["me"].end * 24))
    assert {scene.mouth_shape(i, 1) for i in host_line} == {"X"}
    assert len({scene.mouth_shape(i, 0) for i in host_line}) > 2
    assert {scene.mouth_shape(i, 0) for i in guest_line} == {"X"}
    assert len({scene.mouth_shape(i, 1) for i in guest_line}) > 2
    # Two of the same character: their sprites do not collide.
    twins = build_cast(tpl, [CastMember(load_character("toonz"), tpl.character, host),
                             CastMember(load_character("toonz"), tpl.second_character, guest)],
                       640, 360, 24)
    assert len(twins.art.sprites) > len(scene.art.sprites) / 2

    result = render(dialogue_wav, tmp_path / "video.mp4", transcript=DIALOGUE, template="podcast",
                    quality="preview", backend="cpu")
    with av.open(str(result.video)) as c:
        assert (c.streams.video[0].codec_context.width, c.streams.video[0].codec_context.height) == (640, 360)
    assert "HOST" not in result.captions.read_text()
