#!/usr/bin/env bash
# Load benchmark of the case list: 10,000 cases in one organisation, the
# JSON API and the server-rendered page, 64 connections, on SQLite and (when
# reachable) PostgreSQL. Loopback only; bounded (DURATION seconds per run).
#   bench/caselist.sh            # DURATION=15 CASES=10000
set -euo pipefail
source "$(dirname "$0")/../scripts/env.sh"
cd "$ROOT"
DURATION=${DURATION:-15}
CASES=${CASES:-10000}
command -v wrk >/dev/null || { apt-get update -qq && apt-get install -y -qq wrk >/dev/null; }
cargo build --release -p server --bin medvision
bin="$CARGO_TARGET_DIR/release/medvision"
out="$ROOT/bench/results"
mkdir -p "$out"
report="$out/caselist-$(date +%Y%m%d-%H%M%S).txt"
{ echo "machine: $(nproc) cores, $(free -g | awk '/Mem:/ {print $2}') GiB, $(uname -m)"; echo "cases: $CASES, connections: 64, duration: ${DURATION}s"; } | tee "$report"

run_backend() {
  local name=$1 url=${2:-}
  local data port pid token
  data=$(mktemp -d)
  port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
  export MEDVISION_DATA_DIR="$data" MEDVISION_ADDR="127.0.0.1:$port" MEDVISION_BOOTSTRAP_DEMO=false MEDVISION_LOG_FORMAT=json RUST_LOG=warn
  if [ -n "$url" ]; then export DATABASE_URL="$url"; else unset DATABASE_URL; fi
  "$bin" org add Bench >/dev/null
  "$bin" user add --email bench@bench.example --password "benchmark passphrase" --role radiologist --org Bench >/dev/null
  token=$("$bin" token create --email bench@bench.example)
  "$bin" serve >"$data/server.log" 2>&1 &
  pid=$!
  for _ in $(seq 1 100); do curl -fsS "http://127.0.0.1:$port/healthz" >/dev/null 2>&1 && break; sleep 0.2; done
  python3 - "$CASES" "$port" "$token" >"$data/seed.cfg" <<'PY'
import sys, json
n, port, token = int(sys.argv[1]), sys.argv[2], sys.argv[3]
urg = ["routine", "routine", "routine", "urgent", "stat"]
mod = ["CT", "MR", "CR", "DX", "US", "other"]
for i in range(n):
    body = json.dumps({"patient_ref": f"BENCH-{i:05d}", "age": i % 90, "sex": "FMOU"[i % 4], "modality": mod[i % 6],
                       "body_part": "head" if i % 2 else "chest", "urgency": urg[i % 5], "history": f"synthetic case {i}"})
    print(f'url = "http://127.0.0.1:{port}/api/v1/cases"')
    print('header = "Content-Type: application/json"')
    print(f'header = "Authorization: Bearer {token}"')
    print(f"data = {json.dumps(body)}")
    print('output = "/dev/null"')
PY
  curl -sS --no-progress-meter --parallel --parallel-max 16 -K "$data/seed.cfg"
  sleep 3
  local rss
  rss=$(ps -o rss= -p "$pid" | awk '{printf "%.0f", $1/1024}')
  echo "[$name] idle RSS after seeding: ${rss} MB" | tee -a "$report"
  for target in "api /api/v1/cases application/json" "page /cases text/html"; do
    set -- $target
    echo "[$name] $1 GET $2" | tee -a "$report"
    wrk -t2 -c64 -d"${DURATION}s" --latency -H "Authorization: Bearer $token" -H "Accept: $3" "http://127.0.0.1:$port$2" \
      | grep -E "Requests/sec|Latency|50%|99%|Non-2xx|Socket errors" | tee -a "$report"
  done
  kill "$pid"; wait "$pid" 2>/dev/null || true
  rm -rf "$data"
}

run_backend sqlite
if pg_isready -q -h 127.0.0.1 -p 5432 2>/dev/null; then
  db="mv_bench_$$"
  psql -h 127.0.0.1 -U postgres -d test -qc "CREATE DATABASE $db"
  run_backend postgres "postgres://postgres@127.0.0.1:5432/$db"
  psql -h 127.0.0.1 -U postgres -d test -qc "DROP DATABASE $db"
else
  echo "[postgres] skipped: no server on 127.0.0.1:5432" | tee -a "$report"
fi
echo "report: $report"
