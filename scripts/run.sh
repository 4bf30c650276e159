#!/usr/bin/env bash
# Sets everything up and runs MedVision on the embedded defaults (SQLite and
# local files under ./data). Prints the URL; on first start also a one-time
# administrator password. Stop with Ctrl-C; run again to continue.
set -euo pipefail
source "$(dirname "$0")/env.sh"
cd "$ROOT"
"$ROOT/scripts/setup.sh"
log "building MedVision (release server)"
# The wasm is cargo-leptos' dev build: its release build runs wasm-opt, and
# Debian's binaryen 108 corrupts the externref table of today's rustc output.
cargo leptos build --frontend-only
cargo build --release -p server --bin medvision
export LEPTOS_SITE_ROOT="$ROOT/target/site"
log "demo model packs (trained once on synthetic phantoms, then reused)"
"$CARGO_TARGET_DIR/release/medvision" models train-demo
exec "$CARGO_TARGET_DIR/release/medvision" serve "$@"
