#!/usr/bin/env bash
# Installs what metadistill needs on a fresh Debian machine, then configures and builds it.
# Idempotent: packages already present are not reinstalled, and an up-to-date build does nothing.
#   scripts/setup.sh            install (if needed) + configure + build (Release, into build/)
#   BUILD_DIR=... BUILD_TYPE=... JOBS=... scripts/setup.sh
#   EXTRA_PACKAGES="clang" CMAKE_ARGS="-D..." BUILD_TARGETS="t1 t2" scripts/setup.sh
#     (used by scripts/sanitize.sh and scripts/fuzz.sh: more packages, configure options of a new
#     build folder, and only these targets)
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
build_dir="${BUILD_DIR:-$root/build}"
build_type="${BUILD_TYPE:-Release}"
jobs="${JOBS:-$(nproc)}"

packages=(
  build-essential cmake pkg-config
  libtorch-dev libopenblas0-pthread      # LibTorch 1.13 (CPU); OpenBLAS is ~1.6x faster than reference BLAS
  libgloo-dev                            # headers of c10d's Gloo process group (data-parallel training)
  dataset-fashion-mnist                  # /usr/share/datasets/fashion-mnist/*.gz
  libyaml-cpp-dev libcli11-dev nlohmann-json3-dev libfmt-dev zlib1g-dev
  libsqlite3-dev libjpeg-dev libpng-dev
  googletest libgtest-dev libbenchmark-dev
  gnuplot-nox
  python3-torch python3-optuna python3-numpy python3-scipy  # golden-value scripts for tests
)
# shellcheck disable=SC2206  # word splitting wanted: a list of package names
packages+=(${EXTRA_PACKAGES:-})

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  echo "setup: installing ${missing[*]}"
  sudo_cmd=""
  [ "$(id -u)" -eq 0 ] || sudo_cmd="sudo"
  $sudo_cmd apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

if [ ! -f "$build_dir/CMakeCache.txt" ]; then
  # shellcheck disable=SC2086  # word splitting wanted: several -D options
  cmake -S "$root" -B "$build_dir" -DCMAKE_BUILD_TYPE="$build_type" ${CMAKE_ARGS:-}
fi
targets=()
for t in ${BUILD_TARGETS:-}; do targets+=(--target "$t"); done
cmake --build "$build_dir" -j "$jobs" "${targets[@]}"
