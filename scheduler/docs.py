"""The API's description (GET /openapi.json) and a reference page that renders it (GET /docs).

The OpenAPI document is a data file beside this module (scheduler/openapi.json), read and
checked once, the first time it is asked for; every answer after that is the same bytes.
The page (scheduler/static/docs.*) is self-contained: no CDN, it fetches /openapi.json.
"""

from __future__ import annotations

import functools
import json
from importlib import resources

from aiohttp import web

from farm.errors import NotFound

SPEC_FILE = "openapi.json"
STATIC = resources.files("scheduler") / "static"
DOCS_FILES = {"docs.html": "text/html", "docs.js": "application/javascript", "docs.css": "text/css"}


@functools.cache
def spec_bytes() -> bytes:
    """The document as served: parsed once (a broken file fails here, not in a client)."""
    return json.dumps(spec(), separators=(",", ":"), ensure_ascii=False).encode()


@functools.cache
def spec() -> dict:
    """The OpenAPI document as a dict (tests compare it with the app's routes)."""
    doc = json.loads((resources.files("scheduler") / SPEC_FILE).read_text(encoding="utf-8"))
    if not str(doc.get("openapi", "")).startswith("3.") or not isinstance(doc.get("paths"), dict):
        raise ValueError(f"scheduler/{SPEC_FILE} is not an OpenAPI 3 document")
    return doc


async def openapi(request: web.Request) -> web.Response:
    # The spec is public and changes only with a deploy: let browsers revalidate it.
    return web.Response(body=spec_bytes(), content_type="application/json",
                        headers={"Cache-Control": "no-cache"})


async def page(request: web.Request) -> web.Response:
    """/docs is the page; /docs/docs.js and /docs/docs.css its two other files."""
    name = request.match_info.get("name", "docs.html")
    if name not in DOCS_FILES:
        raise NotFound(f"the docs have no file {name[:80]!r}")
    return web.Response(body=(STATIC / name).read_bytes(), content_type=DOCS_FILES[name],
                        headers={"Cache-Control": "no-cache"})
