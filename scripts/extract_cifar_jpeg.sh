#!/usr/bin/env bash
# Extracts the JPEG copy of CIFAR-10 (development and tests only, see /work/shared/data/README.md)
# into DEST after checking its sha256, for `data: {name: cifar10, format: folder, root: DEST}`.
#   scripts/extract_cifar_jpeg.sh DEST [ARCHIVE]
# ARCHIVE defaults to /work/shared/data/cifar10-jpeg.tar.xz. Idempotent: a DEST extracted from the
# same archive is left as it is. DEST then holds train/<class>/NNNN.jpg (5 000 per class) and
# test/<class>/NNNN.jpg (1 000 per class).
set -euo pipefail
if [ $# -lt 1 ] || [ $# -gt 2 ]; then
  echo "usage: $0 DEST [ARCHIVE]" >&2
  exit 2
fi
dest="$1"
archive="${2:-/work/shared/data/cifar10-jpeg.tar.xz}"
# The checksum published next to the shared archive; used when the .sha256 file is missing.
expected_sha256="7c52ef8221dfe04a67ff68b9796223102f4e994c2a9bfc6a97958fab6d8ee123"

[ -f "$archive" ] || { echo "$0: archive $archive: no such file" >&2; exit 1; }
if [ -f "$archive.sha256" ]; then
  expected_sha256="$(cut -d' ' -f1 "$archive.sha256")"
fi
marker="$dest/.extracted-$expected_sha256"
if [ -f "$marker" ]; then
  echo "$dest: already extracted from $archive"
  exit 0
fi

if [ -e "$dest" ] && [ -n "$(ls -A "$dest" 2>/dev/null)" ]; then
  echo "$0: $dest exists and was not extracted by this script; remove it or choose another folder" >&2
  exit 1
fi

actual_sha256="$(sha256sum "$archive" | cut -d' ' -f1)"
if [ "$actual_sha256" != "$expected_sha256" ]; then
  echo "$0: archive $archive: sha256 $actual_sha256, expected $expected_sha256" >&2
  exit 1
fi

# Extract next to DEST and move into place, so an interrupted run never leaves a partial DEST.
tmp="$dest.tmp.$$"
trap 'rm -rf "$tmp"' EXIT
rm -rf "$tmp"
mkdir -p "$tmp"
tar xJf "$archive" -C "$tmp"
for split_count in train:50000 test:10000; do
  split="${split_count%%:*}" want="${split_count##*:}"
  got="$(find "$tmp/$split" -type f -name '*.jpg' | wc -l)"
  if [ "$got" != "$want" ]; then
    echo "$0: $archive: $split holds $got images, expected $want" >&2
    exit 1
  fi
done
touch "$tmp/.extracted-$expected_sha256"
rmdir "$dest" 2>/dev/null || true
mkdir -p "$(dirname "$dest")"
mv "$tmp" "$dest"
trap - EXIT
echo "$dest: CIFAR-10 (JPEG copy) extracted: train 50000, test 10000 images"
