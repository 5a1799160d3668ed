"""farm.timeline: cue validation, lookup, sampling and Rhubarb Lip Sync interchange."""

from __future__ import annotations

import json
import math
import subprocess
import sys

import pytest

from farm.errors import InvalidInput
from farm.timeline import SHAPES, MouthCue, Timeline, WordTiming, check_extended_shapes

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


# --- the other Rhubarb formats, byte for byte -------------------------------------

RHUBARB_XML = """<?xml version="1.0" encoding="utf-8"?>
<rhubarbResult>
  <metadata>
    <soundFile>/voice/a &amp; b.wav</soundFile>
    <duration>1.23</duration>
  </metadata>
  <mouthCues>
    <mouthCue start="0.00" end="0.17">X</mouthCue>
    <mouthCue start="0.17" end="0.31">B</mouthCue>
    <mouthCue start="0.31" end="0.52">D</mouthCue>
    <mouthCue start="0.52" end="0.60">A</mouthCue>
    <mouthCue start="0.60" end="0.95">F</mouthCue>
    <mouthCue start="0.95" end="1.23">X</mouthCue>
  </mouthCues>
</rhubarbResult>
"""


def rhubarb_timeline() -> Timeline:
    return Timeline.from_rhubarb_json(json.loads(RHUBARB_TEXT))


def test_xml_matches_rhubarb() -> None:
    assert rhubarb_timeline().to_xml_text("/voice/a & b.wav") == RHUBARB_XML
    assert "<soundFile/>" in rhubarb_timeline().to_xml_text("")  # Boost writes empty text so


def test_dat_matches_rhubarb() -> None:
    # Frame = 1 + floor(seconds * fps); the end frame closes the mouth.
    assert rhubarb_timeline().to_dat_text() == "MohoSwitch1\n1 X\n5 B\n8 D\n13 A\n15 F\n23 X\n30 X\n"
    assert rhubarb_timeline().to_dat_text(100) == "MohoSwitch1\n1 X\n18 B\n32 D\n53 A\n61 F\n96 X\n124 X\n"
    assert rhubarb_timeline().to_dat_text(24, preston_blair=True) == (
        "MohoSwitch1\n1 rest\n5 etc\n8 AI\n13 MBP\n15 U\n23 rest\n30 rest\n")


def test_dat_keeps_the_first_of_two_shapes_in_one_frame() -> None:
    tl = Timeline(0.5, (MouthCue(0.0, 0.17, "X"), MouthCue(0.17, 0.20, "B"), MouthCue(0.20, 0.5, "D")))
    # 0.17 s and 0.20 s both fall in frame 5 at 24 fps: B shows, D waits for the next cue.
    assert tl.to_dat_text() == "MohoSwitch1\n1 X\n5 B\n13 X\n"
    short = Timeline(0.01, (MouthCue(0.0, 0.01, "D"),))
    assert short.to_dat_text() == "MohoSwitch1\n1 D\n2 X\n"  # the end moves past the last shape


@pytest.mark.parametrize("rate", [23.9, 100.5, 0, True, "24"])
def test_dat_frame_rate_limits(rate) -> None:
    with pytest.raises(InvalidInput) as info:
        rhubarb_timeline().to_dat_text(rate)
    assert info.value.code == "invalid_frame_rate"


def test_extended_shapes_fall_back_to_basic_ones() -> None:
    tl = Timeline(1.0, (MouthCue(0.1, 0.3, "G"), MouthCue(0.3, 0.5, "A"), MouthCue(0.5, 0.7, "H"),
                        MouthCue(0.7, 0.8, "C")))
    # Without G, H, X (as Rhubarb 1.13+): G -> A, H -> C, X -> A, then equal neighbours join.
    assert tl.to_tsv("") == "0.00\tA\n0.50\tC\n0.80\tA\n1.00\tA\n"
    assert tl.to_tsv("X") == "0.00\tX\n0.10\tA\n0.50\tC\n0.80\tX\n1.00\tX\n"
    assert tl.to_tsv("GH") == "0.00\tA\n0.10\tG\n0.30\tA\n0.50\tH\n0.70\tC\n0.80\tA\n1.00\tA\n"
    assert [c["value"] for c in tl.to_rhubarb_json(extended_shapes="")["mouthCues"]] == ["A", "C", "A"]
    assert ">X<" not in tl.to_xml_text("a.wav", "") and "<mouthCue" in tl.to_xml_text("a.wav", "")
    assert tl.to_dat_text(24, "") == "MohoSwitch1\n1 A\n13 C\n20 A\n25 A\n"
    assert Timeline(0.0, ()).to_rhubarb_json(extended_shapes="GH")["mouthCues"][0]["value"] == "A"


@pytest.mark.parametrize("given, expected", [("GHX", "GHX"), ("XG", "GX"), ("", ""), ("ABH", "H")])
def test_check_extended_shapes(given: str, expected: str) -> None:
    assert check_extended_shapes(given) == expected


@pytest.mark.parametrize("given", ["GQ", "gh", "1", None])
def test_check_extended_shapes_refuses(given) -> None:
    with pytest.raises(InvalidInput) as info:
        check_extended_shapes(given)
    assert info.value.code == "invalid_extended_shapes"


def test_empty_timeline_in_every_format() -> None:
    empty = Timeline(0.004, ())  # shorter than Rhubarb's 10 ms resolution
    assert empty.to_tsv() == "0.00\tX\n"  # no cues, then the end
    assert '{ "start": 0.00, "end": 0.00, "value": "X" }' in empty.to_json_text("a.wav")
    assert '<mouthCue start="0.00" end="0.00">X</mouthCue>' in empty.to_xml_text("a.wav")
    assert empty.to_dat_text() == "MohoSwitch1\n1 X\n"


def test_duration_is_truncated_to_centiseconds_like_rhubarb() -> None:
    assert '"duration": 2.78' in Timeline.silent(2.78625).to_json_text()
    assert Timeline.silent(0.29).to_tsv() == "0.00\tX\n0.29\tX\n"  # 28.999... cs stays 29


def test_export_dispatches_and_refuses_unknown_formats() -> None:
    tl = rhubarb_timeline()
    assert tl.export("tsv") == tl.to_tsv()
    assert tl.export("json", sound_file="a.wav") == tl.to_json_text("a.wav")
    assert tl.export("xml", sound_file="a.wav") == tl.to_xml_text("a.wav")
    assert tl.export("dat", dat_frame_rate=30, dat_preston_blair=True) == tl.to_dat_text(30, preston_blair=True)
    with pytest.raises(InvalidInput) as info:
        tl.export("csv")
    assert info.value.code == "invalid_format"
