#!/usr/bin/env bash
# Dashboard query time with 100,000 findings (goal < 100 ms), on SQLite and
# (when reachable) PostgreSQL, release build:
#   bench/analytics.sh            # FINDINGS=100000 CASES=2000 RUNS=20
set -euo pipefail
source "$(dirname "$0")/../scripts/env.sh"
cd "$ROOT"
cargo build --release -p server --example bench_analytics >&2
bin="$CARGO_TARGET_DIR/release/examples/bench_analytics"
log "dashboard, SQLite"
DATABASE_URL= "$bin"
PG=${DATABASE_URL_PG:-postgres://postgres@127.0.0.1:5432/test}
if command -v psql >/dev/null && psql "$PG" -Atqc 'SELECT 1' >/dev/null 2>&1; then
  db="mv_bench_$$"
  psql "$PG" -qc "CREATE DATABASE $db" >/dev/null
  log "dashboard, PostgreSQL"
  DATABASE_URL="${PG%/*}/$db" "$bin" || true
  psql "$PG" -qc "DROP DATABASE $db" >/dev/null
else
  echo "PostgreSQL dashboard benchmark skipped: nothing answers at $PG" >&2
fi
