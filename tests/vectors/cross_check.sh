#!/usr/bin/env bash
# Installs npm canonicalize 4.0.0 in a temporary folder and runs cross_check.mjs against
# canonical.json. Needs node (>= 18) and npm.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
dir="$(mktemp -d)"
trap 'rm -rf "$dir"' EXIT
(cd "$dir" && npm install --silent --no-audit --no-fund --no-save canonicalize@4.0.0 >/dev/null)
CANONICALIZE_DIR="$dir" node "$here/cross_check.mjs"
