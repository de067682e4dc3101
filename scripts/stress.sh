#!/usr/bin/env bash
# Runs the test suite several times in a row on a loaded machine, to catch tests that depend on
# timing: busy-loop processes keep the cores occupied while ctest runs. Stops at the first failing
# run and keeps its log.
#   scripts/stress.sh                  5 runs, one busy loop per core
#   scripts/stress.sh --runs 3 --load 1 -- -L unit
#                                      3 runs, 1 busy loop, extra arguments go to ctest
# Builds nothing: run scripts/test.sh (or cmake --build build) first.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
runs=5
load="$(nproc)"
while [[ $# -gt 0 ]]; do
  case "$1" in
    --runs) runs="$2"; shift 2 ;;
    --load) load="$2"; shift 2 ;;
    --) shift; break ;;
    *) echo "stress.sh: unknown argument '$1' (see the header of $0)" >&2; exit 2 ;;
  esac
done
[[ "$runs" =~ ^[1-9][0-9]*$ ]] || { echo "stress.sh: --runs $runs: expected a positive integer" >&2; exit 2; }
[[ "$load" =~ ^[0-9]+$ ]] || { echo "stress.sh: --load $load: expected a count of busy loops" >&2; exit 2; }
build="${BUILD_DIR:-$root/build}"
[[ -f "$build/CTestTestfile.cmake" ]] || { echo "stress.sh: no test build in $build (run scripts/test.sh first)" >&2; exit 2; }
logs="$build/stress"
mkdir -p "$logs"

pids=()
stop_load() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; }
trap stop_load EXIT
for ((i = 0; i < load; ++i)); do
  ( while :; do :; done ) &
  pids+=("$!")
done
echo "stress: $runs suite runs, $load busy loop(s) on $(nproc) cores; logs in $logs"
for ((r = 1; r <= runs; ++r)); do
  start=$(date +%s)
  if (cd "$build" && ctest -j "$(nproc)" --timeout 900 "$@" > "$logs/run$r.log" 2>&1); then
    echo "run $r: $(grep -E 'tests passed' "$logs/run$r.log") ($(( $(date +%s) - start )) s)"
  else
    echo "run $r FAILED ($(( $(date +%s) - start )) s):"
    grep -E '\(Failed\)|\(Timeout\)|\*\*\*' "$logs/run$r.log" || tail -20 "$logs/run$r.log"
    exit 1
  fi
done
echo "stress: all $runs runs passed"
