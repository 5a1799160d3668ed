"""`toonz lipsync` as animators' tools call it: Rhubarb's formats and flags, one-line errors."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import wave
from pathlib import Path

import pytest

from farm.timeline import Timeline

REPO = Path(__file__).resolve().parents[1]


def toonz(*args, cwd=None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "farm.cli.main", *map(str, args)], capture_output=True,
                          text=True, cwd=cwd or REPO, timeout=300)


@pytest.fixture(scope="module")
def dialog(goforward, tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("dialog") / "goforward.txt"
    path.write_text(goforward[1], encoding="utf-8")
    return path


def test_rhubarb_flags_write_each_format(goforward, dialog, tmp_path: Path) -> None:
    audio = goforward[0]
    outputs = {}
    for fmt in ("tsv", "json", "xml", "dat"):
        out = tmp_path / f"cues.{fmt}"
        res = toonz("lipsync", audio, "--dialogFile", dialog, "--exportFormat", fmt, "--output", out)
        assert res.returncode == 0, res.stderr
        assert res.stdout == "" and res.stderr == ""
        outputs[fmt] = out.read_text(encoding="utf-8")
    data = json.loads(outputs["json"])
    assert data["metadata"] == {"soundFile": str(audio.resolve()), "duration": 2.78}
    timeline = Timeline.from_rhubarb_json(data)
    # Every format carries the same cues.
    assert outputs["tsv"] == timeline.to_tsv()
    assert outputs["xml"] == timeline.to_xml_text(str(audio.resolve()))
    assert outputs["dat"] == timeline.to_dat_text(24)
    assert outputs["tsv"].startswith("0.00\tX\n") and outputs["tsv"].endswith("2.78\tX\n")
    assert outputs["dat"].startswith("MohoSwitch1\n1 X\n")
    assert {c["value"] for c in data["mouthCues"]} - {"X"}


def test_short_flags_stdout_and_the_default_format(goforward, dialog, tmp_path: Path) -> None:
    tsv = toonz("lipsync", goforward[0], "-d", dialog)
    assert tsv.returncode == 0, tsv.stderr
    assert tsv.stdout.splitlines()[-1] == "2.78\tX"  # TSV, Rhubarb's default
    # Without -f, the output file's extension decides.
    res = toonz("lipsync", goforward[0], "-d", dialog, "-o", tmp_path / "cues.json")
    assert res.returncode == 0, res.stderr
    assert json.loads((tmp_path / "cues.json").read_text())["mouthCues"][0]["start"] == 0
    dat = toonz("lipsync", goforward[0], "-f", "dat", "--dat-frame-rate", "30", "--dat-use-preston-blair")
    assert dat.stdout.startswith("MohoSwitch1\n1 rest\n") and dat.stdout.splitlines()[-1] == "84 rest"


def test_extended_shapes_and_recognizers(goforward, dialog) -> None:
    res = toonz("lipsync", goforward[0], "-d", dialog, "--extendedShapes", "", "-f", "json")
    assert res.returncode == 0, res.stderr
    assert {c["value"] for c in json.loads(res.stdout)["mouthCues"]} <= set("ABCDEF")
    res = toonz("lipsync", goforward[0], "--extended-shapes", "gx", "-f", "json")
    assert res.returncode == 0, res.stderr
    assert "H" not in {c["value"] for c in json.loads(res.stdout)["mouthCues"]}
    # The phonetic recogniser ignores the dialog file and still moves the mouth.
    res = toonz("lipsync", goforward[0], "-r", "phonetic", "--recognizer", "phonetic", "-d", dialog, "-q")
    assert res.returncode == 0, res.stderr
    assert set(line.split("\t")[1] for line in res.stdout.splitlines()) - {"X"}
    res = toonz("lipsync", goforward[0], "-r", "sphinx3")
    assert res.returncode != 0 and "phonetic" in res.stderr  # the choices are named


def test_help_teaches_formats_shapes_and_flags() -> None:
    res = toonz("lipsync", "--help")
    assert res.returncode == 0
    for needle in ("--dialogFile", "--exportFormat", "--extendedShapes", "--datFrameRate", "phonetic",
                   "MohoSwitch1", "teeth on lip", "examples:", "exit with 2"):
        assert needle in res.stdout, needle


def _silent_wav(path: Path, seconds: float, rate: int = 16000) -> Path:
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1), w.setsampwidth(2), w.setframerate(rate)
        w.writeframes(b"\0\0" * round(seconds * rate))
    return path


@pytest.mark.parametrize("args, code", [
    (["{wav}", "--extendedShapes", "GQ"], "invalid_extended_shapes"),
    (["{wav}", "-f", "dat", "--datFrameRate", "12"], "invalid_frame_rate"),
    (["{notaudio}"], "unreadable_audio"),
    (["{wav}", "-d", "{binary}"], "unreadable_transcript"),
    (["{wav}", "-d", "{huge}"], "transcript_too_long"),
    (["{hour}"], "audio_too_long"),
    (["{wav}", "--threads", "0"], "invalid_threads"),
    (["missing.wav"], "no such audio file"),
])
def test_errors_are_one_line(args, code, goforward, tmp_path: Path) -> None:
    (tmp_path / "notaudio.wav").write_bytes(b"RIFF\x00\x00\x00\x00WAVEfmt garbage")
    (tmp_path / "binary.txt").write_bytes(b"\xff\xfe\x00 not utf-8 \xc3\x28")
    (tmp_path / "huge.txt").write_text("word " * 100_000)
    subs = {"{wav}": goforward[0], "{notaudio}": tmp_path / "notaudio.wav",
            "{binary}": tmp_path / "binary.txt", "{huge}": tmp_path / "huge.txt"}
    if "{hour}" in args:  # an hour and a minute of silence, FLAC-compressed to almost nothing
        subs["{hour}"] = tmp_path / "hour.flac"
        subprocess.run(["sox", "-n", "-r", "8000", "-c", "1", str(subs["{hour}"]), "trim", "0", "3660"],
                       check=True)
    res = toonz("lipsync", *[subs.get(a, a) for a in args], "-o", tmp_path / "out.tsv", cwd=tmp_path)
    assert res.returncode == 2
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("toonz lipsync: error: "), res.stderr
    assert code in lines[0]
    assert not (tmp_path / "out.tsv").exists()


def test_a_5_ms_file_and_silence_are_not_errors(tmp_path: Path) -> None:
    tiny = _silent_wav(tmp_path / "tiny.wav", 0.005)
    res = toonz("lipsync", tiny, "-f", "json")
    assert res.returncode == 0, res.stderr
    data = json.loads(res.stdout)
    assert data["metadata"]["duration"] == 0.0
    assert data["mouthCues"] == [{"start": 0.0, "end": 0.0, "value": "X"}]
    res = toonz("lipsync", _silent_wav(tmp_path / "quiet.wav", 3.0, 44100), "-f", "tsv")
    assert res.returncode == 0, res.stderr
    assert res.stdout == "0.00\tX\n3.00\tX\n"


def test_output_paths_with_odd_characters(goforward, tmp_path: Path) -> None:
    odd = tmp_path / "café & <co>.wav"
    odd.write_bytes(goforward[0].read_bytes())
    res = toonz("lipsync", odd, "-f", "xml")
    assert res.returncode == 0, res.stderr
    assert f"<soundFile>{os.fspath(odd).replace('&', '&amp;').replace('<', '&lt;').replace('>', '&gt;')}" \
           f"</soundFile>" in res.stdout
    res = toonz("lipsync", odd, "-f", "json")
    assert '"soundFile": "' in res.stdout and "caf\\u00e9 & <co>.wav" in res.stdout
