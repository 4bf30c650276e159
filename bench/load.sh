#!/usr/bin/env bash
# Load and faults (issue 9): USERS simulated users (browse pages, API reads,
# chat, DICOM uploads; server/examples/load.rs) for DURATION seconds against
# one `medvision serve` (release), on SQLite and on PostgreSQL. With FAULTS=1,
# during the load: PostgreSQL restarted at 1/4 of the run (postgres backend
# only), the blob store made read-only at 1/2 for BLOB_RO_SECS, the LLM
# endpoint (a local OpenAI-compatible stand-in) down at 3/4 for
# LLM_DOWN_SECS. /readyz is polled every second, the server's RSS sampled
# every 5 s. Afterwards: the server must still answer /healthz, and every
# upload the client saw accepted must be stored (API and database counts).
#
#   bench/load.sh                      # USERS=200 DURATION=600 BACKENDS="sqlite postgres" FAULTS=1
#   USERS=50 DURATION=90 bench/load.sh # the short run
#   NO_BUILD=1 …                       # reuse the release binaries already built
#   MODELS_DIR=DIR …                   # model packs (`medvision models train-demo --out DIR`):
#                                      # uploads are then analysed and drafted through the LLM
# Other knobs: BLOB_RO_SECS, LLM_DOWN_SECS (default min(30, DURATION/6)),
# RAMP_SECS, WARMUP_SECS, GRACE_SECS, JOBS_WAIT_SECS, DICOM, RUN_AS.
# Report: bench/results/load-<stamp>.{txt,json}, raw files in load-<stamp>-<backend>/.
#
# Loopback only; bounded (every wait has a limit, the generator runs under
# `timeout`). Needs root (the server runs as the unprivileged user RUN_AS so
# that a read-only blob store is read-only to it; `pg_ctlcluster` restarts
# the local cluster, which briefly disconnects every client of it).
# Exit status: 1 when the server died or an accepted upload was lost; missed
# latency / error-rate goals are printed, not failed.
set -euo pipefail
source "$(dirname "$0")/../scripts/env.sh"
cd "$ROOT"
USERS=${USERS:-200}
DURATION=${DURATION:-600}
BACKENDS=${BACKENDS:-"sqlite postgres"}
FAULTS=${FAULTS:-1}
RUN_AS=${RUN_AS:-medvisionload}
DICOM=${DICOM:-$HOME/.cache/medvision/fixtures/pydicom-3.0.2/pydicom/data/test_files/CT_small.dcm}
small=$((DURATION / 6))
BLOB_RO_SECS=${BLOB_RO_SECS:-$((small < 30 ? small : 30))}
LLM_DOWN_SECS=${LLM_DOWN_SECS:-$((small < 30 ? small : 30))}
RAMP_SECS=${RAMP_SECS:-$((DURATION / 10 < 30 ? DURATION / 10 : 30))}
# RSS "after warm-up": the first sample this long after the load starts.
WARMUP_SECS=${WARMUP_SECS:-$((DURATION / 6 < 60 ? DURATION / 6 : 60))}
[ "$WARMUP_SECS" -lt "$RAMP_SECS" ] && WARMUP_SECS=$RAMP_SECS
# Requests overlapping [fault start - 1 s, fault end + GRACE_SECS] count as
# inside the fault window.
GRACE_SECS=${GRACE_SECS:-10}
# The LLM circuit breaker stays open this long (server default 30 s); short
# runs shorten it so that the return to the LLM fits in the run.
BREAKER_OPEN_SECS=${BREAKER_OPEN_SECS:-$((DURATION < 300 ? 5 : 30))}
PASSWORD="load test passphrase 2026"

[ "$(id -u)" = 0 ] || { echo "run as root (the server is started as $RUN_AS)" >&2; exit 2; }
[ -f "$DICOM" ] || { echo "no DICOM file at $DICOM (set DICOM=…; scripts/setup.sh fetches pydicom's test files)" >&2; exit 2; }

if [ "${NO_BUILD:-0}" = 1 ]; then
  log "NO_BUILD=1: using the binaries already in $CARGO_TARGET_DIR/release"
else
  log "building medvision and the load generator (release)"
  cargo build --release -p server --bin medvision --example load
fi
bin_src="$CARGO_TARGET_DIR/release/medvision"
gen="$CARGO_TARGET_DIR/release/examples/load"

id -u "$RUN_AS" >/dev/null 2>&1 || useradd -r -M -s /usr/sbin/nologin "$RUN_AS"
uid=$(id -u "$RUN_AS")
gid=$(id -g "$RUN_AS")

out="$ROOT/bench/results"
mkdir -p "$out"
stamp=$(date +%Y%m%d-%H%M%S)
report_json="$out/load-$stamp.json"
report_txt="$out/load-$stamp.txt"
work=$(mktemp -d /tmp/mv-load.XXXXXX)
chmod 755 "$work"
# The unprivileged user cannot read under /root: run a copy.
cp "$bin_src" "$work/medvision"
chmod 755 "$work/medvision"
bin="$work/medvision"
if [ -d "$ROOT/target/site" ]; then site="$ROOT/target/site"; else site="$work/site"; mkdir -p "$site"; fi
pgver=$(ls /etc/postgresql 2>/dev/null | sort -V | tail -1 || true)
pgdb="mv_load_$$"

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
ms() { date +%s%3N; }

# The LLM stand-in: answers chat completions, logs the time of each call.
cat >"$work/llm_stub.py" <<'PY'
import json, sys, threading, time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
port, counter = int(sys.argv[1]), sys.argv[2]
lock = threading.Lock()
class H(BaseHTTPRequestHandler):
    def log_message(self, *a): pass
    def _send(self, code, obj):
        b = json.dumps(obj).encode()
        self.send_response(code); self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(b))); self.end_headers(); self.wfile.write(b)
    def do_GET(self):
        self._send(200, {"object": "list", "data": [{"id": "stub", "object": "model"}]})
    def do_POST(self):
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        if not self.path.endswith("/chat/completions"):
            return self._send(404, {"error": {"message": "not found"}})
        with lock:
            with open(counter, "a") as f: f.write(f"{int(time.time() * 1000)}\n")
        self._send(200, {"id": "stub-1", "object": "chat.completion", "created": 0, "model": "stub",
            "choices": [{"index": 0, "finish_reason": "stop", "message": {"role": "assistant",
                "content": "No acute abnormality is described by the findings provided."}}],
            "usage": {"prompt_tokens": 10, "completion_tokens": 10, "total_tokens": 20}})
ThreadingHTTPServer(("127.0.0.1", port), H).serve_forever()
PY

pids=()
server_pid=""
data=""
cleanup() {
  set +e
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null; done
  [ -n "$server_pid" ] && kill "$server_pid" 2>/dev/null && wait "$server_pid" 2>/dev/null
  [ -n "$data" ] && [ -d "$data/blobs" ] && chmod -R u+w "$data/blobs"
  if [ -n "$pgver" ] && ! pg_isready -q -h 127.0.0.1 -p 5432; then
    pg_ctlcluster --skip-systemctl-redirect "$pgver" main start
  fi
  dropdb -h 127.0.0.1 -U postgres --if-exists --force "$pgdb" 2>/dev/null
  rm -rf "$work"
}
trap cleanup EXIT

machine="$(nproc) cores ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//')), $(free -g | awk '/Mem:/ {print $2}') GiB, $(uname -m)"
{
  echo "load.sh $stamp: users $USERS, duration ${DURATION}s (ramp ${RAMP_SECS}s), backends: $BACKENDS, faults: $FAULTS"
  echo "machine: $machine; load average at start: $(cut -d' ' -f1-3 /proc/loadavg)"
  echo "DICOM: $DICOM; site root: $site"
} | tee "$report_txt"

run_backend() {
  local name=$1 url=${2:-}
  local dir="$work/$name" port mport lport llm_pid t0 t_end alive=1 rc=0
  data="$dir/data"
  mkdir -p "$data"
  port=$(free_port); mport=$(free_port); lport=$(free_port)
  export MEDVISION_DATA_DIR="$data" MEDVISION_ADDR="127.0.0.1:$port" MEDVISION_METRICS_ADDR="127.0.0.1:$mport"
  export MEDVISION_BOOTSTRAP_DEMO=false MEDVISION_EMBEDDED_WORKERS=true MEDVISION_LOG_FORMAT=json RUST_LOG=warn
  export MEDVISION_LOGIN_PER_IP_PER_MINUTE=100000 MEDVISION_LOGIN_PER_ACCOUNT_PER_MINUTE=100
  export MEDVISION_UPLOAD_PER_USER_PER_MINUTE=1000
  # Without model packs (MODELS_DIR unset) uploads are decoded and indexed,
  # analysis and drafting are skipped ("no model installed") and the LLM is
  # never called. With MODELS_DIR (e.g. the output of `medvision models
  # train-demo --out DIR`) a copy goes into the data dir: every upload is
  # analysed (CT/HEAD) and drafted through the LLM stand-in. Evidence
  # retrieval stays off (no embedding model needed).
  if [ -n "${MODELS_DIR:-}" ]; then cp -r "$MODELS_DIR" "$data/models"; fi
  export MEDVISION_EVIDENCE=false
  export MEDVISION_LLM_BASE_URL="http://127.0.0.1:$lport/v1" MEDVISION_LLM_MODEL=stub
  export MEDVISION_BREAKER_OPEN_SECS="$BREAKER_OPEN_SECS"
  export LEPTOS_SITE_ROOT="$site"
  if [ -n "$url" ]; then export DATABASE_URL="$url"; else unset DATABASE_URL; fi
  log "[$name] creating the organisation and $USERS users"
  "$bin" org add Load >/dev/null || return 1
  seq 1 "$USERS" | xargs -I{} "$bin" user add --email "load{}@load.example" \
    --password "$PASSWORD" --role doctor --org Load >/dev/null || return 1
  chown -R "$uid:$gid" "$dir"

  python3 "$work/llm_stub.py" "$lport" "$dir/llm_calls" &
  llm_pid=$!
  pids+=("$llm_pid")

  setpriv --reuid="$uid" --regid="$gid" --init-groups env HOME="$data" "$bin" serve >"$dir/server.log" 2>&1 &
  server_pid=$!
  local up=0
  for _ in $(seq 1 300); do
    curl -fsS -m 2 "http://127.0.0.1:$port/healthz" >/dev/null 2>&1 && { up=1; break; }
    kill -0 "$server_pid" 2>/dev/null || break
    sleep 0.2
  done
  if [ "$up" != 1 ]; then
    echo "[$name] the server did not start; log:" | tee -a "$report_txt"
    tail -20 "$dir/server.log" | tee -a "$report_txt"
    return 1
  fi
  local server_start; server_start=$(ms)

  # RSS every 5 s; /readyz every second.
  ( while kill -0 "$server_pid" 2>/dev/null; do
      echo "$(ms),$(awk '/^VmRSS/ {print $2}' "/proc/$server_pid/status" 2>/dev/null)"
      sleep 5
    done ) >"$dir/rss.csv" &
  pids+=("$!")
  ( while kill -0 "$server_pid" 2>/dev/null; do
      t=$(ms)
      body=$(curl -sS -m 3 -w ' %{http_code} %{time_total}' "http://127.0.0.1:$port/readyz" 2>/dev/null | tr -d '\n' || true)
      echo "$t $body"
      sleep 1
    done ) >"$dir/readyz.log" &
  pids+=("$!")
  sleep 5

  t0=$(ms)
  : >"$dir/faults.jsonl"
  local sched=""
  if [ "$FAULTS" = 1 ]; then
    ( set +e
      sleep $((DURATION / 4))
      if [ "$name" = postgres ] && [ -n "$pgver" ]; then
        s=$(ms); pg_ctlcluster --skip-systemctl-redirect "$pgver" main restart >"$dir/pg_restart.log" 2>&1; r=$?
        for _ in $(seq 1 60); do pg_isready -q -h 127.0.0.1 -p 5432 && break; sleep 0.5; done
        echo "{\"fault\":\"postgres_restart\",\"start_ms\":$s,\"end_ms\":$(ms),\"rc\":$r}" >>"$dir/faults.jsonl"
      fi
      sleep $(( DURATION / 2 - ($(ms) - t0) / 1000 > 0 ? DURATION / 2 - ($(ms) - t0) / 1000 : 0 ))
      mkdir -p "$data/blobs"
      s=$(ms); chmod -R a-w "$data/blobs"; sleep "$BLOB_RO_SECS"; chmod -R u+w "$data/blobs"
      echo "{\"fault\":\"blobs_read_only\",\"start_ms\":$s,\"end_ms\":$(ms),\"rc\":0}" >>"$dir/faults.jsonl"
      sleep $(( DURATION * 3 / 4 - ($(ms) - t0) / 1000 > 0 ? DURATION * 3 / 4 - ($(ms) - t0) / 1000 : 0 ))
      s=$(ms); kill "$llm_pid"; sleep "$LLM_DOWN_SECS"
      python3 "$work/llm_stub.py" "$lport" "$dir/llm_calls" &
      echo "$!" >"$dir/llm2.pid"
      echo "{\"fault\":\"llm_down\",\"start_ms\":$s,\"end_ms\":$(ms),\"rc\":0}" >>"$dir/faults.jsonl"
    ) &
    sched=$!
    pids+=("$sched")
  fi

  log "[$name] load: $USERS users, ${DURATION}s"
  set +e
  timeout $((DURATION + 180)) "$gen" --url "http://127.0.0.1:$port" --users "$USERS" \
    --duration-secs "$DURATION" --ramp-secs "$RAMP_SECS" --password "$PASSWORD" --dicom "$DICOM" \
    --upload-limit 1000 --out "$dir/summary.json" --samples "$dir/samples.csv" \
    --errors "$dir/errors.jsonl" >"$dir/generator.txt" 2>"$dir/generator.err"
  rc=$?
  set -e
  t_end=$(ms)
  [ -n "$sched" ] && { wait "$sched" 2>/dev/null || true; }
  [ -f "$dir/llm2.pid" ] && pids+=("$(cat "$dir/llm2.pid")")
  cat "$dir/generator.txt" | sed '$d'
  [ "$rc" = 0 ] || { echo "[$name] the load generator exited with $rc:"; tail -5 "$dir/generator.err"; } | tee -a "$report_txt"

  # Let queued analysis jobs finish (at most JOBS_WAIT_SECS), then check and count.
  local left w
  for w in $(seq 1 "${JOBS_WAIT_SECS:-180}"); do
    if [ -n "$url" ]; then
      left=$(psql -h 127.0.0.1 -U postgres -d "$pgdb" -tAc "SELECT COUNT(*) FROM jobs WHERE state IN ('queued','running')" 2>/dev/null || echo 0)
    else
      left=$(python3 -c 'import sqlite3,sys; print(sqlite3.connect("file:"+sys.argv[1]+"?mode=ro", uri=True).execute("SELECT COUNT(*) FROM jobs WHERE state IN (\x27queued\x27,\x27running\x27)").fetchone()[0])' "$data/medvision.db" 2>/dev/null || echo 0)
    fi
    [ "${left:-0}" = 0 ] && break
    sleep 1
  done
  echo "[$name] analysis queue drained after ${w}s (left: ${left:-0})" | tee -a "$report_txt"
  echo "$w ${left:-0}" >"$dir/drain.txt"
  kill -0 "$server_pid" 2>/dev/null || alive=0
  curl -fsS -m 5 "http://127.0.0.1:$port/healthz" >/dev/null 2>&1 || alive=0
  curl -sS -m 5 "http://127.0.0.1:$port/readyz" >"$dir/readyz_final.json" 2>/dev/null || true
  curl -sS -m 5 "http://127.0.0.1:$mport/metrics" >"$dir/metrics.txt" 2>/dev/null || true
  if [ -s "$dir/summary.json" ] && [ "$alive" = 1 ]; then
    timeout 300 "$gen" --url "http://127.0.0.1:$port" --password "$PASSWORD" \
      --count-only "$dir/summary.json" >"$dir/count_api.json" 2>/dev/null || echo '{}' >"$dir/count_api.json"
  else
    echo '{}' >"$dir/count_api.json"
  fi
  local q_inst q_jobs
  if [ -n "$url" ]; then
    q_inst=$(psql -h 127.0.0.1 -U postgres -d "$pgdb" -tAc "SELECT COUNT(*) FROM instances" 2>/dev/null || echo -1)
    q_jobs=$(psql -h 127.0.0.1 -U postgres -d "$pgdb" -tAc "SELECT state || '=' || COUNT(*) FROM jobs GROUP BY state ORDER BY state" 2>/dev/null | paste -sd, || true)
  else
    q_inst=$(python3 -c 'import sqlite3,sys; print(sqlite3.connect("file:"+sys.argv[1]+"?mode=ro", uri=True).execute("SELECT COUNT(*) FROM instances").fetchone()[0])' "$data/medvision.db" 2>/dev/null || echo -1)
    q_jobs=$(python3 -c 'import sqlite3,sys; print(",".join(f"{s}={n}" for s,n in sqlite3.connect("file:"+sys.argv[1]+"?mode=ro", uri=True).execute("SELECT state, COUNT(*) FROM jobs GROUP BY state ORDER BY state")))' "$data/medvision.db" 2>/dev/null || true)
  fi
  # Pollers first, so the timeline ends with the server still up.
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  pids=()
  sleep 1
  kill "$server_pid" 2>/dev/null || true
  wait "$server_pid" 2>/dev/null || true
  server_pid=""
  # Raw material: requests, errors, readiness polls, RSS, faults, logs.
  mkdir -p "$out/load-$stamp-$name"
  for f in summary.json samples.csv errors.jsonl readyz.log readyz_final.json rss.csv faults.jsonl \
           count_api.json metrics.txt generator.txt generator.err server.log pg_restart.log drain.txt llm_calls; do
    [ -f "$dir/$f" ] && cp "$dir/$f" "$out/load-$stamp-$name/"
  done

  python3 - "$dir" "$name" "$t0" "$t_end" "$server_start" "$alive" "$q_inst" "$q_jobs" \
    "$WARMUP_SECS" "$GRACE_SECS" "$RAMP_SECS" >"$dir/analysis.txt" <<'PY'
import csv, json, math, os, sys, collections
d, name, t0, t_end, srv0, alive, q_inst, q_jobs, warm, grace, ramp = sys.argv[1:12]
t0, t_end, srv0, warm, grace, ramp = int(t0), int(t_end), int(srv0), int(warm), int(grace), int(ramp)
def rel(t): return (t - t0) / 1000
def load_json(p, default):
    try: return json.load(open(p))
    except Exception: return default
summary = load_json(f"{d}/summary.json", {})
count_api = load_json(f"{d}/count_api.json", {})
faults = [json.loads(l) for l in open(f"{d}/faults.jsonl") if l.strip()]
windows = [(f["fault"], f["start_ms"] - 1000, f["end_ms"] + grace * 1000) for f in faults]
def phase(start, end):
    # The fault the request overlaps, its own window first, then the grace.
    for f in faults:
        if start <= f["end_ms"] and end >= f["start_ms"]: return f["fault"]
    for n, a, b in windows:
        if start <= b and end >= a: return n
    return "warmup" if start < t0 + ramp * 1000 else "normal"
def pct(v, q):
    if not v: return None
    v = sorted(v); i = max(1, min(len(v), math.ceil(q * len(v)))) - 1
    return round(v[i], 1)
rows = list(csv.DictReader(open(f"{d}/samples.csv"))) if summary else []
phases = collections.OrderedDict((p, {"requests": 0, "errors": 0, "errors_by_kind": collections.Counter(), "page_ms": []})
                                 for p in ["warmup", "normal"] + [w[0] for w in windows])
for r in rows:
    s = int(r["start_ms"]); lat = float(r["latency_ms"]); st = int(r["status"])
    p = phases[phase(s, s + int(lat))]
    p["requests"] += 1
    if not 200 <= st < 300:
        p["errors"] += 1; p["errors_by_kind"][f'{r["kind"]} {st}'] += 1
    if r["kind"].startswith("page_"): p["page_ms"].append(lat)
out_phases = {}
for n, p in phases.items():
    out_phases[n] = {"requests": p["requests"], "errors": p["errors"], "errors_by_kind": dict(p["errors_by_kind"]),
                     "page_p99_ms": pct(p["page_ms"], 0.99), "pages": len(p["page_ms"])}
outside = [n for n in out_phases if n in ("warmup", "normal")]
err_out = sum(out_phases[n]["errors"] for n in outside)
err_in = sum(p["errors"] for n, p in out_phases.items() if n not in outside)
req_out = sum(out_phases[n]["requests"] for n in outside)
page_out = [float(r["latency_ms"]) for r in rows if r["kind"].startswith("page_")
            and phase(int(r["start_ms"]), int(r["start_ms"]) + int(float(r["latency_ms"]))) in ("warmup", "normal")]
page_all = [float(r["latency_ms"]) for r in rows if r["kind"].startswith("page_")]
# Error samples outside the fault windows (server bugs unless explained).
errs = [json.loads(l) for l in open(f"{d}/errors.jsonl") if l.strip()] if summary else []
samples_out, seen = [], set()
for e in errs:
    if phase(e["start_ms"], e["end_ms"]) in ("warmup", "normal"):
        k = (e["kind"], e["status"], e["reason"][:80])
        if k not in seen and len(samples_out) < 10:
            seen.add(k); samples_out.append({"t_s": round(rel(e["start_ms"]), 1), **{x: e[x] for x in ("kind", "status", "reason")}})
samples_in, seen = [], set()
for e in errs:
    ph = phase(e["start_ms"], e["end_ms"])
    if ph not in ("warmup", "normal"):
        k = (ph, e["kind"], e["status"], e["reason"][:60])
        if k not in seen and len(samples_in) < 12:
            seen.add(k); samples_in.append({"fault": ph, "t_s": round(rel(e["start_ms"]), 1), **{x: e[x] for x in ("kind", "status", "reason")}})
# RSS (kB → MB).
rss = []
for l in open(f"{d}/rss.csv"):
    a, _, b = l.strip().partition(",")
    if b: rss.append((int(a), int(b) / 1024))
def at_or_after(t):
    return next((v for ts, v in rss if ts >= t), None)
during = [v for ts, v in rss if t0 <= ts <= t_end]
rss_out = {"start_mb": round(rss[0][1], 1) if rss else None,
           "after_warmup_mb": round(at_or_after(t0 + warm * 1000) or 0, 1),
           "end_mb": round(during[-1], 1) if during else None,
           "max_mb": round(max(during), 1) if during else None,
           "max_at_s": round(rel(max(((t, v) for t, v in rss if t0 <= t <= t_end), key=lambda x: x[1])[0]), 1) if during else None,
           # After the load (the count step signs every user in again).
           "max_after_load_mb": round(max((v for t, v in rss if t > t_end), default=0), 1)}
if rss_out["end_mb"] and rss_out["after_warmup_mb"]:
    rss_out["growth_mb"] = round(rss_out["end_mb"] - rss_out["after_warmup_mb"], 1)
    rss_out["growth_pct"] = round(100 * rss_out["growth_mb"] / rss_out["after_warmup_mb"], 1)
# Readiness timeline: changes of (status, failing checks).
polls_list = []
for l in open(f"{d}/readyz.log"):
    parts = l.strip().split(" ")
    if len(parts) < 3: continue
    t, code, secs = int(parts[0]), parts[-2], parts[-1]
    body = " ".join(parts[1:-2])
    try: lat = round(float(secs) * 1000, 1)
    except ValueError: lat = None
    try:
        j = json.loads(body); st = j.get("status", "?")
        failing = sorted(k for k, v in j.get("checks", {}).items() if v.get("status") != "ok")
    except Exception:
        st, failing = ("no answer" if code in ("000", "") else f"HTTP {code}"), []
    polls_list.append((t, st, code, failing, lat))
timeline, last = [], None
for t, st, code, failing, lat in polls_list:
    key = (st, tuple(failing))
    if key != last:
        timeline.append({"t_s": round(rel(t), 1), "status": st, "http": code, "failing": failing, "ms": lat}); last = key
polls = len(polls_list)
base = next((set(f) for t, st, c, f, l in polls_list if t >= t0), set())
readiness_faults = {}
for f in faults:
    a, b = f["start_ms"] - 1000, f["end_ms"] + grace * 1000
    inside = [p for p in polls_list if a <= p[0] <= b]
    rec = next((p for p in polls_list if p[0] >= f["end_ms"] and p[1] != "no answer" and set(p[3]) <= base), None)
    lats = [p[4] for p in inside if p[4] is not None]
    readiness_faults[f["fault"]] = {
        "statuses": sorted({p[1] + (" (" + ",".join(p[3]) + ")" if p[3] else "") for p in inside}),
        "readyz_max_ms": max(lats) if lats else None,
        "recovered_s_after_fault_end": round((rec[0] - f["end_ms"]) / 1000, 1) if rec else None}
accepted = summary.get("accepted_uploads")
try: stored_db = int(q_inst)
except ValueError: stored_db = -1
lost_db = max(0, (accepted or 0) - stored_db) if stored_db >= 0 else None
llm_times = [int(x) for x in open(f"{d}/llm_calls").read().split()] if os.path.exists(f"{d}/llm_calls") else []
llm = {"calls": len(llm_times)}
for f in faults:
    if f["fault"] == "llm_down":
        llm["calls_before_fault"] = sum(1 for t in llm_times if t < f["start_ms"])
        llm["calls_after_fault"] = sum(1 for t in llm_times if t >= f["end_ms"])
        after = [t for t in llm_times if t >= f["end_ms"]]
        llm["first_call_after_fault_s"] = round((after[0] - f["end_ms"]) / 1000, 1) if after else None
metrics = {}
if os.path.exists(f"{d}/metrics.txt"):
    for l in open(f"{d}/metrics.txt"):
        if l.startswith(("medvision_llm_requests_total", "medvision_breaker_state", "medvision_jobs_total")):
            k, _, v = l.strip().rpartition(" ")
            metrics[k] = float(v)
log_errors, log_samples = 0, []
for l in open(f"{d}/server.log", errors="replace"):
    if '"level":"ERROR"' in l or " ERROR " in l:
        log_errors += 1
        try:
            j = json.loads(l); msg = (j.get("fields", {}).get("message", "") + " " + str(j.get("fields", {}).get("error", ""))).strip()
            ts = j.get("timestamp", "")
        except Exception:
            msg, ts = l[:200], ""
        if len(log_samples) < 8 and all(msg[:50] != s["message"][:50] for s in log_samples):
            log_samples.append({"timestamp": ts, "message": msg[:300]})
res = {
    "backend": name, "alive_after": alive == "1", "faults": faults,
    "requests": summary.get("requests"), "requests_per_s": round(summary.get("requests_per_s", 0), 1),
    "errors_total": summary.get("errors"), "errors_outside_faults": err_out, "errors_in_fault_windows": err_in,
    "error_rate_outside_faults": round(err_out / req_out, 5) if req_out else None,
    "page_p99_ms_outside_faults": pct(page_out, 0.99), "page_p99_ms_all": pct(page_all, 0.99),
    "kinds": {k: {x: v.get(x) for x in ("count", "errors", "p50_ms", "p95_ms", "p99_ms", "max_ms", "by_status", "expected_429")}
              for k, v in summary.get("kinds", {}).items()},
    "phases": out_phases, "error_samples_outside_faults": samples_out, "error_samples_in_faults": samples_in,
    "rss": rss_out, "readiness_timeline": timeline, "readiness_polls": polls, "readiness_in_faults": readiness_faults,
    "uploads_201": summary.get("uploads_201"), "uploads_outcome_unknown": summary.get("uploads_outcome_unknown"),
    "accepted_uploads": accepted, "stored_instances_db": stored_db, "lost_uploads_db": lost_db,
    "count_via_api": count_api, "jobs": q_jobs, "llm": llm, "metrics": metrics,
    "queue_drain_s": (open(f"{d}/drain.txt").read().split() + [None])[0] if os.path.exists(f"{d}/drain.txt") else None,
    "server_log_errors": log_errors, "server_log_error_samples": log_samples,
}
json.dump(res, open(f"{d}/analysis.json", "w"), indent=1)
P = print
P(f"[{name}] requests {res['requests']} ({res['requests_per_s']}/s), errors outside fault windows {err_out}"
  f" (rate {res['error_rate_outside_faults']}), inside fault windows {err_in}")
P(f"[{name}] page p99 outside faults {res['page_p99_ms_outside_faults']} ms (all: {res['page_p99_ms_all']} ms)")
P(f"[{name}] {'kind':<12} {'count':>6} {'errors':>6} {'p50':>8} {'p95':>8} {'p99':>8} {'max':>8}  (ms)")
for k, v in res["kinds"].items():
    if v["count"]:
        P(f"[{name}] {k:<12} {v['count']:>6} {v['errors']:>6} {v['p50_ms']:>8.1f} {v['p95_ms']:>8.1f} {v['p99_ms']:>8.1f} {v['max_ms']:>8.1f}")
for n, p in out_phases.items():
    P(f"[{name}] phase {n:<17} requests {p['requests']:>6} errors {p['errors']:>5} page p99 {p['page_p99_ms']} ms  {p['errors_by_kind'] or ''}")
for f in faults:
    P(f"[{name}] fault {f['fault']}: {rel(f['start_ms']):.1f}s → {rel(f['end_ms']):.1f}s (rc {f['rc']})")
P(f"[{name}] readiness ({polls} polls): " + "; ".join(f"{t['t_s']}s {t['status']}" + (f" ({','.join(t['failing'])})" if t['failing'] else "") for t in timeline))
for n, r in readiness_faults.items():
    P(f"[{name}] readiness during {n}: {', '.join(r['statuses'])}; /readyz max {r['readyz_max_ms']} ms; back to the baseline {r['recovered_s_after_fault_end']} s after the fault ended")
P(f"[{name}] RSS start {rss_out['start_mb']} MB, after warm-up {rss_out['after_warmup_mb']} MB, end {rss_out['end_mb']} MB, max {rss_out['max_mb']} MB at {rss_out['max_at_s']} s, growth {rss_out.get('growth_mb')} MB ({rss_out.get('growth_pct')} %); max after the load {rss_out['max_after_load_mb']} MB")
P(f"[{name}] uploads answered 201: {res['uploads_201']}, accepted files {accepted}, stored instances (database) {stored_db}, "
  f"lost {lost_db}; via API: stored {count_api.get('stored')}, lost {count_api.get('lost')}; outcome unknown {res['uploads_outcome_unknown']}")
P(f"[{name}] jobs: {q_jobs}; LLM stand-in calls: {llm}; server alive afterwards: {res['alive_after']}; server log ERROR lines: {log_errors}")
for s in samples_out:
    P(f"[{name}]   error outside faults: t={s['t_s']}s {s['kind']} {s['status']}: {s['reason'][:200]}")
for s in samples_in:
    P(f"[{name}]   error in {s['fault']}: t={s['t_s']}s {s['kind']} {s['status']}: {s['reason'][:160]}")
for s in log_samples:
    P(f"[{name}]   server log: {s['timestamp']} {s['message'][:200]}")
if metrics: P(f"[{name}] metrics after the run: " + ", ".join(f"{k} {v:g}" for k, v in metrics.items()))
PY
  tee -a "$report_txt" <"$dir/analysis.txt"
  cp "$dir/analysis.json" "$out/load-$stamp-$name.json"
  data=""
}

status=0
for b in $BACKENDS; do
  case "$b" in
    sqlite) run_backend sqlite || status=1 ;;
    postgres)
      if pg_isready -q -h 127.0.0.1 -p 5432 2>/dev/null; then
        createdb -h 127.0.0.1 -U postgres "$pgdb"
        run_backend postgres "postgres://postgres@127.0.0.1:5432/$pgdb" || status=1
        dropdb -h 127.0.0.1 -U postgres --if-exists --force "$pgdb" || true
      else
        echo "[postgres] skipped: no server on 127.0.0.1:5432" | tee -a "$report_txt"
      fi ;;
    *) echo "unknown backend $b" >&2; status=2 ;;
  esac
done

if ! python3 - "$report_json" "$stamp" "$USERS" "$DURATION" "$FAULTS" "$machine" "$out" <<'PY' | tee -a "$report_txt"
import json, sys, os, glob
path, stamp, users, duration, faults, machine, out = sys.argv[1:8]
backends = {}
for p in sorted(glob.glob(f"{out}/load-{stamp}-*.json")):
    j = json.load(open(p)); backends[j["backend"]] = j
bad, notes = [], []
for n, b in backends.items():
    if not b["alive_after"]: bad.append(f"{n}: the server died")
    if b["lost_uploads_db"] is None or b["lost_uploads_db"] > 0: bad.append(f"{n}: accepted uploads lost ({b['accepted_uploads']} accepted, {b['stored_instances_db']} stored)")
    if (b["count_via_api"] or {}).get("lost"): bad.append(f"{n}: the API shows fewer instances than accepted")
    if b["errors_outside_faults"]: notes.append(f"{n}: goal missed: {b['errors_outside_faults']} errors outside fault windows (goal 0)")
    p99 = b["page_p99_ms_outside_faults"]
    if p99 is None or p99 >= 200: notes.append(f"{n}: goal missed: page p99 {p99} ms (goal < 200 ms)")
    g = b["rss"].get("growth_pct")
    if g is not None and g > 10: notes.append(f"{n}: RSS grew {g} % after warm-up")
json.dump({"stamp": stamp, "users": int(users), "duration_secs": int(duration), "faults": faults == "1",
           "machine": machine, "load_average_end": open("/proc/loadavg").read().split()[:3],
           "backends": backends, "failures": bad, "goal_notes": notes}, open(path, "w"), indent=1)
for x in notes: print("NOTE", x)
for x in bad: print("FAIL", x)
print("OK: server alive, no accepted upload lost" if not bad else "FAILED")
sys.exit(1 if bad else 0)
PY
then status=1; fi
echo "report: $report_txt, $report_json"
exit "$status"
