#!/usr/bin/env bash
# Prepare a GPU device check (bench/device_render.py) on this machine, which can reach the
# package registries; the device machines cannot. Into .gl/ (kept out of git):
#   .gl/render/debs  the GLVND runtime (libEGL, libGL, libOpenGL, ...) and the Vulkan loader
#                    (the set the H200 check of 2026-11-26 ran with) as Debian packages,
#                    unpacked on the device, where only the NVIDIA driver's libraries exist;
#   .gl/render/whl   PyAV, ModernGL, glcontext and Pillow wheels for the device's Python
#                    (3.12 by default: DEVICE_PYTHON=3.11 for another); numpy and torch are
#                    there; numba is not shipped (llvmlite alone is 57 MB, and what a run
#                    carries is at most 64 MiB), so there the CPU compositor runs numpy;
#   .gl/scenes       the presets' scenes (lip sync, art, placements), made here because the
#                    device has no cairo and no PocketSphinx.
# Then, with a device lent: run scripts/device-check.sh there, carrying .gl.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${DEVICE_PYTHON:-3.12}
SECONDS_OF_SPEECH=${DEVICE_SECONDS:-10}
mkdir -p .gl/render/debs .gl/render/whl
(cd .gl/render/debs && apt-get download -q libegl1 libgl1 libgles2 libglvnd0 libglx0 libopengl0 libvulkan1)
VERSIONS=$(.venv/bin/python -c "
from importlib.metadata import version
print(' '.join(f'{p}=={version(p)}' for p in ('av', 'moderngl', 'glcontext', 'pillow')))")
.venv/bin/python -m pip download -q --no-deps --only-binary=:all: --python-version "$PY" \
  --platform manylinux_2_28_x86_64 --platform manylinux2014_x86_64 --platform manylinux1_x86_64 \
  --implementation cp -d .gl/render/whl $VERSIONS
.venv/bin/python bench/device_render.py export --dir .gl/scenes --seconds "$SECONDS_OF_SPEECH"
ls .gl/render/debs .gl/render/whl
du -sh .gl
