#!/usr/bin/env bash
# Sets up (if needed) and runs the main job: `metadistill experiment` on its default
# (the synthetic experiment). Extra arguments are passed to the program.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
"$root/scripts/setup.sh" >&2
cd "$root"
exec "${BUILD_DIR:-$root/build}/metadistill" "${@:-distill}"
