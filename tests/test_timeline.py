"""farm.timeline: cue validation, lookup, sampling and Rhubarb Lip Sync interchange."""

from __future__ import annotations

import json
import math
import subprocess
import sys

import pytest

from farm.errors import InvalidInput
from farm.timeline import SHAPES, MouthCue, Timeline, WordTiming

# Written the way `rhubarb -f json` writes it (2-space indent, 2-decimal times).
RHUBARB_TEXT = """{
  "metadata": {
    "soundFile": "C:\\\\voice\\\\hello \\"world\\".wav",
    "duration": 1.23
  },
  "mouthCues": [
    { "start": 0.00, "end": 0.17, "value": "X" },
    { "start": 0.17, "end": 0.31, "value": "B" },
    { "start": 0.31, "end": 0.52, "value": "D" },
    { "start": 0.52, "end": 0.60, "value": "A" },
    { "start": 0.60, "end": 0.95, "value": "F" },
    { "start": 0.95, "end": 1.23, "value": "X" }
  ]
}
"""


def make() -> Timeline:
    return Timeline(1.0, (MouthCue(0.1, 0.3, "A"), MouthCue(0.3, 0.6, "D", 0.8),
                          MouthCue(0.7, 0.9, "F")),
                    (WordTiming(0.1, 0.9, "bob"),))


def test_shapes_constant() -> None:
    assert SHAPES == "ABCDEFGHX"


def test_shape_at_inside_gaps_and_edges() -> None:
    tl = make()
    assert tl.shape_at(0.0) == "X"  # before the first cue
    assert tl.shape_at(0.1) == "A"  # start is inclusive
    assert tl.shape_at(0.29) == "A"
    assert tl.shape_at(0.3) == "D"  # end is exclusive
    assert tl.shape_at(0.65) == "X"  # gap
    assert tl.shape_at(0.8) == "F"
    assert tl.shape_at(0.9) == "X"
    assert tl.shape_at(5.0) == "X"
    assert tl.shape_at(-1.0) == "X"


def test_shape_at_agrees_with_linear_scan() -> None:
    tl = make()
    for i in range(120):
        t = i / 100
        expected = next((c.shape for c in tl.cues if c.start <= t < c.end), "X")
        assert tl.shape_at(t) == expected, t


def test_sample_frames() -> None:
    tl = make()
    assert tl.sample(10) == ["X", "A", "A", "D", "D", "D", "X", "F", "F", "X"]
    assert tl.sample(10, n_frames=3) == ["X", "A", "A"]
    assert tl.sample(10, n_frames=12)[-2:] == ["X", "X"]
    assert len(tl.sample(24)) == 24
    assert len(Timeline.silent(2.01).sample(24)) == math.ceil(2.01 * 24)
    assert tl.sample(24) == [tl.shape_at(i / 24) for i in range(24)]
    with pytest.raises(InvalidInput):
        tl.sample(0)


def test_silent() -> None:
    tl = Timeline.silent(2.5)
    assert tl.duration == 2.5
    assert [c.shape for c in tl.cues] == ["X"]
    assert set(tl.sample(30)) == {"X"}
    with pytest.raises(InvalidInput):
        Timeline.silent(-1)


@pytest.mark.parametrize("kwargs", [
    dict(start=0.0, end=1.0, shape="Q"),
    dict(start=0.0, end=1.0, shape="ab"),
    dict(start=0.0, end=1.0, shape="a"),
    dict(start=1.0, end=0.5, shape="A"),
    dict(start=math.nan, end=0.5, shape="A"),
    dict(start=0.0, end=0.5, shape="A", intensity=1.5),
])
def test_cue_validation(kwargs: dict) -> None:
    with pytest.raises(InvalidInput):
        MouthCue(**kwargs)


def test_timeline_validation() -> None:
    with pytest.raises(InvalidInput, match="before the previous cue ends"):
        Timeline(1.0, (MouthCue(0.0, 0.5, "A"), MouthCue(0.3, 0.6, "B")))
    with pytest.raises(InvalidInput, match="after the duration"):
        Timeline(1.0, (MouthCue(0.0, 1.5, "A"),))
    with pytest.raises(InvalidInput):
        Timeline(-1.0, ())
    with pytest.raises(InvalidInput):
        Timeline(1.0, ("A",))  # type: ignore[arg-type]


def test_rhubarb_json_is_contiguous_and_rounded() -> None:
    tl = Timeline(1.004, (MouthCue(0.1, 0.3, "A"), MouthCue(0.3, 0.6, "A"),
                          MouthCue(0.6049, 0.9, "F")))
    data = tl.to_rhubarb_json("voice.wav")
    assert data["metadata"] == {"soundFile": "voice.wav", "duration": 1.0}
    assert data["mouthCues"] == [
        {"start": 0.0, "end": 0.1, "value": "X"},
        {"start": 0.1, "end": 0.6, "value": "A"},  # equal neighbours joined
        {"start": 0.6, "end": 0.9, "value": "F"},
        {"start": 0.9, "end": 1.0, "value": "X"},
    ]


def test_empty_timeline_exports_one_zero_length_rest() -> None:
    # Rhubarb's dummyShapeIfEmpty: never an empty cue list.
    assert Timeline(0.0, ()).to_rhubarb_json()["mouthCues"] == [{"start": 0.0, "end": 0.0, "value": "X"}]


def test_json_text_matches_rhubarb_byte_for_byte() -> None:
    data = json.loads(RHUBARB_TEXT)
    tl = Timeline.from_rhubarb_json(data)
    assert tl.duration == 1.23
    assert [c.shape for c in tl.cues] == ["X", "B", "D", "A", "F", "X"]
    assert tl.to_json_text(data["metadata"]["soundFile"]) == RHUBARB_TEXT
    assert json.loads(tl.to_json_text("x.wav")) == tl.to_rhubarb_json("x.wav")


def test_json_text_escapes_like_rhubarb() -> None:
    text = Timeline.silent(1).to_json_text("caf\u00e9\t\U0001f600\x7f.wav")
    assert '"soundFile": "caf\\u00e9\\t\\ud83d\\ude00\x7f.wav"' in text


def test_tsv_matches_rhubarb() -> None:
    tl = Timeline.from_rhubarb_json(json.loads(RHUBARB_TEXT))
    assert tl.to_tsv() == ("0.00\tX\n0.17\tB\n0.31\tD\n0.52\tA\n0.60\tF\n0.95\tX\n1.23\tX\n")


def test_rhubarb_round_trip() -> None:
    tl = make()
    back = Timeline.from_rhubarb_json(json.loads(tl.to_json_text("a.wav")))
    assert back.duration == tl.duration
    for t in [i / 100 for i in range(100)]:
        assert back.shape_at(t + 0.005) == tl.shape_at(t + 0.005)


def test_from_rhubarb_json_keeps_intensity_and_defaults_duration() -> None:
    tl = Timeline.from_rhubarb_json({"mouthCues": [{"start": 0, "end": 0.5, "value": "C", "intensity": 0.25}]})
    assert tl.duration == 0.5
    assert tl.cues[0].intensity == 0.25


def _valid() -> dict:
    return json.loads(RHUBARB_TEXT)


def _broken(mutate) -> dict:
    data = _valid()
    mutate(data)
    return data


@pytest.mark.parametrize("data, message", [
    (_broken(lambda d: d.pop("mouthCues")), "no 'mouthCues' key"),
    (_broken(lambda d: d["mouthCues"][1].pop("start")), r"mouthCues\[1\] has no 'start' key"),
    (_broken(lambda d: d["mouthCues"][2].pop("end")), r"mouthCues\[2\] has no 'end' key"),
    (_broken(lambda d: d["mouthCues"][0].pop("value")), r"mouthCues\[0\] has no 'value' key"),
    (_broken(lambda d: d["mouthCues"][1].update(value="Z")), "unknown shape 'Z'"),
    (_broken(lambda d: d["mouthCues"][1].update(value=1)), "unknown shape 1"),
    (_broken(lambda d: d["mouthCues"][1].update(end=0.1)), r"mouthCues\[1\] ends \(0.1\) before it starts"),
    (_broken(lambda d: d["mouthCues"][1].update(start="0.17")), "must be a number"),
    (_broken(lambda d: d["mouthCues"][1].update(end=None)), "must be a number"),
    (_broken(lambda d: d["mouthCues"][1].update(start=True)), "must be a number"),
    (_broken(lambda d: d["mouthCues"][1].update(start=float("nan"))), "finite"),
    (_broken(lambda d: d["mouthCues"][1].update(start=-1)), "finite number >= 0"),
    (_broken(lambda d: d["mouthCues"][2].update(start=0.2)), "before the previous cue ends"),
    (_broken(lambda d: d["metadata"].update(duration="long")), "must be a number"),
    (_broken(lambda d: d["metadata"].update(duration=0.5)), "after the duration"),
    (_broken(lambda d: d.update(mouthCues={})), "must be a list"),
    (_broken(lambda d: d["mouthCues"].append("X")), "must be an object"),
    (_broken(lambda d: d["mouthCues"][0].update(intensity=2)), "intensity"),
    ([], "must be a JSON object"),
])
def test_from_rhubarb_json_rejects(data, message: str) -> None:
    with pytest.raises(InvalidInput, match=message) as info:
        Timeline.from_rhubarb_json(data)
    assert info.value.code == "invalid_input"
    assert info.value.status == 400


def test_dict_round_trip_keeps_everything() -> None:
    tl = make()
    back = Timeline.from_dict(json.loads(json.dumps(tl.to_dict())))
    assert back == tl
    assert back.cues[1].intensity == 0.8
    assert back.words == (WordTiming(0.1, 0.9, "bob"),)
    with pytest.raises(InvalidInput):
        Timeline.from_dict({"duration": 1.0, "cues": [[0, 1, "Q", 1.0]]})
    with pytest.raises(InvalidInput):
        Timeline.from_dict({"cues": []})


def test_timeline_is_hashable_and_frozen() -> None:
    tl = make()
    assert hash(tl) == hash(make())
    with pytest.raises(AttributeError):
        tl.duration = 2.0  # type: ignore[misc]


def test_module_stays_light() -> None:
    code = "import sys, farm.timeline; print(sorted({'numpy', 'av', 'pocketsphinx'} & set(sys.modules)))"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"
