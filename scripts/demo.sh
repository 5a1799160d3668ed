#!/usr/bin/env bash
# Set up the machine, then run the demo: `toonz up`, one render through the SDK, the MP4.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec .venv/bin/python scripts/demo.py "$@"
