"""The `toonz` command line: real subprocesses, real files, one-line errors."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
import redis

from farm.tenants import digest
from farm import keys
from farm.timeline import Timeline
from tests.media import probe


def toonz(*args, cwd=None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "farm.cli.main", *map(str, args)],
                          capture_output=True, text=True, cwd=cwd, timeout=300)


def test_help_teaches_every_command():
    out = toonz("--help").stdout
    for cmd in ("up", "scheduler", "node", "render", "lipsync", "submit", "admin", "autoscale"):
        assert cmd in out
        assert toonz(cmd, "--help").returncode == 0


def test_lipsync_writes_rhubarb_json(goforward, tmp_path):
    audio, text = goforward
    (tmp_path / "t.txt").write_text(text)
    res = toonz("lipsync", audio, "-d", tmp_path / "t.txt", "-o", tmp_path / "cues.json")
    assert res.returncode == 0, res.stderr
    data = json.loads((tmp_path / "cues.json").read_text())
    assert data["metadata"]["duration"] == pytest.approx(2.8, abs=0.1)
    assert data["mouthCues"][0]["start"] == 0
    assert {c["value"] for c in data["mouthCues"]} - {"X"}


def test_render_from_a_rhubarb_timeline(goforward, tmp_path):
    cues = {"metadata": {"soundFile": "x.wav", "duration": 2.8},
            "mouthCues": [{"start": 0.0, "end": 0.5, "value": "X"}, {"start": 0.5, "end": 1.0, "value": "D"},
                          {"start": 1.0, "end": 1.6, "value": "A"}, {"start": 1.6, "end": 2.8, "value": "X"}]}
    (tmp_path / "cues.json").write_text(json.dumps(cues))
    out = tmp_path / "out.mp4"
    res = toonz("render", goforward[0], "--timeline", tmp_path / "cues.json", "--quality", "preview",
                "-o", out)
    assert res.returncode == 0, res.stderr
    facts = probe(out)
    assert (facts.width, facts.height) == (640, 360) and facts.audio_codec == "aac"


def test_render_options_reach_the_frames(goforward, tmp_path):
    """Template, second character, expression, captions, logo and watermark flags draw
    the frames `render` draws with the same options, and change them."""
    from PIL import Image

    from node.pipeline import render

    Image.new("RGBA", (60, 30), (230, 40, 40, 255)).save(tmp_path / "logo.png")
    cues = {"metadata": {"soundFile": "x.wav", "duration": 2.8},
            "mouthCues": [{"start": 0.0, "end": 0.6, "value": "X"}, {"start": 0.6, "end": 1.2, "value": "E"},
                          {"start": 1.2, "end": 2.8, "value": "X"}]}
    (tmp_path / "cues.json").write_text(json.dumps(cues))
    options = {"template": "podcast", "second_character": "bolt", "expression": "happy",
               "captions": False, "watermark": True, "logo": tmp_path / "logo.png"}
    res = toonz("render", goforward[0], "--timeline", tmp_path / "cues.json", "--quality", "preview",
                "--template", "podcast", "--second-character", "bolt", "--expression", "happy",
                "--no-captions", "--watermark", "--logo", tmp_path / "logo.png", "-o", tmp_path / "cli.mp4")
    assert res.returncode == 0, res.stderr
    timeline = Timeline.from_rhubarb_json(cues)
    same = render(goforward[0], tmp_path / "same.mp4", timeline=timeline, quality="preview", **options)
    plain = render(goforward[0], tmp_path / "plain.mp4", timeline=timeline, quality="preview",
                   template="podcast")
    poster = np.asarray(Image.open(tmp_path / "cli.poster.png"))
    np.testing.assert_array_equal(poster, np.asarray(Image.open(same.poster)))
    assert not np.array_equal(poster, np.asarray(Image.open(plain.poster)))


@pytest.mark.parametrize("args,needle", [
    (["render", "missing.wav", "-o", "x.mp4"], "no such audio file"),
    (["render", "{notaudio}", "-o", "x.mp4"], "unreadable_audio"),
    (["render", "{wav}", "--timeline", "{badjson}", "-o", "x.mp4"], "invalid_timeline"),
    (["render", "{wav}", "--template", "nope", "-o", "x.mp4"], "unknown_template"),
    (["render", "{wav}", "--expression", "grumpy", "-o", "x.mp4"], "unknown_expression"),
    (["render", "{wav}", "--second-character", "bolt", "-o", "x.mp4"], "no_second_seat"),
    (["render", "{wav}", "--template", "podcast", "--second-character", "nobody", "-o", "x.mp4"],
     "unknown_character"),
    (["render", "{wav}", "--logo", "{notaudio}", "-o", "x.mp4"], "invalid_logo"),
    (["render", "{wav}", "--logo", "missing.png", "-o", "x.mp4"], "no such logo file"),
    (["lipsync", "missing.wav"], "no such audio file"),
    (["submit", "{wav}", "--audio-url", "http://127.0.0.1:9/a.wav"], "AUDIO file or --audio-url"),
    (["submit", "--audio-url", "http://127.0.0.1:9/a.wav", "--logo", "{notaudio}"],
     "a logo file is uploaded with an AUDIO file"),
])
def test_cli_errors_are_one_line(args, needle, tmp_path, goforward):
    (tmp_path / "notaudio.wav").write_text("hello, I am text")
    (tmp_path / "bad.json").write_text("{nope")
    subs = {"{notaudio}": tmp_path / "notaudio.wav", "{badjson}": tmp_path / "bad.json",
            "{wav}": goforward[0]}
    res = toonz(*[subs.get(a, a) for a in args], cwd=tmp_path)
    assert res.returncode == 2
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and needle in lines[0], res.stderr
    assert not (tmp_path / "x.mp4").exists()


def test_admin_create_key_prints_the_key_last(redis_url):
    res = toonz("admin", "create-key", "--tenant", "acme", "--tier", "starter", "--redis-url", redis_url)
    assert res.returncode == 0, res.stderr
    key = res.stdout.split()[-1]
    r = redis.Redis.from_url(redis_url)
    assert r.hget(keys.api_key(digest(key)), "role") == b"api"
    bad = toonz("admin", "create-key", "--tenant", "acme", "--tier", "gold", "--redis-url", redis_url)
    assert bad.returncode == 2 and "invalid choice" in bad.stderr


def test_up_prints_console_and_key_then_stops_cleanly(tmp_path):
    import signal
    import time

    import psutil
    import requests

    data = tmp_path / "farm"
    proc = subprocess.Popen([sys.executable, "-m", "farm.cli.main", "up", "--port", "0", "--data-dir",
                             str(data), "--nodes", "2"], stdout=subprocess.PIPE, text=True)
    try:
        lines = {}
        while not {"Console", "API key"} <= lines.keys():
            line = proc.stdout.readline()
            assert line, f"toonz up exited early with {proc.wait()}"
            name, _, value = line.partition(": ")
            lines[name] = value.strip()
        base = lines["Console"].rsplit("/console", 1)[0]
        assert (data / "api-key").read_text().strip() == lines["API key"]
        admin = (data / "admin-key").read_text().strip()
        assert requests.get(base + "/v1/usage", headers={"Authorization": f"Bearer {lines['API key']}"}).ok
        assert requests.get(lines["Console"]).status_code == 200
        deadline = time.monotonic() + 30
        nodes = []
        while len(nodes) < 2 and time.monotonic() < deadline:  # each node process checks in
            nodes = requests.get(base + "/v1/admin/overview",
                                 headers={"Authorization": f"Bearer {admin}"}).json()["nodes"]
            time.sleep(0.2)
        assert sorted(n["node"] for n in nodes) == ["local-node-1", "local-node-2"]
        children = psutil.Process(proc.pid).children(recursive=True)
        assert len(children) == 4  # redis-server, scheduler, two nodes
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(60) == 0
    assert not [c for c in children if c.is_running() and c.status() != psutil.STATUS_ZOMBIE]
