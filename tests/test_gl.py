"""The GL compositor against the torch reference and a float64 BT.709 reference.

Tolerances: RGBA within 2 codes of the reference (GL rounds to 8 bits after every
blend, the reference once at the end; up to three layers overlap here); YUV
within 1 code (float32 on the GPU against float64).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from kernels import composite, rgb_to_yuv420
from node.render.gl import GLCompositor, create_context
from node.render.types import Placement, SceneArt, Sprite

RGBA_TOLERANCE = 2
SCALED_TOLERANCE = 4  # bilinear weights are 8-bit fixed point on some GPUs


@pytest.fixture(scope="module")
def egl_ctx():
    ctx = create_context()
    yield ctx
    ctx.release()


def premultiplied(rgb: tuple[int, int, int], alpha: np.ndarray) -> np.ndarray:
    """(h, w, 4) uint8 premultiplied RGBA of one colour under an alpha map in [0, 1]."""
    out = np.empty((*alpha.shape, 4), np.float64)
    out[..., :3] = np.array(rgb) / 255.0 * alpha[..., None]
    out[..., 3] = alpha
    return np.floor(out * 255.0 + 0.5).astype(np.uint8)


def make_art(width: int = 96, height: int = 64) -> SceneArt:
    yy, xx = np.mgrid[0:height, 0:width]
    bg = np.empty((height, width, 4), np.uint8)
    bg[..., 0] = xx * 255 // (width - 1)
    bg[..., 1] = yy * 255 // (height - 1)
    bg[..., 2] = 90
    bg[..., 3] = 255
    ramp = np.linspace(0.2, 1.0, 24)[None, :].repeat(20, axis=0)  # alpha grows left to right
    disc_y, disc_x = np.mgrid[0:30, 0:30]
    disc = np.clip(15.0 - np.hypot(disc_y - 14.5, disc_x - 14.5), 0.0, 1.0) * 0.8
    sprites = {
        "ramp": Sprite("ramp", premultiplied((250, 40, 30), ramp)),
        "disc": Sprite("disc", premultiplied((20, 60, 240), disc)),
        "half": Sprite("half", premultiplied((240, 240, 240), np.full((12, 40), 0.5))),
        "dot": Sprite("dot", premultiplied((0, 0, 0), np.ones((1, 1)))),
    }
    return SceneArt(width, height, bg, sprites)


PLACEMENTS = (
    Placement("ramp", 10, 8),
    Placement("disc", 20, 12, opacity=0.75),
    Placement("half", 4, 20),
    Placement("disc", -10, 40),  # clipped on the left and bottom
    Placement("ramp", 80, -5, opacity=0.5),  # clipped on the right and top
    Placement("dot", 3, 2),
)


def test_rgba_matches_reference(egl_ctx):
    art = make_art()
    with GLCompositor(art, egl_ctx) as gl:
        got = gl.render_rgba(PLACEMENTS)
    want = composite(art, PLACEMENTS).numpy()
    assert got.shape == (art.height, art.width, 4) and got.dtype == np.uint8
    assert np.abs(got.astype(int) - want).max() <= RGBA_TOLERANCE
    assert (got[..., 3] == 255).all()


def test_rows_come_back_top_first(egl_ctx):
    art = make_art()
    with GLCompositor(art, egl_ctx) as gl:
        got = gl.render_rgba([Placement("dot", 3, 2)])
    assert tuple(got[2, 3, :3]) == (0, 0, 0)  # the black dot, 2 rows from the top
    np.testing.assert_array_equal(got[0, :], art.background[0, :])  # first row: background's


def test_scaled_fractional_placements_match_reference(egl_ctx):
    art = make_art()
    placements = [Placement("disc", 10.3, 5.6, scale=1.37), Placement("ramp", 40.5, 30.25, 0.8, 0.6)]
    with GLCompositor(art, egl_ctx) as gl:
        got = gl.render_rgba(placements)
    want = composite(art, placements).numpy()
    assert np.abs(got.astype(int) - want).max() <= SCALED_TOLERANCE


def test_no_placements_is_the_background(egl_ctx):
    art = make_art()
    with GLCompositor(art, egl_ctx) as gl:
        np.testing.assert_array_equal(gl.render_rgba([]), art.background)


def test_many_placements_grow_the_instance_buffer(egl_ctx):
    art = make_art()
    placements = [Placement("dot", i % 96, i // 96) for i in range(200)]
    with GLCompositor(art, egl_ctx) as gl:
        got = gl.render_rgba(placements)
    np.testing.assert_array_equal(got, composite(art, placements).numpy())


def bt709_reference(rgba: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Float64 BT.709 limited range; chroma of the 2x2 mean, codes rounded half up."""
    rgb = rgba[..., :3].astype(np.float64) / 255.0
    kr, kb = 0.2126, 0.0722
    luma = rgb @ np.array([kr, 1.0 - kr - kb, kb])
    h, w = luma.shape
    mean = rgb.reshape(h // 2, 2, w // 2, 2, 3).mean(axis=(1, 3))
    mluma = mean @ np.array([kr, 1.0 - kr - kb, kb])
    code = lambda x: np.floor(np.clip(x, 0, 255) + 0.5).astype(np.uint8)  # noqa: E731
    return (
        code(16 + 219 * luma),
        code(128 + 224 * (mean[..., 2] - mluma) / (2 * (1 - kb))),
        code(128 + 224 * (mean[..., 0] - mluma) / (2 * (1 - kr))),
    )


# 96: both planes packed 4 to a texel; 98x66: Y packed 2, chroma (49 wide) unpacked.
@pytest.mark.parametrize("size", [(96, 64), (98, 66)], ids=lambda s: f"{s[0]}x{s[1]}")
def test_yuv_matches_kernel_and_float64(egl_ctx, size):
    art = make_art(*size)
    with GLCompositor(art, egl_ctx) as gl:
        rgba = gl.render_rgba(PLACEMENTS)
        y, u, v = gl.render_yuv(PLACEMENTS)
    w, h = size
    assert y.shape == (h, w) and u.shape == v.shape == (h // 2, w // 2)
    assert y.dtype == u.dtype == v.dtype == np.uint8
    kernel = rgb_to_yuv420(torch.from_numpy(rgba[..., :3]).permute(2, 0, 1))
    for got, want in zip((y, u, v), kernel):
        assert np.abs(got.astype(int) - want.numpy()).max() <= 1
    for got, want in zip((y, u, v), bt709_reference(rgba)):
        assert np.abs(got.astype(int) - want).max() <= 1


def test_yuv_of_black_and_white_is_limited_range(egl_ctx):
    bg = np.zeros((32, 64, 4), np.uint8)
    bg[..., 3] = 255
    bg[:, 32:, :3] = 255
    with GLCompositor(SceneArt(64, 32, bg), egl_ctx) as gl:
        y, u, v = gl.render_yuv([])
    assert (y[:, :32] == 16).all() and (y[:, 32:] == 235).all()
    assert (u == 128).all() and (v == 128).all()


def test_renders_are_bit_identical(egl_ctx):
    art = make_art()
    with GLCompositor(art, egl_ctx) as gl:
        first = [p.copy() for p in gl.render_yuv(PLACEMENTS)]
        gl.render_yuv([Placement("half", 0, 0)])  # something else in between
        second = gl.render_yuv(PLACEMENTS)
        i420 = gl.i420
        rgba = [gl.render_rgba(PLACEMENTS) for _ in range(2)]
    for a, b in zip(first, second):
        np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(rgba[0], rgba[1])
    np.testing.assert_array_equal(i420.reshape(-1), np.concatenate([p.reshape(-1) for p in first]))


def test_odd_size_is_rejected(egl_ctx):
    art = make_art(95, 64)
    with pytest.raises(ValueError, match=r"even.*Got 95x64"):
        GLCompositor(art, egl_ctx)


def test_unknown_sprite_is_named(egl_ctx):
    with GLCompositor(make_art(), egl_ctx) as gl, pytest.raises(KeyError, match="ghost"):
        gl.render_yuv([Placement("ghost", 0, 0)])


def test_renderer_is_logged(caplog):
    with caplog.at_level("INFO", logger="node.render.gl"):
        ctx = create_context()
    ctx.release()
    assert "EGL device" in caplog.text


def test_kernel_keeps_batch_dims_and_reports_bad_shapes():
    rgb = torch.rand(2, 5, 3, 8, 6)
    y, u, v = rgb_to_yuv420(rgb)
    assert y.shape == (2, 5, 8, 6) and u.shape == v.shape == (2, 5, 4, 3)
    assert y.dtype == torch.uint8
    with pytest.raises(ValueError, match=r"Got \(3, 5, 4\)"):
        rgb_to_yuv420(torch.zeros(3, 5, 4))
    with pytest.raises(ValueError, match=r"Got \(4, 8, 8\)"):
        rgb_to_yuv420(torch.zeros(4, 8, 8))


def test_damage_read_back_is_the_whole_render(egl_ctx):
    """submit/complete read only what changed, through pixel buffers: same planes."""
    art = make_art()
    frames = [PLACEMENTS, PLACEMENTS, PLACEMENTS[:3], (Placement("dot", 50, 30), *PLACEMENTS[1:]), ()]
    with GLCompositor(art, egl_ctx) as gl:
        target = gl.yuv_target(tuple(np.zeros(s, np.uint8) for s in ((64, 96), (32, 48), (32, 48))))
        tickets = [gl.submit(frames[0], target)]
        assert tickets[0].rect == (0, 0, 96, 64)
        assert gl.submit(frames[1], target) is None  # nothing changed: nothing drawn
        gl.complete(tickets[0], target)
        for draw in frames[2:]:
            gl.draw(draw, target)
            want = gl.render_yuv(draw)
            for got, ref in zip(target.planes, want):
                np.testing.assert_array_equal(got, ref)


def test_damage_is_drawn_alone(egl_ctx):
    """submit draws and converts only the damage: inside it the planes are the frame's
    whatever the GPU held before; outside it the GPU's targets keep what they held."""
    art = make_art()
    moved = (Placement("dot", 50, 30), *PLACEMENTS[1:])
    with GLCompositor(art, egl_ctx) as gl:
        target = gl.yuv_target(tuple(np.zeros(s, np.uint8) for s in ((64, 96), (32, 48), (32, 48))))
        gl.draw(PLACEMENTS, target)
        want = tuple(p.copy() for p in gl.render_yuv(moved))
        bare = gl.render_yuv(())[0].copy()  # the GPU's targets now hold the background
        x0, y0, x1, y1 = gl.draw(moved, target)
        assert (x1 - x0) * (y1 - y0) < 96 * 64 // 2
        for got, ref in zip(target.planes, want):
            np.testing.assert_array_equal(got, ref)
        on_gpu = np.frombuffer(gl._y_fbo.read(components=gl._y_pack, alignment=1), np.uint8)
        on_gpu = on_gpu.reshape(64, 96)
        np.testing.assert_array_equal(on_gpu[y0:y1, x0:x1], want[0][y0:y1, x0:x1])
        outside = np.ones((64, 96), bool)
        outside[y0:y1, x0:x1] = False
        np.testing.assert_array_equal(on_gpu[outside], bare[outside])
        assert not np.array_equal(want[0][outside], bare[outside])  # the frame differs there


def test_two_frames_in_flight_with_flush_read_back_each_frame(egl_ctx):
    """Read-backs trailing two submits behind, glFlush after each: every frame's planes
    still come back as rendered (bench/device_render.py times this way)."""
    art = make_art()
    frames = [PLACEMENTS, PLACEMENTS[:3], (Placement("dot", 50, 30), *PLACEMENTS[1:]), ()]
    shapes = ((64, 96), (32, 48), (32, 48))
    with GLCompositor(art, egl_ctx) as gl:
        wants = [tuple(p.copy() for p in gl.render_yuv(draw)) for draw in frames]
        targets = [gl.yuv_target(tuple(np.zeros(s, np.uint8) for s in shapes)) for _ in frames]
        for target in targets[1:]:  # each target starts from the frame before it
            gl.draw(frames[targets.index(target) - 1], target)
        pending = []
        for k, (draw, target) in enumerate(zip(frames, targets)):
            pending.append((gl.submit(draw, target), target))
            assert gl.flush()  # EGL hands out glFlush on llvmpipe as on NVIDIA's driver
            if len(pending) > 2:
                gl.complete(*pending.pop(0))
        for ticket, target in pending:
            gl.complete(ticket, target)
        for target, want in zip(targets, wants):
            for got, ref in zip(target.planes, want):
                np.testing.assert_array_equal(got, ref)


def test_read_back_tickets_must_be_fetched_in_time(egl_ctx):
    art = make_art()
    with GLCompositor(art, egl_ctx) as gl:
        targets = [gl.yuv_target(tuple(np.zeros(s, np.uint8) for s in ((64, 96), (32, 48), (32, 48))))
                   for _ in range(4)]
        tickets = [gl.submit(PLACEMENTS, t) for t in targets]  # a ring of three buffers
        with pytest.raises(RuntimeError, match="reused before it was fetched"):
            gl.complete(tickets[0], targets[0])
        gl.complete(tickets[3], targets[3])


def test_gl_encoding_loop_encodes_the_frames_in_order(egl_ctx, toonz, explainer, tmp_path):
    from node.render.frames import encode_gl
    from node.render.scene import build_scene
    from tests.test_render_cpu import cue_timeline, decoded_i420, lossless_encoder

    scene = build_scene(explainer, toonz, cue_timeline(2.0, "XABCDX"), 320, 180, 24)
    with GLCompositor(scene.art, egl_ctx) as gl:
        with lossless_encoder(tmp_path / "v.mp4", 320, 180) as enc:
            stats = encode_gl(scene, enc, gl)
        frames = decoded_i420(tmp_path / "v.mp4")
        assert stats.frames == len(frames) == scene.n_frames
        for i, got in enumerate(frames):
            gl.render_yuv(scene.frame(i))
            np.testing.assert_array_equal(got, gl.i420, err_msg=f"frame {i}")
