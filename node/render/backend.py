"""Which compositor a node uses: GL on a real GPU, the CPU compositor everywhere else.

On Mesa's llvmpipe a GL pass is CPU work that holds the GIL (DESIGN.md); there the
CPU compositor (node/render/cpu.py) leaves the GIL to the encoder: a whole 720p
render of 30 s of narration took 2.3 s with it and 4.6 s with GL on llvmpipe, even
with GL drawing only each frame's damage (2-core VM). Both give the same frames within a stated
tolerance (tests/test_render_cpu.py).
"""

from __future__ import annotations

import functools
import logging
import os
from collections.abc import Mapping
from pathlib import Path

log = logging.getLogger(__name__)

BACKEND_ENV = "TOONZ_RENDER_BACKEND"
BACKENDS = ("auto", "gl", "cpu")
SOFTWARE_RENDERERS = ("llvmpipe", "softpipe", "swrast", "lavapipe")


def choose_backend(requested: str | None = None,
                   environ: Mapping[str, str] | None = None) -> str:
    """"gl" or "cpu": `requested`, else TOONZ_RENDER_BACKEND, else what this machine has."""
    environ = os.environ if environ is None else environ
    name = (requested or environ.get(BACKEND_ENV, "") or "auto").strip().lower()
    if name not in BACKENDS:
        raise ValueError(f"{BACKEND_ENV} must be one of {', '.join(BACKENDS)}. Got {name!r}")
    return probe_backend() if name == "auto" else name


@functools.cache
def probe_backend() -> str:
    """"gl" where EGL gives a hardware renderer, else "cpu" (probed once per process)."""
    dev = Path("/dev")
    # No GPU device node: no hardware renderer, and no 0.1 s spent starting llvmpipe to see.
    if not any(dev.glob("nvidia[0-9]*")) and not any(dev.glob("dri/renderD*")):
        log.info("render backend: cpu (no GPU device)")
        return "cpu"
    try:
        from node.render.gl import create_context

        ctx = create_context()
    except Exception as exc:  # no EGL, no driver: the CPU compositor needs neither
        log.info("render backend: cpu (EGL unavailable: %s)", exc)
        return "cpu"
    renderer = ctx.info["GL_RENDERER"]
    ctx.release()
    backend = "cpu" if any(s in renderer.lower() for s in SOFTWARE_RENDERERS) else "gl"
    log.info("render backend: %s (GL renderer %s)", backend, renderer)
    return backend
