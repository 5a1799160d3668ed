#!/usr/bin/env bash
# Set up a machine for Toonz Farm: Debian packages (apt-get), then .venv with every part.
# Safe to run again: it installs only what is missing.
set -euo pipefail
cd "$(dirname "$0")/.."

SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
PY="${PYTHON:-python3}"

# redis-server: the farm's coordination; espeak-ng + sox: speech for tests and demos;
# Mesa's EGL and llvmpipe: headless OpenGL where there is no GPU; cairo: SVG art.
pkgs="redis-server espeak-ng sox libegl1 libegl-mesa0 libgl1-mesa-dri libgles2 libcairo2"
"$PY" -m venv --help >/dev/null 2>&1 || pkgs="$pkgs python3-venv"
missing=""
for p in $pkgs; do dpkg -s "$p" >/dev/null 2>&1 || missing="$missing $p"; done
if [ -n "$missing" ]; then
  echo "setup: installing system packages:$missing"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq $missing >/dev/null
fi

if [ ! -x .venv/bin/python ]; then
  echo "setup: creating .venv"
  "$PY" -m venv .venv
fi
# torch first and pinned: on these machines 2.13.0 is a local CPU wheel; an open range
# would let the resolver pull a multi-GB CUDA build.
if ! .venv/bin/python -c "import torch" >/dev/null 2>&1; then
  echo "setup: installing torch==2.13.0"
  .venv/bin/pip install -q torch==2.13.0
fi
.venv/bin/pip install -q -e '.[test]' 2>&1 | { grep -v -E "^WARNING: (Location|There was an error)" || true; }
echo "setup: ready ($(.venv/bin/python --version), $(redis-server --version | cut -d' ' -f3))"
