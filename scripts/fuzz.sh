#!/usr/bin/env bash
# Runs the imaging fuzz targets (crates/imaging/fuzz) for a bounded time
# each, the corpus seeded from the real test files of scripts/fixtures.sh.
#   scripts/fuzz.sh [SECONDS_PER_TARGET]   (default 60)
# cargo-fuzz uses nightly-only compiler flags (-Zsanitizer); on the stable
# toolchain RUSTC_BOOTSTRAP=1 enables them. Crashes land in
# crates/imaging/fuzz/artifacts/<target>/ and make the script fail.
set -euo pipefail
cd "$(dirname "$0")/.."
SECS="${1:-60}"
FIXTURES="${MEDVISION_FIXTURES:-$HOME/.cache/medvision/fixtures}"
bash scripts/fixtures.sh
command -v cargo-fuzz >/dev/null || cargo install --locked cargo-fuzz

FUZZ=crates/imaging/fuzz
seed() { # seed TARGET FILES...
  local dir="$FUZZ/corpus/$1"; shift
  mkdir -p "$dir"
  for f in "$@"; do
    # Inputs over 1 MiB slow libFuzzer down without finding more.
    [ -f "$f" ] && [ "$(stat -c %s "$f")" -le 1048576 ] && cp -n "$f" "$dir/" || true
  done
}
seed ingest_file "$FIXTURES"/pydicom-*/pydicom/data/test_files/*.dcm \
  "$FIXTURES"/nibabel-*/nibabel/tests/data/*.nii*
seed nifti_open "$FIXTURES"/nibabel-*/nibabel/tests/data/*.nii

export RUSTC_BOOTSTRAP=1
cd "$FUZZ"
for target in ingest_file nifti_open; do
  cargo fuzz run "$target" "corpus/$target" -- \
    -max_total_time="$SECS" -rss_limit_mb=2048 -max_len=1048576 -timeout=20
done
