#!/usr/bin/env bash
# Fuzzes the parsers with libFuzzer (clang, AddressSanitizer + UndefinedBehaviorSanitizer): JPEG
# and PNG decoding, IDX and CIFAR-10 binary files, YAML configs, study databases (fuzz/*.cpp).
# Builds the harnesses into build-sanitize/ (shared with scripts/sanitize.sh), then runs each for
# FUZZ_SECONDS (default 60) from the seed corpus in fuzz/corpus/<name>/. New inputs go to
# build-sanitize/fuzz-corpus/<name>/, crashes to build-sanitize/fuzz-crashes/<name>/; the script
# fails when any harness crashes. A crash becomes a regression test: copy the input into the
# tests of its reader (see tests/data/*_test.cpp) and fix the reader.
#   scripts/fuzz.sh                  every harness
#   FUZZ_SECONDS=3600 scripts/fuzz.sh idx cifar
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
export BUILD_DIR="${BUILD_DIR:-$root/build-sanitize}"
all=(image_decode idx cifar config study)
names=("$@")
((${#names[@]})) || names=("${all[@]}")
targets=""
for n in "${names[@]}"; do targets+=" fuzz_$n"; done
EXTRA_PACKAGES="clang" BUILD_TYPE=RelWithDebInfo BUILD_TARGETS="$targets" \
  CMAKE_ARGS="-DCMAKE_CXX_COMPILER=clang++ -DMETADISTILL_SANITIZE=ON -DMETADISTILL_FUZZ=ON -DMETADISTILL_BUILD_BENCHMARKS=OFF" \
  "$root/scripts/setup.sh"
export ASAN_OPTIONS="${ASAN_OPTIONS:-detect_leaks=0}"
export UBSAN_OPTIONS="${UBSAN_OPTIONS:-halt_on_error=1:print_stacktrace=1}"
seconds="${FUZZ_SECONDS:-60}"
failed=()
for n in "${names[@]}"; do
  corpus="$BUILD_DIR/fuzz-corpus/$n"
  crashes="$BUILD_DIR/fuzz-crashes/$n"
  mkdir -p "$corpus" "$crashes"
  echo "fuzz: $n for ${seconds}s"
  if ! "$BUILD_DIR/fuzz/fuzz_$n" "$corpus" "$root/fuzz/corpus/$n" -max_total_time="$seconds" \
      -timeout=20 -rss_limit_mb=4096 -max_len=65536 -artifact_prefix="$crashes/" \
      -print_final_stats=1 2> "$BUILD_DIR/fuzz-$n.log"; then
    failed+=("$n")
    tail -n 40 "$BUILD_DIR/fuzz-$n.log"
  fi
  grep -E "^stat::number_of_executed_units|^Done" "$BUILD_DIR/fuzz-$n.log" | sed "s/^/  $n: /" || true
done
if ((${#failed[@]})); then
  echo "fuzz: crashes in ${failed[*]} (inputs in $BUILD_DIR/fuzz-crashes/)"
  exit 1
fi
echo "fuzz: no crash in ${names[*]}"
