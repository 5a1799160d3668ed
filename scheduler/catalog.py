"""Templates and characters: what a render may name, with PNG previews drawn from the art.

Public (no key): the catalog holds no tenant's data. A preview is one frame drawn by
the renderer's own CPU compositor: a template with the default character at rest,
a character alone on a plain background. Each is drawn once in a thread (the event
loop never waits on cairo or numpy) and cached under the data dir, named by a hash
of the asset files it was drawn from, so an edited asset is drawn again.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
from math import gcd
from pathlib import Path

from aiohttp import web

from assets.loader import (CHARACTERS_DIR, FONTS_DIR, TEMPLATES_DIR, list_characters,
                           list_templates, load_character, load_template)
from farm.errors import NotFound, ServiceUnavailable
from farm.presets import QUALITIES
from scheduler.context import CONFIG

TEMPLATE_PREVIEW_SIZE = (480, 270)  # 16:9, as every quality preset
CHARACTER_PREVIEW_SIZE = (480, 480)
CHARACTER_PREVIEW_HEIGHT = 0.96  # the character's canvas, as a fraction of the preview's height
PREVIEW_CHARACTER = "toonz"  # who stands in a template's preview: a render's default
PREVIEW_BACKDROP = (234, 242, 255)  # the plain background behind a character preview
PREVIEW_MOUTH = "X"  # Rhubarb's rest shape: the mouth closed, as before speaking
PREVIEW_VERSION = "1"  # bump when previews are drawn differently: old cache files are ignored
PREVIEW_CACHE_MAX_AGE_S = 3600  # what clients and proxies may reuse without asking

_digests: dict[tuple, str] = {}  # (path, mtime, size) of asset files -> their content hash
_inflight: dict[Path, asyncio.Future] = {}  # one drawing per cache file at a time


async def templates(request: web.Request) -> web.Response:
    out = []
    for name in list_templates():
        t = load_template(name)
        out.append({"name": t.name, "display_name": t.display_name, "title": t.title.text,
                    "bullets": list(t.bullets.items), "aspect": _aspect(),
                    # Laid out in fractions of the frame: one template fits every preset.
                    "sizes": {q.name: f"{q.width}x{q.height}" for q in QUALITIES.values()},
                    "preview_url": f"/v1/templates/{name}/preview.png"})
    return web.json_response({"templates": out})


async def characters(request: web.Request) -> web.Response:
    out = []
    for name in list_characters():
        c = load_character(name)
        out.append({"name": c.name, "display_name": c.display_name,
                    "canvas": {"width": c.canvas.width, "height": c.canvas.height},
                    "preview_url": f"/v1/characters/{name}/preview.png"})
    return web.json_response({"characters": out})


async def template_preview(request: web.Request) -> web.StreamResponse:
    name = request.match_info["name"]
    if name not in list_templates():
        raise NotFound(f"no template {name!r}; GET /v1/templates lists them", code="unknown_template")
    files = [TEMPLATES_DIR / f"{name}.toml", *_files(CHARACTERS_DIR / PREVIEW_CHARACTER),
             *_files(FONTS_DIR)]
    return await _preview(request, "template", name, files, TEMPLATE_PREVIEW_SIZE)


async def character_preview(request: web.Request) -> web.StreamResponse:
    name = request.match_info["name"]
    if name not in list_characters():
        raise NotFound(f"no character {name!r}; GET /v1/characters lists them",
                       code="unknown_character")
    return await _preview(request, "character", name, _files(CHARACTERS_DIR / name),
                          CHARACTER_PREVIEW_SIZE)


def draw_template_preview(name: str, size: tuple[int, int] = TEMPLATE_PREVIEW_SIZE) -> bytes:
    """PNG of the template's first frame with the default character at rest."""
    from farm.timeline import Timeline
    from node.render.cpu import CpuCompositor
    from node.render.scene import build_scene

    scene = build_scene(load_template(name), load_character(PREVIEW_CHARACTER),
                        Timeline.silent(1.0), size[0], size[1], 1.0)
    return _png(CpuCompositor(scene.art).render_rgba(scene.frame(0)))


def draw_character_preview(name: str, size: tuple[int, int] = CHARACTER_PREVIEW_SIZE) -> bytes:
    """PNG of the character, eyes open and mouth at rest, centred on a plain background."""
    import numpy as np

    from assets.raster import rasterize_character
    from node.render.cpu import CpuCompositor
    from node.render.types import Placement, SceneArt

    c = load_character(name)
    width, height = size
    raster = rasterize_character(c, round(height * CHARACTER_PREVIEW_HEIGHT))
    ox, oy = (width - raster.width) // 2, height - raster.height
    chosen = {"eyes": c.eyes.open, "mouth": c.mouth_group(PREVIEW_MOUTH)}
    layers = [raster.layers[chosen.get(slot, slot)] for slot in c.layers.order]
    background = np.empty((height, width, 4), np.uint8)
    background[:] = (*PREVIEW_BACKDROP, 255)
    art = SceneArt(width, height, background,
                   {layer.sprite.name: layer.sprite for layer in raster.layers.values()})
    return _png(CpuCompositor(art).render_rgba(
        [Placement(layer.sprite.name, float(ox + layer.x), float(oy + layer.y)) for layer in layers]))


async def _preview(request: web.Request, kind: str, name: str, files: list[Path],
                   size: tuple[int, int]) -> web.StreamResponse:
    digest = _digest([kind, name, f"{size[0]}x{size[1]}", PREVIEW_VERSION], files)
    path = request.app[CONFIG].data_dir / "previews" / f"{kind}-{name}-{digest[:20]}.png"
    if not path.is_file():
        draw = draw_template_preview if kind == "template" else draw_character_preview
        pending = _inflight.get(path)
        if pending is None:
            pending = asyncio.ensure_future(_draw_to(path, draw, name, size))
            _inflight[path] = pending
            pending.add_done_callback(lambda _: _inflight.pop(path, None))
        await asyncio.shield(pending)  # a client that leaves does not stop the drawing
    return web.FileResponse(path, headers={
        "Content-Type": "image/png", "Cache-Control": f"public, max-age={PREVIEW_CACHE_MAX_AGE_S}"})


async def _draw_to(path: Path, draw, name: str, size: tuple[int, int]) -> None:
    try:
        png = await asyncio.get_running_loop().run_in_executor(None, draw, name, size)
    except ImportError as exc:  # a scheduler installed without the renderer's packages
        raise ServiceUnavailable(f"previews need the renderer's packages ({exc.name})",
                                 code="previews_unavailable") from None
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.part")
    tmp.write_bytes(png)
    os.replace(tmp, path)  # a reader never sees half a file


def _files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_file())


def _digest(parts: list[str], files: list[Path]) -> str:
    """SHA-256 over `parts` and the files' contents; contents are read again only when a
    file's size or modification time changed."""
    stats = tuple((str(p), p.stat().st_mtime_ns, p.stat().st_size) for p in files)
    key = (tuple(parts), stats)
    if key not in _digests:
        h = hashlib.sha256("\0".join(parts).encode())
        for p in files:
            h.update(p.name.encode() + b"\0" + p.read_bytes())
        _digests[key] = h.hexdigest()
    return _digests[key]


def _png(rgba) -> bytes:
    import io

    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(rgba[..., :3].copy()).save(buf, format="PNG", optimize=True)
    return buf.getvalue()


def _aspect() -> str:
    q = next(iter(QUALITIES.values()))
    d = gcd(q.width, q.height)
    return f"{q.width // d}:{q.height // d}"
