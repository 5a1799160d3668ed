"""GLSL programs, one file per program, loaded by name.

Each `NAME.glsl` starts with its `#version` line and holds every stage of one
program inside `#if defined VERTEX_SHADER` / `#elif defined FRAGMENT_SHADER`
blocks (moderngl-window's layout). `program()` compiles the file once per stage,
defining the stage's macro (and any `defines` for variants of one program)
right after the `#version` line.
"""

from __future__ import annotations

from collections.abc import Mapping
from importlib import resources
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import moderngl

STAGES = ("VERTEX_SHADER", "FRAGMENT_SHADER")


def names() -> list[str]:
    """The names of every program shipped in this package, sorted."""
    return sorted(
        entry.name.removesuffix(".glsl")
        for entry in resources.files(__name__).iterdir()
        if entry.name.endswith(".glsl")
    )


def load_source(name: str) -> str:
    """The text of `shaders/NAME.glsl`."""
    path = resources.files(__name__).joinpath(f"{name}.glsl")
    if not path.is_file():
        raise FileNotFoundError(f"No shader program {name!r}. Known: {', '.join(names())}")
    return path.read_text(encoding="utf-8")


def stage_source(source: str, stage: str, defines: Mapping[str, object] | None = None) -> str:
    """`source` with `#define STAGE` and `defines` inserted after its `#version` line."""
    header = [f"#define {stage}\n"]
    header += [f"#define {key} {value}\n" for key, value in (defines or {}).items()]
    lines = source.splitlines(keepends=True)
    for i, line in enumerate(lines):
        if line.lstrip().startswith("#version"):
            # A #line directive keeps compiler messages on the file's own numbering.
            return "".join(lines[: i + 1] + header + [f"#line {i + 2}\n"] + lines[i + 1 :])
    raise ValueError(f"Shader source has no #version line (stage {stage})")


def program(
    ctx: moderngl.Context, name: str, defines: Mapping[str, object] | None = None
) -> moderngl.Program:
    """Compile and link `shaders/NAME.glsl` in `ctx`, with optional `#define`s."""
    source = load_source(name)
    stages = {
        stage: stage_source(source, stage, defines)
        for stage in STAGES
        if f"defined {stage}" in source
    }
    missing = [stage for stage in STAGES if stage not in stages]
    if missing:
        raise ValueError(f"Shader {name!r} has no {' or '.join(missing)} block")
    return ctx.program(
        vertex_shader=stages["VERTEX_SHADER"], fragment_shader=stages["FRAGMENT_SHADER"]
    )
