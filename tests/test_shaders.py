"""Every GLSL program compiles and links headless, in every variant the code uses."""

from __future__ import annotations

import pytest

import shaders
from node.render.gl import create_context

VARIANTS = {
    "sprite": [{}],
    "yuv420": [{"PACK": p} for p in (1, 2, 4)] + [{"PACK": p, "CHROMA": 1} for p in (1, 2, 4)],
}


@pytest.fixture(scope="module")
def egl_ctx():
    ctx = create_context()
    yield ctx
    ctx.release()


def test_every_shader_file_is_covered():
    assert shaders.names() == sorted(VARIANTS)


@pytest.mark.parametrize(
    ("name", "defines"), [(n, d) for n, ds in VARIANTS.items() for d in ds], ids=str
)
def test_program_compiles(egl_ctx, name, defines):
    prog = shaders.program(egl_ctx, name, defines)
    try:
        assert len(list(prog)) > 0
    finally:
        prog.release()


def test_stage_macro_goes_after_version_line():
    source = shaders.load_source("yuv420")
    version = next(i for i, line in enumerate(source.splitlines()) if line.startswith("#version"))
    lines = shaders.stage_source(source, "VERTEX_SHADER", {"PACK": 4}).splitlines()
    assert lines[version] == source.splitlines()[version]
    # The #line directive keeps compiler messages on the file's own line numbers.
    assert lines[version + 1 : version + 4] == ["#define VERTEX_SHADER", "#define PACK 4",
                                                f"#line {version + 2}"]
    assert lines[version + 4 :] == source.splitlines()[version + 1 :]


def test_source_without_version_line_is_refused():
    source = shaders.load_source("sprite")
    headless = "\n".join(line for line in source.splitlines() if not line.startswith("#version"))
    with pytest.raises(ValueError, match="no #version line"):
        shaders.stage_source(headless, "VERTEX_SHADER")


def test_unknown_program_names_the_known_ones():
    with pytest.raises(FileNotFoundError, match="sprite"):
        shaders.load_source("nope")
