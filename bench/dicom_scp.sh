#!/usr/bin/env bash
# Instances/s received over DICOM from dcmtk's storescu: MedVision's SCP
# (release build, SQLite, de-identification on) beside Orthanc (Debian's
# package) receiving the same series on the same machine in the same run.
#   bench/dicom_scp.sh            # N=500 slices of 512x512 CT, RUNS=3
# Prints, per system, the storescu wall time (instances acknowledged per
# second) and, for MedVision, the time until every instance is also
# de-identified, stored and indexed in its case.
set -euo pipefail
source "$(dirname "$0")/../scripts/env.sh"
cd "$ROOT"
N=${N:-500}
RUNS=${RUNS:-3}
export DEBIAN_FRONTEND=noninteractive
command -v storescu >/dev/null || { apt-get update -qq; apt-get install -y -qq dcmtk >/dev/null; }
command -v Orthanc >/dev/null || { apt-get update -qq; apt-get install -y -qq orthanc >/dev/null; }
cargo build --release -p server --bin medvision >&2
cargo build --release -p interop --example write_ct_series >&2
mv="$CARGO_TARGET_DIR/release/medvision"
work=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$work"' EXIT
"$CARGO_TARGET_DIR/release/examples/write_ct_series" "$work/series" "$N" >&2
bytes=$(du -sb "$work/series" | cut -f1)

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_echo() { for _ in $(seq 1 200); do echoscu -aet STORESCU -aec "$1" 127.0.0.1 "$2" 2>/dev/null && return 0; sleep 0.1; done; echo "no echo from $1" >&2; return 1; }
now() { date +%s.%N; }
rate() { python3 -c "print(f'{$N/($2-$1):.1f}')"; }

results=()
for run in $(seq 1 "$RUNS"); do
  # ---- MedVision
  export MEDVISION_DATA_DIR="$work/mv$run" MEDVISION_BOOTSTRAP_DEMO=false MEDVISION_EVIDENCE=false \
    MEDVISION_SCP_QUIET_SECS=1 MEDVISION_LOG_FORMAT=json RUST_LOG=warn
  unset DATABASE_URL
  "$mv" org add "Bench" >/dev/null
  "$mv" user add --email bench@bench.example --password "bench password 1234" --role admin --org Bench >/dev/null
  "$mv" dicom add-node --org Bench --ae-title STORESCU --kind source --owner bench@bench.example >/dev/null
  port=$(free_port)
  "$mv" scp --port "$port" >/dev/null 2>&1 &
  pid=$!
  wait_echo MEDVISION "$port"
  t0=$(now)
  storescu -aet STORESCU -aec MEDVISION 127.0.0.1 "$port" "$work/series"/*.dcm
  t1=$(now)
  db="$MEDVISION_DATA_DIR/medvision.db"
  until [ "$(python3 -c "import sqlite3,sys; print(sqlite3.connect(sys.argv[1]).execute('select count(*) from instances').fetchone()[0])" "$db" 2>/dev/null || echo 0)" -ge "$N" ]; do sleep 0.05; done
  t2=$(now)
  kill "$pid"; wait "$pid" 2>/dev/null || true
  # ---- Orthanc
  oport=$(free_port); hport=$(free_port)
  mkdir -p "$work/orthanc$run"
  cat > "$work/orthanc$run.json" <<JSON
{ "Name": "bench", "StorageDirectory": "$work/orthanc$run", "IndexDirectory": "$work/orthanc$run",
  "DicomAet": "ORTHANC", "DicomPort": $oport, "HttpPort": $hport, "RemoteAccessAllowed": false,
  "AuthenticationEnabled": false, "DicomCheckCalledAet": false, "StorageCompression": false,
  "Plugins": [] }
JSON
  Orthanc "$work/orthanc$run.json" >/dev/null 2>&1 &
  opid=$!
  wait_echo ORTHANC "$oport"
  o0=$(now)
  storescu -aet STORESCU -aec ORTHANC 127.0.0.1 "$oport" "$work/series"/*.dcm
  o1=$(now)
  kill "$opid"; wait "$opid" 2>/dev/null || true
  results+=("$(rate "$t0" "$t1") $(rate "$t0" "$t2") $(rate "$o0" "$o1")")
  echo "run $run: MedVision acknowledged $(rate "$t0" "$t1")/s, stored+de-identified $(rate "$t0" "$t2")/s; Orthanc $(rate "$o0" "$o1")/s" >&2
done
printf '%s\n' "${results[@]}" | python3 -c "
import sys, statistics as st
rows=[list(map(float,l.split())) for l in sys.stdin if l.strip()]
mv_ack=st.median(r[0] for r in rows); mv_all=st.median(r[1] for r in rows); o=st.median(r[2] for r in rows)
print(f'instances: $N ({$bytes/1e6:.0f} MB), runs: {len(rows)} (medians)')
print(f'MedVision SCP, acknowledged:                  {mv_ack:8.1f} instances/s  ({mv_ack/o:.2f}x Orthanc)')
print(f'MedVision, acknowledged + de-identified + indexed: {mv_all:8.1f} instances/s  ({mv_all/o:.2f}x Orthanc)')
print(f'Orthanc (Debian package):                     {o:8.1f} instances/s')
"
