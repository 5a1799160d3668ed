"""The CPU compositor against GL, the torch reference and a float64 BT.709 reference.

Tolerances (stated in node/render/cpu.py): whole-pixel, unscaled, opaque
placements (what the scene builder makes) blend with exact rounding, so RGB is
within 1 code of GL on llvmpipe (whose blend rounds in fixed point) and of the
torch reference (which rounds once); YUV within 1 code of GL and of float64.
Scaled, fractional or translucent placements are resampled: RGB within 2 codes
of GL (4 where scaled, as tests/test_gl.py allows GL itself), YUV within 2.
Damage regions and the two-thread encoding loop change nothing: bit-identical.
"""

from __future__ import annotations

import math

import av
import numpy as np
import pytest
import torch

from farm.timeline import MouthCue, Timeline
from kernels import composite, rgb_to_yuv420
from node.render import yuv
from node.render.backend import choose_backend
from node.render.cpu import CpuCompositor
from node.render import encode
from node.render.encode import VideoEncoder
from node.render.frames import encode_cpu
from node.render.gl import GLCompositor, create_context
from node.render.scene import build_scene
from node.render.types import Placement
from tests.test_gl import PLACEMENTS, bt709_reference, make_art

EXACT = (Placement("ramp", 10, 8), Placement("disc", 20, 12), Placement("half", 4, 20),
         Placement("disc", -10, 40), Placement("ramp", 80, -5), Placement("dot", 3, 2))


@pytest.fixture(scope="module")
def egl_ctx():
    ctx = create_context()
    yield ctx
    ctx.release()


def diff(a: np.ndarray, b: np.ndarray) -> int:
    return int(np.abs(a.astype(int) - np.asarray(b).astype(int)).max())


def test_exact_placements_match_gl_and_reference(egl_ctx):
    art = make_art()
    cpu = CpuCompositor(art)
    with GLCompositor(art, egl_ctx) as gl:
        assert diff(cpu.render_rgba(EXACT), gl.render_rgba(EXACT)) <= 1
        for got, want in zip(cpu.render_yuv(EXACT), gl.render_yuv(EXACT)):
            assert diff(got, want) <= 1
    assert diff(cpu.render_rgba(EXACT), composite(art, EXACT).numpy()) <= 1


def test_resampled_placements_match_gl(egl_ctx):
    art = make_art()
    scaled = [Placement("disc", 10.3, 5.6, scale=1.37), Placement("ramp", 40.5, 30.25, 0.8, 0.6)]
    cpu = CpuCompositor(art)
    with GLCompositor(art, egl_ctx) as gl:
        assert diff(cpu.render_rgba(PLACEMENTS), gl.render_rgba(PLACEMENTS)) <= 2
        assert diff(cpu.render_rgba(scaled), gl.render_rgba(scaled)) <= 4
        for got, want in zip(cpu.render_yuv(PLACEMENTS), gl.render_yuv(PLACEMENTS)):
            assert diff(got, want) <= 2


@pytest.mark.parametrize("size", [(96, 64), (98, 66)], ids=lambda s: f"{s[0]}x{s[1]}")
def test_yuv_matches_kernel_and_float64(size):
    art = make_art(*size)
    cpu = CpuCompositor(art)
    rgba = cpu.render_rgba(PLACEMENTS)
    planes = cpu.render_yuv(PLACEMENTS)
    kernel = rgb_to_yuv420(torch.from_numpy(rgba[..., :3]).permute(2, 0, 1))
    for got, k, ref in zip(planes, kernel, bt709_reference(rgba)):
        assert diff(got, k.numpy()) <= 1
        assert diff(got, ref) <= 1


def test_conversion_of_every_grey_and_primary():
    levels = np.arange(256, dtype=np.uint8)
    rgba = np.zeros((2, 256 * 2 * 4, 4), np.uint8)  # every level of grey, R, G and B, 2x2 blocks
    for k, channels in enumerate(([0, 1, 2], [0], [1], [2])):
        block = np.repeat(levels, 2)
        for c in channels:
            rgba[:, k * 512 : (k + 1) * 512, c] = block
    rgba[..., 3] = 255
    for got, ref in zip(yuv.rgba_to_i420(rgba), bt709_reference(rgba)):
        assert diff(got, ref) <= 1


def test_damage_is_what_a_fresh_render_gives():
    art = make_art()
    frames = [EXACT, EXACT, EXACT[:3], (Placement("dot", 50, 30), *EXACT[1:]), EXACT, (), EXACT]
    cpu = CpuCompositor(art)
    for draw in frames:
        got = [p.copy() for p in cpu.render_yuv(draw)]
        want = CpuCompositor(art).render_yuv(draw)
        for a, b in zip(got, want):
            np.testing.assert_array_equal(a, b)


def test_identical_frames_write_nothing():
    cpu = CpuCompositor(make_art())
    target = cpu.yuv_target(tuple(np.zeros(s, np.uint8) for s in ((64, 96), (32, 48), (32, 48))))
    assert cpu.draw(EXACT, target) == (0, 0, 96, 64)  # first frame: whole
    assert cpu.draw(EXACT, target) is None
    x0, y0, x1, y1 = cpu.draw((*EXACT[:5], Placement("dot", 4, 2)), target)
    assert (x0, y0, x1, y1) == (2, 2, 6, 4)  # the dot moved one pixel: even-aligned box
    assert cpu.pixels_drawn == 96 * 64 + 4 * 2


def test_unknown_sprite_is_named():
    with pytest.raises(KeyError, match="ghost"):
        CpuCompositor(make_art()).render_yuv([Placement("ghost", 0, 0)])


def test_odd_size_is_rejected():
    with pytest.raises(ValueError, match=r"even.*Got 95x64"):
        CpuCompositor(make_art(95, 64))


def lossless_encoder(path, width: int, height: int) -> VideoEncoder:
    """The real encoder at x264 qp 0: the frames decode back exactly as drawn."""
    return VideoEncoder(path, width, height, 24, options={"preset": "ultrafast", "qp": "0"})


def decoded_i420(path) -> list[np.ndarray]:
    """Every frame of a video as one (H * 3 / 2, W) I420 array."""
    with av.open(str(path)) as container:
        return [f.to_ndarray(format="yuv420p") for f in container.decode(video=0)]


def cue_timeline(duration: float, shapes: str) -> Timeline:
    """A lip-sync timeline cycling through `shapes`, five cues a second. No words, so
    no emphasis gestures: the frames follow the mouth shapes alone."""
    n = math.ceil(duration * 5)
    return Timeline(duration, tuple(MouthCue(k / 5, min(duration, (k + 1) / 5), shapes[k % len(shapes)])
                                    for k in range(n)))


@pytest.mark.parametrize(("threads", "slots"), [(True, 2), (True, 4), (False, 4)],
                         ids=["two threads, 2 slots", "two threads, 4 slots", "one thread"])
def test_cpu_loops_encode_the_frames_in_order(toonz, explainer, threads, slots, tmp_path,
                                              monkeypatch):
    monkeypatch.setattr(encode, "FRAME_SLOTS", slots)
    scene = build_scene(explainer, toonz, cue_timeline(3.0, "XABCDX"), 320, 180, 24)
    seen = []
    with lossless_encoder(tmp_path / "v.mp4", 320, 180) as enc:
        assert enc.slots == slots
        stats = encode_cpu(scene, enc, CpuCompositor(scene.art), progress=seen.append,
                           threads=threads)
    frames = decoded_i420(tmp_path / "v.mp4")
    assert stats.frames == len(frames) == scene.n_frames
    assert seen[-1] == 1.0
    reference = CpuCompositor(scene.art)
    for i, got in enumerate(frames):
        reference.render_yuv(scene.frame(i))
        np.testing.assert_array_equal(got, reference.i420, err_msg=f"frame {i}")


@pytest.mark.parametrize("threads", [True, False], ids=["two threads", "one thread"])
def test_cpu_loops_stop_on_a_progress_error(toonz, explainer, threads, tmp_path):
    scene = build_scene(explainer, toonz, cue_timeline(3.0, "XABCDX"), 320, 180, 24)

    def abort(fraction: float) -> None:
        if fraction > 0.3:
            raise RuntimeError("lease lost")

    with pytest.raises(RuntimeError, match="lease lost"):
        with lossless_encoder(tmp_path / "v.mp4", 320, 180) as enc:
            encode_cpu(scene, enc, CpuCompositor(scene.art), progress=abort, threads=threads)
    assert 0 < enc.frames_written < scene.n_frames


def test_small_frames_are_drawn_on_one_thread_big_ones_on_two(toonz, explainer, tmp_path):
    import threading

    used = []

    def progress(_: float) -> None:  # the two-thread loop encodes on "toonz-encode"
        two = any(t.name == "toonz-encode" for t in threading.enumerate())
        used.append("two" if two else "one")

    for width, height in ((1920, 1080), (1922, 1080)):
        scene = build_scene(explainer, toonz, cue_timeline(0.1, "X"), width, height, 24)
        with lossless_encoder(tmp_path / f"{width}.mp4", width, height) as enc:
            encode_cpu(scene, enc, CpuCompositor(scene.art), progress)
    assert used[0] == "one" and used[-1] == "two"
    assert set(used[: len(used) // 2]) == {"one"} and set(used[len(used) // 2:]) == {"two"}


def test_scene_frames_match_gl(egl_ctx, toonz, explainer):
    scene = build_scene(explainer, toonz, cue_timeline(2.0, "XDAFX"), 640, 360, 24)
    cpu = CpuCompositor(scene.art)
    with GLCompositor(scene.art, egl_ctx) as gl:
        for i in range(0, scene.n_frames, 7):
            for got, want in zip(cpu.render_yuv(scene.frame(i)), gl.render_yuv(scene.frame(i))):
                assert diff(got, want) <= 1


def test_backend_choice():
    assert choose_backend("cpu") == "cpu"
    assert choose_backend(None, {"TOONZ_RENDER_BACKEND": "gl"}) == "gl"
    assert choose_backend("auto", {}) in ("gl", "cpu")
    with pytest.raises(ValueError, match="Got 'vulkan'"):
        choose_backend(None, {"TOONZ_RENDER_BACKEND": "vulkan"})


def test_far_apart_changes_are_redrawn_as_separate_regions():
    from node.render.damage import damage_rects

    sizes = {"a": (10, 10), "b": (10, 10)}

    def bounds(p: Placement):
        w, h = sizes[p.sprite]
        return (int(p.x), int(p.y), int(p.x) + w, int(p.y) + h)

    old = (Placement("a", 10, 10), Placement("b", 200, 150))
    far = (Placement("a", 12, 10), Placement("b", 200, 152))
    assert damage_rects(old, far, bounds, (320, 180)) == [(10, 10, 22, 20), (200, 150, 210, 162)]
    near = (Placement("a", 12, 10), Placement("b", 14, 14))
    old_near = (Placement("a", 10, 10), Placement("b", 16, 14))
    assert damage_rects(old_near, near, bounds, (320, 180)) == [(10, 10, 26, 24)]
    assert damage_rects(old, old, bounds, (320, 180)) == []
    assert damage_rects(None, old, bounds, (320, 180)) == [(0, 0, 320, 180)]


def test_split_damage_gives_the_same_frames_as_whole_renders(toonz, explainer):
    from farm.timeline import WordTiming

    words = [WordTiming(0.2 + 0.3 * k, 0.45 + 0.3 * k, w) for k, w in enumerate("one two three four".split())]
    scene = build_scene(explainer, toonz, cue_timeline(2.0, "XDAFX"), 320, 180, 24, captions=words)
    damaged = CpuCompositor(scene.art)
    for i in range(0, scene.n_frames):
        got = damaged.render_yuv(scene.frame(i))
        fresh = CpuCompositor(scene.art).render_yuv(scene.frame(i))  # drawn whole
        for a, b in zip(got, fresh):
            assert np.array_equal(a, b), i


def test_regions_drawn_in_strips_give_the_same_frames(toonz, explainer, monkeypatch):
    """Big regions are composited a strip at a time (cache-sized); strips of two rows
    give the frames, and the poster, that one strip per region gives."""
    from node.render import cpu

    scene = build_scene(explainer, toonz, cue_timeline(1.0, "XDAFX"), 320, 180, 24)
    monkeypatch.setattr(cpu, "draw_yuv", None)  # the numpy path draws in strips
    whole = CpuCompositor(scene.art)
    monkeypatch.setattr(cpu, "STRIP_PIXELS", 1)  # the floor: two rows a strip
    assert cpu._strips((2, 4, 12, 11)) == [(2, 4, 12, 6), (2, 6, 12, 8), (2, 8, 12, 10),
                                          (2, 10, 12, 11)]
    strips = CpuCompositor(scene.art)
    for i in range(scene.n_frames):
        for a, b in zip(strips.render_yuv(scene.frame(i)), whole.render_yuv(scene.frame(i))):
            assert np.array_equal(a, b), i
    assert np.array_equal(strips.render_rgba(scene.frame(5)), whole.render_rgba(scene.frame(5)))
