#!/usr/bin/env bash
# Runs every check and test: formatting, clippy (server and wasm sides), the
# wasm dependency boundary, the browser test, unit and integration tests on
# SQLite and on PostgreSQL (when one is reachable; CI has one).
set -euo pipefail
source "$(dirname "$0")/env.sh"
cd "$ROOT"
"$ROOT/scripts/setup.sh" --test

SERVER_PKGS=(-p server -p app -p entity -p migration -p imaging -p inference -p evidence -p reporting -p interop)

log "cargo fmt --check"
cargo fmt --all -- --check

log "clippy, server side (ssr)"
cargo clippy "${SERVER_PKGS[@]}" --all-targets -- -D warnings

log "clippy, browser side (hydrate, wasm32)"
cargo clippy -p frontend --target wasm32-unknown-unknown -- -D warnings

log "deployment files (Dockerfiles, compose, Kubernetes, nginx)"
"$ROOT/scripts/check-deploy.sh"

log "dependencies: cargo deny (licences, bans, sources; advisories when reachable)"
cargo deny --log-level error check licenses bans sources
# The RustSec advisory database is a git repository on GitHub; where it
# cannot be fetched (this project's CI reaches only the package registries)
# the check says so instead of passing silently.
if cargo deny --log-level error fetch db >/dev/null 2>&1; then
  cargo deny --log-level error check advisories
else
  echo "*** SKIPPED advisories: the RustSec database (github.com/rustsec/advisory-db) cannot be fetched from here ***"
fi

log "the wasm build contains no server crate"
for crate in sea-orm sqlx tokio axum argon2 tower-sessions; do
  if cargo tree -p frontend --target wasm32-unknown-unknown -e normal -i "$crate" 2>/dev/null | grep -q "^$crate v"; then
    echo "error: $crate is in the frontend's dependency tree" >&2
    exit 1
  fi
done

# PostgreSQL: the local server when it is installed but stopped (CI has it running).
if command -v pg_isready >/dev/null && ! pg_isready -q -h 127.0.0.1 -p 5432; then
  if command -v pg_ctlcluster >/dev/null; then
    pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | head -n1)" main start || true
  fi
fi
if command -v psql >/dev/null && pg_isready -q -h 127.0.0.1 -p 5432; then
  # Databases left by earlier runs of the integration tests.
  psql -h 127.0.0.1 -U postgres -d test -Atqc "SELECT datname FROM pg_database WHERE datname LIKE 'mv\_test\_%'" 2>/dev/null |
    while read -r db; do psql -h 127.0.0.1 -U postgres -d test -qc "DROP DATABASE IF EXISTS \"$db\"" >/dev/null 2>&1 || true; done
fi

log "building the tests and the medvision binary"
cargo nextest run "${SERVER_PKGS[@]}" --no-run

log "browser test (Playwright + Debian's chromium)"
# The server binary is the one just built for the integration tests; only
# the wasm frontend and the stylesheet come from cargo-leptos.
cargo leptos build --frontend-only
"$ROOT/end2end/run.sh"

log "doctests"
cargo test --doc "${SERVER_PKGS[@]}"

log "unit and integration tests (SQLite and PostgreSQL)"
# set-up fetched the embedding model: its tests must run, not skip.
export MEDVISION_REQUIRE_MODEL=1
# set-up installed dcmtk and the FHIR validator: the interoperability tests
# must talk to the real peers, not skip.
export MEDVISION_REQUIRE_DCMTK=1 MEDVISION_REQUIRE_FHIR=1
cargo nextest run "${SERVER_PKGS[@]}" --no-fail-fast
