#!/usr/bin/env bash
# Pipeline benchmarks (release build):
#   queue: no-op jobs through the real queue and workers, jobs/s, on SQLite
#          and (when reachable) PostgreSQL with 4 workers;
#   e2e:   phantom head-CT slices through upload → queue → decode → analyse →
#          explain with the demo ICH pack, against pure inference of the same
#          images in the same process (ratio = pipeline / pure inference).
#   bench/pipeline.sh                 # JOBS=2000 STUDIES=20 SLICES=10 SIZE=128
set -euo pipefail
source "$(dirname "$0")/../scripts/env.sh"
cd "$ROOT"
cargo build --release -p server --example bench_pipeline >&2
bin="$CARGO_TARGET_DIR/release/examples/bench_pipeline"
export JOBS=${JOBS:-2000}
log "queue, SQLite"
WORKERS=${WORKERS:-4} DATABASE_URL= "$bin" queue
PG=${DATABASE_URL_PG:-postgres://postgres@127.0.0.1:5432/test}
if command -v psql >/dev/null && psql "$PG" -Atqc 'SELECT 1' >/dev/null 2>&1; then
  db="mv_bench_$$"
  psql "$PG" -qc "CREATE DATABASE $db" >/dev/null
  log "queue, PostgreSQL, 4 workers"
  WORKERS=4 DATABASE_URL="${PG%/*}/$db" "$bin" queue || true
  psql "$PG" -qc "DROP DATABASE $db" >/dev/null
else
  echo "PostgreSQL queue benchmark skipped: nothing answers at $PG" >&2
fi
models=${MEDVISION_MODELS_DIR:-$ROOT/data/models}
if [ ! -f "$models/demo-ich-efficientnet-b0/model.toml" ]; then
  log "training the demo packs into $models (once, about 8 minutes)"
  cargo build --release -p server --bin medvision >&2
  "$CARGO_TARGET_DIR/release/medvision" models train-demo --out "$models" >&2
fi
log "end to end, demo ICH pack, SQLite"
MEDVISION_MODELS_DIR="$models" WORKERS=${WORKERS:-2} DATABASE_URL= "$bin" e2e
