#!/usr/bin/env bash
# The test suite under AddressSanitizer + UndefinedBehaviorSanitizer, built with clang into
# build-sanitize/ (shared with scripts/fuzz.sh). Not part of CI: the instrumented build takes
# about 40 minutes on 2 cores and the tests run 2-3x slower. Any sanitizer report fails the test
# that triggered it.
#   scripts/sanitize.sh              all tests
#   scripts/sanitize.sh -L data      extra arguments go to ctest
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
export BUILD_DIR="${BUILD_DIR:-$root/build-sanitize}"
EXTRA_PACKAGES="clang" BUILD_TYPE=RelWithDebInfo \
  CMAKE_ARGS="-DCMAKE_CXX_COMPILER=clang++ -DMETADISTILL_SANITIZE=ON -DMETADISTILL_FUZZ=ON -DMETADISTILL_BUILD_BENCHMARKS=OFF" \
  "$root/scripts/setup.sh"
# LibTorch is not instrumented: its static allocations that live to exit are not our leaks.
export ASAN_OPTIONS="${ASAN_OPTIONS:-detect_leaks=0:abort_on_error=1:detect_stack_use_after_return=1}"
export UBSAN_OPTIONS="${UBSAN_OPTIONS:-halt_on_error=1:print_stacktrace=1}"
cd "$BUILD_DIR"
ctest --output-on-failure -j "$(nproc)" --timeout 3600 "$@"
