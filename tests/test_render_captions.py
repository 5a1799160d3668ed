"""Burned-in captions: the spoken word highlighted, GL and CPU agreeing, sprites that do
not grow with the video, and the template's caption style validated."""

from __future__ import annotations

import numpy as np
import pytest

from assets.loader import TEMPLATES_DIR, load_template
from farm.errors import InvalidInput
from farm.timeline import WordTiming as W
from node.render.captions import build_captions
from node.render.cpu import CpuCompositor
from node.render.gl import GLCompositor, create_context
from node.render.scene import build_scene
from tests.test_render_cpu import cue_timeline

WORDS = [W(0.2, 0.5, "Hello"), W(0.5, 0.9, "there,"), W(0.9, 1.3, "farm."),
         W(2.2, 2.6, "Again!")]


@pytest.fixture(scope="module")
def egl_ctx():
    ctx = create_context()
    yield ctx
    ctx.release()


def _highlighted(scene, i: int, track_sprites: dict) -> set[str]:
    """Names of the highlight-coloured glyph sprites placed in frame `i`."""
    hi = "ffd23f"
    return {p.sprite for p in scene.frame(i) if p.sprite in track_sprites and hi in p.sprite}


def test_the_word_being_spoken_is_highlighted(toonz, explainer):
    scene = build_scene(explainer, toonz, cue_timeline(3.0, "XDAFX"), 640, 360, 30, captions=WORDS)
    track = build_captions(WORDS, explainer.captions, 640, 360, 30, scene.n_frames)
    frame = {t: round(t * 30) for t in (0.1, 0.3, 0.7, 1.1, 1.8, 2.4)}
    assert track.placements(frame[0.1]) == ()  # before the first word: no caption
    assert track.placements(frame[1.8]) == ()  # in the pause after the sentence: none
    # "Hello" is highlighted while spoken: 5 glyph placements in the highlight colour.
    hello = [p for p in track.placements(frame[0.3]) if "ffd23f" in p.sprite]
    assert len(hello) == len("Hello")
    there = [p for p in track.placements(frame[0.7]) if "ffd23f" in p.sprite]
    assert len(there) == len("there,") and min(p.x for p in there) > max(p.x for p in hello)
    # A new sentence is a new caption.
    assert len([p for p in track.placements(frame[2.4]) if "ffd23f" in p.sprite]) == len("Again!")
    # The scene draws the caption over everything else, and its pixels show the colour.
    cpu = CpuCompositor(scene.art)
    rgb = cpu.render_rgba(scene.frame(frame[0.3]))[..., :3].astype(int)
    yellow = (np.abs(rgb - np.array([255, 210, 63])).sum(axis=-1) < 30).sum()
    assert yellow > 50
    assert _highlighted(scene, frame[0.3], track.sprites)


def test_caption_frames_match_gl(egl_ctx, toonz, explainer):
    scene = build_scene(explainer, toonz, cue_timeline(3.0, "XDAFX"), 640, 360, 24, captions=WORDS)
    cpu = CpuCompositor(scene.art)
    with GLCompositor(scene.art, egl_ctx) as gl:
        for t in (0.3, 0.7, 1.1, 2.4):
            i = round(t * 24)
            for got, want in zip(cpu.render_yuv(scene.frame(i)), gl.render_yuv(scene.frame(i))):
                assert np.abs(got.astype(int) - want.astype(int)).max() <= 1


def test_sprites_do_not_grow_with_the_video(explainer):
    text = "the quick brown fox jumps over the lazy dog and keeps running".split()
    short = [W(k * 0.3, k * 0.3 + 0.25, w) for k, w in enumerate(text)]
    long = [W(k * 0.3, k * 0.3 + 0.25, text[k % len(text)]) for k in range(3000)]
    a = build_captions(short, explainer.captions, 1280, 720, 30, 200)
    b = build_captions(long, explainer.captions, 1280, 720, 30, 30 * 901)
    assert len(b.cues) > 100 * len(a.cues) / 2
    assert len(b.sprites) <= len(a.sprites) + 8  # a few more band widths at most
    assert sum(s.rgba.nbytes for s in b.sprites.values()) < 4 * 2**20


def test_same_inputs_same_caption_frames(toonz, explainer):
    frames = []
    for _ in range(2):
        scene = build_scene(explainer, toonz, cue_timeline(3.0, "XDAFX"), 320, 180, 24, captions=WORDS)
        frames.append(CpuCompositor(scene.art).render_rgba(scene.frame(10)))
    assert np.array_equal(*frames)


def test_long_words_wrap_inside_the_band(explainer):
    # Capitals are twice as wide as the letters a line's length in characters assumes:
    # this one caption of a line's worth of characters needs two lines.
    words = [W(k * 0.1, k * 0.1 + 0.1, "WMWMW") for k in range(7)]
    track = build_captions(words, explainer.captions, 320, 180, 24, 30)
    assert len(track.cues) == 1
    band = track.placements(5)[0]
    sprite = track.sprites[band.sprite]
    glyphs = track.placements(5)[1:]
    assert 0 <= band.x and band.x + sprite.size[0] <= 320
    tops = sorted({g.y for g in glyphs})
    assert tops[-1] - tops[0] >= 8  # a second line, a line height below the first
    for g in glyphs:
        w, h = track.sprites[g.sprite].size
        assert band.x <= g.x and g.x + w <= band.x + sprite.size[0]
        assert band.y <= g.y and g.y + h <= band.y + sprite.size[1]


def test_bad_caption_style_is_refused(tmp_path):
    text = tmp_path / "t.toml"
    source = (TEMPLATES_DIR / "explainer.toml").read_text()
    for bad, match in (('[captions]\ncolor = "#12"', "colour"),
                       ("[captions]\nsize = 0.5", "captions"),
                       ("[captions]\nfont = 'x'", "unknown key")):
        text.write_text(source + "\n" + bad + "\n")
        with pytest.raises(InvalidInput, match=match) as err:
            load_template(text)
        assert err.value.code == "invalid_template"
