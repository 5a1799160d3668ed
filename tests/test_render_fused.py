"""The CPU compositor's compiled loop (node/render/fused.py) against its numpy path:
the same YUV codes, bit for bit, on every template, at the frame's edges, into
strided planes, and through damage; regions with resampled placements fall back
to numpy."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from assets.loader import load_character, load_template
from farm.timeline import WordTiming
from node.pipeline import overlays
from node.render import cpu
from node.render.cpu import CpuCompositor
from node.render.scene import CastMember, build_cast
from node.render.types import Placement
from tests.test_gl import PLACEMENTS, make_art
from tests.test_render_cpu import EXACT, cue_timeline

TEMPLATES = ("explainer", "newsdesk", "vertical", "podcast")


@pytest.fixture
def compiled_calls(monkeypatch) -> list[int]:
    """Counts the compiled loop's calls (it still runs): a test of it must reach it."""
    calls, real = [], cpu.draw_yuv
    assert real is not None, "numba is a node dependency"

    def counted(*args) -> None:
        calls.append(1)
        real(*args)

    monkeypatch.setattr(cpu, "draw_yuv", counted)
    return calls


def frames_of(art, draw_lists, compiled: bool, monkeypatch, planes=None) -> list[tuple]:
    """Every frame drawn, through damage, into one target, as copies of its planes."""
    with monkeypatch.context() as m:
        if not compiled:
            m.setattr(cpu, "draw_yuv", None)
        comp = CpuCompositor(art)
        if planes is None:
            h, w = art.height, art.width
            planes = (np.zeros((h, w), np.uint8), np.zeros((h // 2, w // 2), np.uint8),
                      np.zeros((h // 2, w // 2), np.uint8))
        target = comp.yuv_target(planes)
        out = []
        for draw in draw_lists:
            comp.draw(draw, target)
            out.append(tuple(p.copy() for p in target.planes))
        return out


def assert_same(a: list[tuple], b: list[tuple]) -> None:
    for i, (fa, fb) in enumerate(zip(a, b, strict=True)):
        for pa, pb in zip(fa, fb):
            np.testing.assert_array_equal(pa, pb, err_msg=f"frame {i}")


@pytest.mark.parametrize("name", TEMPLATES)
def test_every_template_gives_the_numpy_codes(name, tmp_path, monkeypatch, compiled_calls):
    logo = tmp_path / "logo.png"
    Image.new("RGBA", (120, 40), (30, 90, 200, 200)).save(logo)
    t = load_template(name)
    width, height = (180, 320) if t.aspect == "9:16" else (320, 180)
    cast = [CastMember(load_character("toonz"), t.character, cue_timeline(2.0, "XDAFXBX"), "happy")]
    if t.second_character is not None:
        cast.append(CastMember(load_character("bolt"), t.second_character, cue_timeline(2.0, "XEX")))
    words = [WordTiming(0.1 + 0.3 * k, 0.35 + 0.3 * k, w) for k, w in enumerate("one two three four".split())]
    scene = build_cast(t, cast, width, height, 24, captions=words,
                       overlays=overlays(t, width, height, watermark=True, logo=logo))
    draws = [scene.frame(i) for i in range(scene.n_frames)]
    compiled = frames_of(scene.art, draws, True, monkeypatch)
    assert compiled_calls
    assert_same(compiled, frames_of(scene.art, draws, False, monkeypatch))


def test_edges_strided_planes_and_damage(monkeypatch, compiled_calls):
    """Placements cut by every edge of the frame, planes with padded rows (an encoder's
    frame), and a sequence whose damage regions are small, large and none."""
    art = make_art()
    edge = (Placement("disc", -7, -9), Placement("ramp", 84, 50), Placement("disc", 90, -20),
            Placement("half", -30, 58))
    draws = [EXACT, EXACT, EXACT[:3], (Placement("dot", 50, 30), *EXACT[1:]), (*EXACT, *edge), (),
             edge, EXACT]

    def padded() -> tuple:
        return (np.zeros((64, 128), np.uint8)[:, :96], np.zeros((32, 64), np.uint8)[:, :48],
                np.zeros((32, 64), np.uint8)[:, :48])

    compiled = frames_of(art, draws, True, monkeypatch, padded())
    assert compiled_calls
    assert_same(compiled, frames_of(art, draws, False, monkeypatch, padded()))
    fresh = [tuple(p.copy() for p in CpuCompositor(art).render_yuv(d)) for d in draws]
    assert_same(compiled, fresh)


def test_resampled_placements_are_drawn_by_numpy(monkeypatch, compiled_calls):
    """A region holding a translucent placement goes to numpy; the frames still equal
    the numpy path's."""
    art = make_art()
    assert any(p.opacity != 1.0 for p in PLACEMENTS)
    frames_of(art, [PLACEMENTS], True, monkeypatch)  # one region, the whole frame
    assert not compiled_calls
    draws = [PLACEMENTS, EXACT, PLACEMENTS, EXACT]
    compiled = frames_of(art, draws, True, monkeypatch)
    assert compiled_calls  # EXACT's regions that hold no resampled placement
    assert_same(compiled, frames_of(art, draws, False, monkeypatch))
