#!/usr/bin/env bash
# Starts a real MedVision server on a fresh SQLite database, creates a
# doctor with the CLI, and runs the Playwright tests against it.
set -euo pipefail
source "$(dirname "$0")/../scripts/env.sh"
cd "$ROOT"
bin="$CARGO_TARGET_DIR/debug/medvision"
data=$(mktemp -d)
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
export MEDVISION_DATA_DIR="$data" MEDVISION_ADDR="127.0.0.1:$port" MEDVISION_BOOTSTRAP_DEMO=false
# The browser tests need no literature search; indexing the starter
# guidelines at start would only compete with the page hydration for CPU.
export MEDVISION_EVIDENCE=false
export LEPTOS_SITE_ROOT="$ROOT/target/site"
unset DATABASE_URL
# A real CT slice from pydicom's test files (scripts/fixtures.sh fetches them).
export MV_E2E_DICOM="${MEDVISION_FIXTURES:-$HOME/.cache/medvision/fixtures}/pydicom-3.0.2/pydicom/data/test_files/CT_small.dcm"
export MV_E2E_EMAIL="e2e.doctor@e2e.example" MV_E2E_PASSWORD="end to end passphrase"
"$bin" org add "E2E Clinic" >/dev/null
"$bin" user add --email "$MV_E2E_EMAIL" --password "$MV_E2E_PASSWORD" --role doctor --org "E2E Clinic" >/dev/null
"$bin" serve >"$data/server.log" 2>&1 &
pid=$!
trap 'kill $pid 2>/dev/null || true; rm -rf "$data"' EXIT
for _ in $(seq 1 100); do
  curl -fsS "http://127.0.0.1:$port/healthz" >/dev/null 2>&1 && break
  sleep 0.2
done
export MV_BASE_URL="http://127.0.0.1:$port"
cd end2end
if ! npx --no-install playwright test; then
  echo "--- server log ---" >&2
  tail -n 50 "$data/server.log" >&2
  exit 1
fi
