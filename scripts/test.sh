#!/usr/bin/env bash
# Sets up (if needed), builds and runs the whole test suite. This is what CI runs.
#   scripts/test.sh             all tests
#   scripts/test.sh -L unit     extra arguments go to ctest
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
"$root/scripts/setup.sh"
cd "${BUILD_DIR:-$root/build}"
ctest --output-on-failure -j "$(nproc)" --timeout 900 "$@"
