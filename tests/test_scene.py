"""The scene builder: layout, mouth timing, blinks, idle motion, determinism."""

from __future__ import annotations

import math

import pytest

from assets.loader import MOUTH_SHAPES
from node.render.scene import blink_frames, build_scene


class cue_timeline:
    """The two members of farm.timeline.Timeline the scene uses: a fake at the edge."""

    def __init__(self, duration: float, shapes: str = "X") -> None:
        self.duration = duration
        self.shapes = shapes

    def sample(self, fps: float, n_frames: int) -> list[str]:
        # Cycle through `shapes`, a fifth of a second each.
        return [self.shapes[int(i / fps * 5) % len(self.shapes)] for i in range(n_frames)]


@pytest.fixture(scope="module")
def talking(toonz, explainer):
    return build_scene(explainer, toonz, cue_timeline(12.0, "XABCDEFGHX"), 640, 360, 30)


def test_frame_count(toonz, explainer):
    assert build_scene(explainer, toonz, cue_timeline(2.0), 640, 360, 30).n_frames == 60
    assert build_scene(explainer, toonz, cue_timeline(2.01), 640, 360, 30).n_frames == 61
    assert build_scene(explainer, toonz, cue_timeline(0.0), 640, 360, 24).n_frames == 1


def test_art(talking):
    art = talking.art
    assert (art.width, art.height) == (640, 360)
    assert art.background.shape == (360, 640, 4)
    for i in range(talking.n_frames):
        for p in talking.frame(i):
            assert p.sprite in art.sprites
            assert p.x == int(p.x) and p.y == int(p.y)  # whole pixels
            assert p.scale == 1.0 and p.opacity == 1.0


def test_draw_order(talking):
    names = [p.sprite for p in talking.frame(0)]
    assert names[:2] == ["body", "head"]
    assert names[2] in ("eyes_open", "eyes_closed")
    assert names[3] == "brows" and names[4].startswith("mouth_")


def test_mouth_follows_the_timeline(talking):
    timeline = cue_timeline(12.0, "XABCDEFGHX")
    expected = timeline.sample(30, talking.n_frames)
    assert set(expected) == set(MOUTH_SHAPES)
    for i, shape in enumerate(expected):
        assert talking.frame(i)[-1].sprite == f"mouth_{shape}"
        assert talking.mouth_shape(i) == shape


def test_head_layers_move_together(talking):
    offsets = set()
    for i in range(talking.n_frames):
        by = {p.sprite: p for p in talking.frame(i)}
        offsets.add((by["brows"].x - by["head"].x, by["brows"].y - by["head"].y))
    assert len(offsets) == 1


def test_deterministic(toonz, explainer):
    args = (explainer, toonz, cue_timeline(8.0, "ABCDX"), 1280, 720, 24)
    a, b = build_scene(*args), build_scene(*args)
    assert a.n_frames == b.n_frames
    assert all(a.frame(i) == b.frame(i) for i in range(a.n_frames))
    assert (a.art.background == b.art.background).all()


def test_blinks(talking):
    closed = [i for i in range(talking.n_frames) if talking.frame(i)[2].sprite == "eyes_closed"]
    runs = []
    for i in closed:
        if runs and runs[-1][-1] == i - 1:
            runs[-1].append(i)
        else:
            runs.append([i])
    assert 2 <= len(runs) <= 5  # one every 3 to 5 seconds in 12 s
    assert all(len(run) == 3 for run in runs)
    gaps = [(b[0] - a[0]) / 30 for a, b in zip(runs, runs[1:])]
    assert all(2.9 <= g <= 5.1 for g in gaps)


def test_blinks_happen_at_the_same_time_at_every_fps(toonz):
    at24 = min(blink_frames(toonz.idle, 10, 24, 240)) / 24
    at60 = min(blink_frames(toonz.idle, 10, 60, 600)) / 60
    assert abs(at24 - at60) < 1 / 24


def test_idle_frames_repeat(toonz, explainer):
    quiet = build_scene(explainer, toonz, cue_timeline(10.0), 1280, 720, 30)
    keys = [quiet.frame_key(i) for i in range(quiet.n_frames)]
    repeats = sum(a == b for a, b in zip(keys, keys[1:]))
    assert repeats > 0.6 * len(keys)  # the renderer reuses these
    assert len(set(keys)) > 3  # but the character does breathe
    ys = {p.y for k in keys for p in k if p.sprite == "body"}
    assert 2 <= max(ys) - min(ys) <= 0.02 * 720  # gentle


def test_frame_key_matches_equality(talking):
    for i in range(talking.n_frames - 1):
        assert (talking.frame_key(i) == talking.frame_key(i + 1)) == \
            (talking.frame(i) == talking.frame(i + 1))
    hash(talking.frame_key(0))


@pytest.mark.parametrize("size", [(640, 360), (1920, 1080), (3840, 2160)])
def test_layout_is_resolution_independent(toonz, explainer, size):
    width, height = size
    scene = build_scene(explainer, toonz, cue_timeline(1.0), width, height, 30)
    head = scene.frame(0)[1]
    hw, hh = scene.art.sprites["head"].size
    centre_x = (head.x + hw / 2) / width
    assert abs(centre_x - explainer.character.x) < 0.02
    ref = build_scene(explainer, toonz, cue_timeline(1.0), 1280, 720, 30)
    ref_head = ref.frame(0)[1]
    assert hh / height == pytest.approx(ref.art.sprites["head"].size[1] / 720, rel=0.02)
    assert head.y / height == pytest.approx(ref_head.y / 720, abs=0.01)


def test_bad_inputs(toonz, explainer):
    with pytest.raises(IndexError):
        build_scene(explainer, toonz, cue_timeline(1.0), 640, 360, 30).frame(30)
    with pytest.raises(ValueError):
        build_scene(explainer, toonz, cue_timeline(1.0, "XQ"), 640, 360, 30)
    for fps in (0, -1, math.nan):
        with pytest.raises(ValueError):
            build_scene(explainer, toonz, cue_timeline(1.0), 640, 360, fps)
