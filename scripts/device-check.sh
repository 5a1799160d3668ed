#!/usr/bin/env bash
# On a lent GPU machine (see scripts/device-prep.sh, run first on this one; carry .gl):
# the NVIDIA EGL path, the GL tests, and bench/device_render.py; results under $OUT.
#   run: bash scripts/device-check.sh        (OUT defaults to ./device-out)
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-device-out}; mkdir -p "$OUT"
t0=$(date +%s)
for f in .gl/render/debs/*.deb; do dpkg -x "$f" /; done; ldconfig
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
  --target /tmp/site .gl/render/whl/*.whl || exit 1
export PYTHONPATH=/tmp/site:$PWD PYTHONUNBUFFERED=1
nvidia-smi -L; nproc
probe() {
  python3 -c "
import logging; logging.basicConfig(level=logging.INFO)
from node.render.gl import create_context
c = create_context(); print('RENDERER', c.info['GL_VENDOR'], '|', c.info['GL_RENDERER'])"
}
VENDOR=/usr/local/nvidia/share/glvnd/egl_vendor.d/10_nvidia.json
if ! probe 2>&1 | tee /tmp/probe.txt | grep -q 'RENDERER NVIDIA' && [ -f "$VENDOR" ]; then
  cat /tmp/probe.txt  # the driver's EGL vendor file may live outside GLVND's search path
  export __EGL_VENDOR_LIBRARY_FILENAMES=$VENDOR
  echo "retry with $__EGL_VENDOR_LIBRARY_FILENAMES"
fi
probe 2>&1 | tail -3
echo "setup took $(( $(date +%s) - t0 )) s"
# --noconftest: the device has no redis-server; these modules need none.
timeout 60 python3 -m pytest -p no:cacheprovider --noconftest -q -k "not encoding_loop" \
  tests/test_shaders.py tests/test_gl.py tests/test_encode.py 2>&1 | tail -15 | tee "$OUT/tests.txt"
echo "tests done at $(( $(date +%s) - t0 )) s"
timeout 240 python3 bench/device_render.py run --dir .gl/scenes --out "$OUT" --repeats 3 \
  --qualities hd,ultra,standard,preview --loops hd,ultra,standard,preview 2>&1 \
  | grep -v -i svt | tee "$OUT/bench.txt"
echo "bench done at $(( $(date +%s) - t0 )) s"
