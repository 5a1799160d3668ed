"""The shipped characters, their expressions and poses, and the gestures that follow speech."""

from __future__ import annotations

import itertools
import shutil
from pathlib import Path

import numpy as np
import pytest

from assets.loader import (CHARACTERS_DIR, MOUTH_SHAPES, list_characters, load_character,
                           load_template)
from assets.raster import rasterize_character
from farm.errors import InvalidInput
from farm.timeline import MouthCue, Timeline, WordTiming
from node.render.cpu import CpuCompositor
from node.render.gestures import BROW_FALL_S, BROW_HOLD_S, BROW_RISE_S, emphasis_times
from node.render.scene import build_scene
from tests.test_scene import cue_timeline

SHIPPED = ("toonz", "ada", "bolt")
EXPRESSIONS = ("neutral", "happy", "concerned")


@pytest.fixture(scope="module")
def explainer():
    return load_template("explainer")


@pytest.fixture(scope="module", params=SHIPPED)
def character(request):
    return load_character(request.param)


def copy_of(name: str, tmp_path: Path) -> Path:
    return Path(shutil.copytree(CHARACTERS_DIR / name, tmp_path / name))


def test_every_shipped_character_is_listed():
    assert set(SHIPPED) <= set(list_characters())


def test_loads_with_nine_mouths_and_the_expressions(character):
    assert [s for s in MOUTH_SHAPES if character.mouth_group(s)] == list(MOUTH_SHAPES)
    assert set(EXPRESSIONS) <= set(character.expression_names)
    raster = rasterize_character(character, 200)
    assert set(raster.layers) == set(character.groups)  # every expression's groups draw


def _on_canvas(raster, group: str) -> np.ndarray:
    layer = raster.layers[group]
    out = np.zeros((raster.height, raster.width, 4), np.int16)
    h, w = layer.sprite.rgba.shape[:2]
    out[layer.y:layer.y + h, layer.x:layer.x + w] = layer.sprite.rgba
    return out


@pytest.mark.parametrize("height", [346, 720])  # the character at 360p and at 720p
def test_mouths_differ_and_stay_inside_the_mouth_box(character, height):
    raster = rasterize_character(character, height)
    scale = raster.height / character.canvas.height
    bx, by, bw, bh = (v * scale for v in character.rig.mouth_box)
    mouths = sorted({g for g in character.groups if g.startswith("mouth_")})
    assert len(mouths) >= len(MOUTH_SHAPES)
    for group in mouths:  # the expressions' rest mouths too
        layer = raster.layers[group]
        w, h = layer.sprite.size
        assert bx <= layer.x and layer.x + w <= bx + bw, group
        assert by <= layer.y and layer.y + h <= by + bh, group
    canvases = {s: _on_canvas(raster, character.mouth_group(s)) for s in MOUTH_SHAPES}
    minimum = 0.0008 * raster.width * raster.height  # 68 pixels at 360p, 300 at 720p
    for a, b in itertools.combinations(MOUTH_SHAPES, 2):
        differing = (np.abs(canvases[a] - canvases[b]).max(axis=2) > 32).sum()
        assert differing > minimum, f"{character.name}: mouths {a} and {b} differ in {differing} px"


def _frame(scene, i: int = 0) -> np.ndarray:
    return CpuCompositor(scene.art).render_rgba(scene.frame(i)).astype(np.int16)


def _face_box(scene, i: int = 0) -> tuple[slice, slice]:
    """Rows and columns around the eyes and brows of frame `i`."""
    boxes = []
    for p in scene.frame(i):
        if p.sprite.startswith(("eyes", "brows")):
            w, h = scene.art.sprites[p.sprite].size
            boxes.append((int(p.x), int(p.y), int(p.x) + w, int(p.y) + h))
    x0, y0 = min(b[0] for b in boxes), min(b[1] for b in boxes)
    x1, y1 = max(b[2] for b in boxes), max(b[3] for b in boxes)
    return slice(y0 - 4, y1 + 4), slice(x0 - 4, x1 + 4)


def test_expressions_change_the_brows_and_eyes(character, explainer):
    scenes = {e: build_scene(explainer, character, cue_timeline(1.0), 640, 360, 24, expression=e)
              for e in EXPRESSIONS}
    frames = {e: _frame(s) for e, s in scenes.items()}
    rows, cols = _face_box(scenes["neutral"])
    for a, b in itertools.combinations(EXPRESSIONS, 2):
        differing = (np.abs(frames[a][rows, cols] - frames[b][rows, cols]).max(axis=2) > 32).sum()
        assert differing > 40, f"{character.name}: {a} and {b} differ in {differing} px"


def test_the_presenting_pose_moves_an_arm(character, explainer):
    if "presenting" not in character.expression_names:
        pytest.skip(f"{character.name} has no presenting pose")
    a = build_scene(explainer, character, cue_timeline(1.0), 640, 360, 24)
    b = build_scene(explainer, character, cue_timeline(1.0), 640, 360, 24, expression="presenting")
    assert "body_point" in {p.sprite for p in b.frame(0)}
    differing = (np.abs(_frame(a) - _frame(b)).max(axis=2) > 32).sum()
    assert differing > 500


def test_only_the_expression_s_sprites_are_uploaded(explainer):
    toonz = load_character("toonz")
    scene = build_scene(explainer, toonz, cue_timeline(1.0), 320, 180, 24, expression="happy")
    assert "brows_happy" in scene.art.sprites and "brows" not in scene.art.sprites
    assert "eyes_happy" in scene.art.sprites and "eyes_open" not in scene.art.sprites


def test_unknown_expression(explainer):
    toonz = load_character("toonz")
    with pytest.raises(InvalidInput) as e:
        build_scene(explainer, toonz, cue_timeline(1.0), 320, 180, 24, expression="furious")
    assert e.value.code == "unknown_expression"
    assert "furious" in e.value.message and "neutral" in e.value.message  # names the choices


@pytest.mark.parametrize("name, old, new, named", [
    # an expression naming a group the SVG lacks: the message names both
    ("toonz", 'brows = "brows_concerned"', 'brows = "brows_gleeful"', ("brows_gleeful", "concerned")),
    # an expression replacing a slot the character does not have
    ("ada", "[expressions.happy]\n", '[expressions.happy]\nhat = "brows"\n', ("hat",)),
    # every character needs a neutral expression
    ("bolt", "[expressions.neutral]", "[expressions.calm]", ("neutral",)),
])
def test_bad_expressions_are_refused(tmp_path, name, old, new, named):
    folder = copy_of(name, tmp_path)
    toml = folder / "character.toml"
    text = toml.read_text()
    assert old in text
    toml.write_text(text.replace(old, new, 1))
    with pytest.raises(InvalidInput) as e:
        load_character(folder)
    assert e.value.code == "invalid_character"
    assert all(word in e.value.message for word in named)


# --- gestures ------------------------------------------------------------------------

LOUD_AT = 5.0  # seconds: the one stressed word


def talk(loud: float, duration: float = 10.0) -> Timeline:
    """A word every half second, every one at intensity 0.4 but the one at LOUD_AT."""
    cues, words = [], []
    for k in range(1, int(duration * 2)):
        start = k * 0.5
        intensity = loud if abs(start - LOUD_AT) < 1e-9 else 0.4
        cues.append(MouthCue(start, start + 0.3, "C", intensity))
        words.append(WordTiming(start, start + 0.3, f"w{k}"))
    return Timeline(duration, cues, words)


def _by_name(frame) -> dict:
    return {p.sprite.split("_")[0]: p for p in frame}


def test_a_loud_word_raises_the_brows_and_nods_there_only(character, explainer):
    fps = 30
    loud = build_scene(explainer, character, talk(0.95), 640, 360, fps)
    flat = build_scene(explainer, character, talk(0.4), 640, 360, fps)
    window = (LOUD_AT - BROW_RISE_S - 1 / fps, LOUD_AT + BROW_HOLD_S + BROW_FALL_S + 1 / fps)
    lifted = nodded = 0
    for i in range(loud.n_frames):
        a, b = _by_name(loud.frame(i)), _by_name(flat.frame(i))
        if not window[0] <= i / fps <= window[1]:
            assert loud.frame(i) == flat.frame(i), f"frame {i} moved away from the stressed word"
            continue
        # Relative to the head, the brows go up; the head itself dips.
        lift = (b["brows"].y - b["head"].y) - (a["brows"].y - a["head"].y)
        dip = a["head"].y - b["head"].y
        assert lift >= 0 and dip >= 0
        lifted, nodded = lifted + (lift > 0), nodded + (dip > 0)
        assert a["body"] == b["body"]
    assert lifted >= 0.3 * fps and nodded >= 3  # up for about half a second, a short nod


def test_emphasis_picks_the_loudest_words_spaced_apart():
    from assets.loader import Gestures
    g = Gestures()
    words = [WordTiming(k * 0.5, k * 0.5 + 0.3, f"w{k}") for k in range(1, 40)]
    level = {3.0: 0.9, 3.5: 0.95, 8.0: 0.9, 12.0: 0.85}  # 3.0 and 3.5 are too close
    cues = [MouthCue(w.start, w.end, "C", level.get(w.start, 0.3)) for w in words]
    assert emphasis_times(cues, words, g) == (3.5, 8.0, 12.0)
    flat = [MouthCue(w.start, w.end, "C", 1.0) for w in words]  # Rhubarb's files: all 1.0
    assert emphasis_times(flat, words, g) == ()
    assert emphasis_times(cues, [], g) == () and emphasis_times([], words, g) == ()


def test_gestures_and_saccades_are_deterministic(character, explainer):
    args = (explainer, character, talk(0.95, 12.0), 1280, 720, 24)
    a, b = build_scene(*args), build_scene(*args)
    assert all(a.frame(i) == b.frame(i) for i in range(a.n_frames))
    assert (_frame(a, 120) == _frame(b, 120)).all()


def test_saccades_are_small_whole_pixel_glances(character, explainer):
    scene = build_scene(explainer, character, cue_timeline(30.0), 1280, 720, 24)
    amp = character.gestures.saccade_amplitude
    limit = (round(amp[0] * 720) + 1, round(amp[1] * 720) + 1)
    gazes, changes, prev = set(), 0, None
    for i in range(scene.n_frames):
        for p in scene.frame(i):
            assert p.x == int(p.x) and p.y == int(p.y)  # whole pixels: the exact path
        f = _by_name(scene.frame(i))
        if f["eyes"].sprite != "eyes_open":  # a blink: another sprite, another offset
            continue
        gaze = (f["eyes"].x - f["head"].x, f["eyes"].y - f["head"].y)
        changes += prev is not None and gaze != prev
        prev = gaze
        gazes.add(gaze)
    xs, ys = {g[0] for g in gazes}, {g[1] for g in gazes}
    assert max(xs) - min(xs) <= 2 * limit[0] and max(ys) - min(ys) <= 2 * limit[1]
    assert len(gazes) >= 3 and 8 <= changes <= 35  # a glance every 1 to 3 s, over 30 s


def test_idle_frames_still_repeat(character, explainer):
    quiet = build_scene(explainer, character, cue_timeline(10.0), 1280, 720, 30)
    keys = [quiet.frame_key(i) for i in range(quiet.n_frames)]
    assert sum(a == b for a, b in zip(keys, keys[1:])) > 0.6 * len(keys)


# --- the compositors agree on every character --------------------------------------

@pytest.fixture(scope="module")
def egl_ctx():
    from node.render.gl import create_context
    ctx = create_context()
    yield ctx
    ctx.release()


@pytest.mark.parametrize("name", SHIPPED)
def test_character_frames_match_gl(egl_ctx, explainer, name):
    from node.render.gl import GLCompositor
    character = load_character(name)
    for expression in ("neutral", "presenting"):
        scene = build_scene(explainer, character, talk(0.95, 6.0), 640, 360, 24,
                            expression=expression)
        cpu = CpuCompositor(scene.art)
        with GLCompositor(scene.art, egl_ctx) as gl:
            for i in range(0, scene.n_frames, 11):
                for got, want in zip(cpu.render_yuv(scene.frame(i)), gl.render_yuv(scene.frame(i))):
                    assert int(np.abs(got.astype(int) - want.astype(int)).max()) <= 1, (expression, i)
