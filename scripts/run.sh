#!/usr/bin/env bash
# Sets up (if needed) and runs the main job: `metadistill experiment` on its default
# (the synthetic experiment, all methods). Arguments replace the default command.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
"$root/scripts/setup.sh" >&2
cd "$root"
if [ $# -eq 0 ]; then set -- experiment; fi
exec "${BUILD_DIR:-$root/build}/metadistill" "$@"
