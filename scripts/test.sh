#!/usr/bin/env bash
# Set up the machine, then run every test (real redis-server, EGL, encoder, PocketSphinx).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec .venv/bin/python -m pytest -q -p no:cacheprovider "$@"
