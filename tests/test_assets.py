"""Characters, templates, their loader, the layer rasterizer and the background."""

from __future__ import annotations

import itertools
import shutil
from pathlib import Path

import numpy as np
import pytest

from assets import background
from assets.background import render_background, wrap
from assets.loader import (CHARACTERS_DIR, MOUTH_SHAPES, TEMPLATES_DIR, list_characters,
                           list_templates, load_character, load_template, parse_color)
from assets.raster import rasterize_character
from farm.errors import InvalidInput


@pytest.fixture
def char_copy(tmp_path: Path) -> Path:
    """A writable copy of the toonz character folder."""
    return Path(shutil.copytree(CHARACTERS_DIR / "toonz", tmp_path / "toonz"))


def test_shipped_assets_are_listed():
    assert "toonz" in list_characters()
    assert "explainer" in list_templates()


@pytest.mark.parametrize("name", ["nobody", "../toonz", "", "TOONZ", "toonz/../toonz"])
def test_unknown_character(name):
    with pytest.raises(InvalidInput) as e:
        load_character(name)
    assert e.value.code == "unknown_character"
    assert "toonz" in e.value.message  # the error names the choices


def test_unknown_template():
    with pytest.raises(InvalidInput) as e:
        load_template("slideshow")
    assert e.value.code == "unknown_template"


def test_character_loads_from_a_folder_path(char_copy):
    c = load_character(char_copy)
    assert c.name == "toonz" and c.svg_path.parent == char_copy
    assert [c.mouth_group(s) for s in MOUTH_SHAPES] == [f"mouth_{s}" for s in MOUTH_SHAPES]


def test_toml_naming_a_group_missing_from_the_svg(char_copy):
    toml = char_copy / "character.toml"
    toml.write_text(toml.read_text().replace('"brows", "mouth"]', '"brows", "hat", "mouth"]'))
    with pytest.raises(InvalidInput) as e:
        load_character(char_copy)
    assert e.value.code == "invalid_character" and "hat" in e.value.message


def test_svg_missing_a_mouth_group(char_copy):
    svg = char_copy / "character.svg"
    svg.write_text(svg.read_text().replace('id="mouth_D"', 'id="mouth_D_old"'))
    with pytest.raises(InvalidInput) as e:
        load_character(char_copy)
    assert e.value.code == "invalid_character" and "mouth_D" in e.value.message


def test_toml_missing_a_mouth_shape(char_copy):
    toml = char_copy / "character.toml"
    toml.write_text(toml.read_text().replace('G = "mouth_G"\n', ""))
    with pytest.raises(InvalidInput) as e:
        load_character(char_copy)
    assert e.value.code == "invalid_character" and "G" in e.value.message


def test_svg_outside_the_character_folder(char_copy):
    toml = char_copy / "character.toml"
    toml.write_text(toml.read_text().replace('svg = "character.svg"', 'svg = "../x.svg"'))
    with pytest.raises(InvalidInput) as e:
        load_character(char_copy)
    assert e.value.code == "invalid_character"


def test_template_bad_colour(tmp_path):
    path = tmp_path / "bad.toml"
    path.write_text((TEMPLATES_DIR / "explainer.toml").read_text()
                    .replace('top = "#eaf2ff"', 'top = "sky blue"'))
    with pytest.raises(InvalidInput) as e:
        load_template(path)
    assert e.value.code == "invalid_template"
    assert "background.top" in e.value.message and "sky blue" in e.value.message


def test_template_too_many_bullets(tmp_path):
    path = tmp_path / "bad.toml"
    path.write_text((TEMPLATES_DIR / "explainer.toml").read_text()
                    .replace('"Download a finished video",', '"Download", "And more",'))
    with pytest.raises(InvalidInput) as e:
        load_template(path)
    assert e.value.code == "invalid_template"


def test_parse_color():
    assert parse_color("#1f2a44") == (0x1F, 0x2A, 0x44)
    assert parse_color("#fff") == (255, 255, 255)
    for bad in ("1f2a44", "#12345", "#ggg", 7):
        with pytest.raises(ValueError):
            parse_color(bad)


def test_every_layer_is_premultiplied_and_read_only(toonz):
    raster = rasterize_character(toonz, 360)
    assert set(raster.layers) == set(toonz.groups)
    for layer in raster.layers.values():
        rgba = layer.sprite.rgba
        assert rgba.dtype == np.uint8 and rgba.ndim == 3 and rgba.shape[2] == 4
        assert (rgba[..., :3] <= rgba[..., 3:4]).all(), layer.sprite.name
        assert not rgba.flags.writeable
    assert rasterize_character(toonz, 360) is raster  # cached per (character, height)


def _mouth_canvas(raster, group: str) -> np.ndarray:
    """The mouth drawn on an empty character-sized canvas, so all nine compare."""
    layer = raster.layers[group]
    out = np.zeros((raster.height, raster.width, 4), np.int16)
    h, w = layer.sprite.rgba.shape[:2]
    out[layer.y:layer.y + h, layer.x:layer.x + w] = layer.sprite.rgba
    return out


def test_mouths_are_non_empty_distinct_and_inside_the_mouth_box(toonz):
    raster = rasterize_character(toonz, 720)
    scale = raster.height / toonz.canvas.height
    bx, by, bw, bh = (v * scale for v in toonz.rig.mouth_box)
    canvases = {}
    for shape in MOUTH_SHAPES:
        layer = raster.layers[toonz.mouth_group(shape)]
        h, w = layer.sprite.rgba.shape[:2]
        assert (layer.sprite.rgba[..., 3] > 0).sum() > 100, shape
        assert bx <= layer.x and layer.x + w <= bx + bw, shape
        assert by <= layer.y and layer.y + h <= by + bh, shape
        canvases[shape] = _mouth_canvas(raster, toonz.mouth_group(shape))
    for a, b in itertools.combinations(MOUTH_SHAPES, 2):
        differing = (np.abs(canvases[a] - canvases[b]).max(axis=2) > 32).sum()
        assert differing > 150, f"mouths {a} and {b} differ in only {differing} pixels"


def test_wide_open_is_bigger_than_puckered(toonz):
    raster = rasterize_character(toonz, 720)
    area = {s: (raster.layers[toonz.mouth_group(s)].sprite.rgba[..., 3] > 128).sum()
            for s in "ADFX"}
    assert area["D"] > 2 * area["F"] and area["D"] > 3 * area["A"]


def test_rasterized_at_output_size_not_upscaled(toonz):
    small, big = rasterize_character(toonz, 360), rasterize_character(toonz, 2160)
    assert big.height == 2160 and abs(big.width / small.width - 6) < 0.05
    for name in ("head", "body", "mouth_D"):
        (sw, sh), (bw, bh) = small.layers[name].sprite.size, big.layers[name].sprite.size
        assert abs(bw / sw - 6) < 0.25 and abs(bh / sh - 6) < 0.25, name
    # Sharp: anti-aliased edges stay about a pixel wide, so partly covered pixels grow
    # with the outline's length (6x); a 6x upscale would also widen them (36x).
    def partial(raster) -> int:
        alpha = raster.layers["head"].sprite.rgba[..., 3]
        return int(((alpha > 0) & (alpha < 255)).sum())
    assert partial(big) / partial(small) < 9


def test_layers_line_up(toonz):
    raster = rasterize_character(toonz, 720)
    head, eyes = raster.layers["head"], raster.layers["eyes_open"]
    hw, hh = head.sprite.size
    ew, eh = eyes.sprite.size
    assert head.x < eyes.x and eyes.x + ew < head.x + hw
    assert head.y < eyes.y and eyes.y + eh < head.y + hh


@pytest.mark.parametrize("size", [(640, 360), (1280, 720), (1920, 1080), (3840, 2160)])
def test_background_shape_and_opaque(explainer, size):
    width, height = size
    bg = render_background(explainer, width, height)
    assert bg.shape == (height, width, 4) and bg.dtype == np.uint8
    assert (bg[..., 3] == 255).all()


def test_background_lays_out_alike_at_every_size(explainer):
    from PIL import Image
    small = render_background(explainer, 640, 360).astype(np.int16)
    big = render_background(explainer, 1280, 720)
    down = np.asarray(Image.fromarray(big).resize((640, 360), Image.BOX)).astype(np.int16)
    assert np.abs(small - down).mean() < 3


def test_background_text_overrides(explainer):
    default = render_background(explainer, 640, 360)
    titled = render_background(explainer, 640, 360, title="Quarterly results")
    assert (default != titled).any()
    with pytest.raises(ValueError):
        render_background(explainer, 640, 360, bullets=["a", "b", "c", "d"])


@pytest.mark.parametrize("softness", [1.0, 7.5])
@pytest.mark.parametrize("shape", ["circle", "rounded", "thin", "off the edge"])
def test_painting_by_blocks_equals_a_distance_per_pixel(shape, softness):
    """Covered and clear blocks skip the distance per pixel; the pixels are the same."""
    made = {"circle": background._circle(150.3, 90.7, 61.2),
            "rounded": background._rounded_rect(40.2, 30.9, 230.5, 120.1, 18.0),
            "thin": background._rounded_rect(10.0, 100.5, 280.0, 3.0, 1.5),
            "off the edge": background._circle(290.0, -10.0, 80.0)}[shape]
    rng = np.random.default_rng(7)
    canvas = rng.uniform(0, 255, (200, 300, 3)).astype(np.float32)
    want = canvas.copy()
    (x0, y0, x1, y1), dist = made
    # The straightforward way: a distance for every pixel of the padded window.
    pad = softness + 1
    ix0, iy0 = max(0, int(x0 - pad)), max(0, int(y0 - pad))
    ix1, iy1 = min(300, int(x1 + pad) + 1), min(200, int(y1 + pad) + 1)
    ys = np.arange(iy0, iy1, dtype=np.float32)[:, None] + 0.5
    xs = np.arange(ix0, ix1, dtype=np.float32)[None, :] + 0.5
    alpha = np.clip(0.5 - dist(xs, ys) / softness, 0.0, 1.0) * 0.8
    window = want[iy0:iy1, ix0:ix1]
    window += (np.array((10, 200, 90), np.float32) - window) * alpha[..., None]
    background._paint(canvas, made, (10, 200, 90), 0.8, softness=softness, reach=softness)
    np.testing.assert_array_equal(canvas, want)


def test_wrap_ellipsizes_past_max_lines():
    from PIL import ImageFont
    from assets.background import REGULAR_FONT
    font = ImageFont.truetype(str(REGULAR_FONT), 20)
    lines = wrap("one two three four five six seven eight nine ten", font, 120, 2)
    assert len(lines) == 2 and lines[-1].endswith("\u2026")
    assert all(font.getlength(line) <= 120 for line in lines)
    assert wrap("short", font, 120, 2) == ["short"]
    assert wrap("", font, 120, 2) == []


def test_long_bullets_shrink_to_fit_and_none_is_dropped():
    from PIL import ImageFont
    from assets.background import REGULAR_FONT, _layout_bullets
    font = ImageFont.truetype(str(REGULAR_FONT), 20)
    long = "word " * 40
    laid = _layout_bullets([long, long, long], font, 200, 2, line_h=26, gap=20,
                           top=0, bottom=150)
    assert len(laid) == 3 and all(laid)
    assert laid[-1][-1][0] + 13 <= 150


def test_layer_that_draws_nothing(char_copy):
    svg = char_copy / "character.svg"
    text = svg.read_text()
    start = text.index('<g id="mouth_X">')
    end = text.index("</g>", start)
    svg.write_text(text[:start] + '<g id="mouth_X">' + text[end:])
    character = load_character(char_copy)  # the group exists...
    with pytest.raises(InvalidInput) as e:  # ...but is empty
        rasterize_character(character, 100)
    assert e.value.code == "invalid_character" and "mouth_X" in e.value.message
