#!/usr/bin/env bash
# DICOM decode throughput: crates/imaging (release, one thread) against
# pydicom 3.0.2 (+ pylibjpeg codecs) on the same files in the same run.
#   bench/imaging_decode.sh              # SLICES=500 J2K_SLICES=100 ROUNDS=5
# Sets: pydicom's test corpus (every file both decode), its JPEG 2000 files,
# and a synthetic CT series of SLICES 512×512 signed 16-bit slices,
# uncompressed and RLE (plus J2K_SLICES as JPEG 2000 lossless), generated
# once into $HOME/.cache/medvision/bench. MB/s counts input file bytes.
# BENCH_PYTHON=/path/to/python uses an existing venv with pydicom.
set -euo pipefail
source "$(dirname "$0")/../scripts/env.sh"
cd "$ROOT"
SLICES=${SLICES:-500}
J2K_SLICES=${J2K_SLICES:-100}
ROUNDS=${ROUNDS:-5}
# Each set runs REPEAT times per side, alternating, and the fastest run of
# each side counts: on a shared machine the other load only ever slows a
# run down, so the minimum is the closest to the decoder's own speed.
REPEAT=${REPEAT:-3}

py=${BENCH_PYTHON:-}
if [ -z "$py" ]; then
  venv="$HOME/.cache/medvision/bench-venv"
  if [ ! -x "$venv/bin/python" ]; then
    log "creating the pydicom venv for the comparison"
    python3 -m venv "$venv"
    "$venv/bin/pip" install --quiet pydicom==3.0.2 numpy pylibjpeg==2.1.0 \
      pylibjpeg-libjpeg==2.5.0 pylibjpeg-openjpeg==2.6.0 pylibjpeg-rle==2.2.0
  fi
  py="$venv/bin/python"
fi

scripts/fixtures.sh
fixtures="${MEDVISION_FIXTURES:-$HOME/.cache/medvision/fixtures}"
corpus="$fixtures/pydicom-3.0.2/pydicom/data/test_files"
data="$HOME/.cache/medvision/bench/ct-$SLICES-$J2K_SLICES"
if [ ! -f "$data/.complete" ]; then
  log "writing the synthetic CT series ($SLICES slices) to $data"
  "$py" bench/imaging_make_ct_series.py "$data" "$SLICES" "$J2K_SLICES"
  touch "$data/.complete"
fi

cargo build --release --quiet -p imaging --example decode_bench
bin="$CARGO_TARGET_DIR/release/examples/decode_bench"

out="$ROOT/bench/results"
mkdir -p "$out"
lists=$(mktemp -d)
trap 'rm -rf "$lists"' EXIT
# The corpus files both sides decode: pydicom's list from the committed
# expectations, less the one we refuse (12-bit JPEG Extended).
"$py" - "$corpus" "$lists" <<'PY'
import json, sys
corpus, lists = sys.argv[1], sys.argv[2]
files = json.load(open("crates/imaging/tests/fixtures/pydicom_expected.json"))["files"]
ok = {k: v for k, v in files.items() if v["status"] == "decodes" and k != "JPGExtended.dcm"}
j2k = [k for k, v in ok.items() if v["transfer_syntax"] in ("1.2.840.10008.1.2.4.90", "1.2.840.10008.1.2.4.91")]
open(f"{lists}/corpus", "w").write("".join(f"{corpus}/{k}\n" for k in ok))
open(f"{lists}/corpus-j2k", "w").write("".join(f"{corpus}/{k}\n" for k in j2k))
PY
for kind in raw rle j2k; do
  find "$data/$kind" -name '*.dcm' | sort >"$lists/ct-$kind"
done

report="$out/imaging_decode-$(date +%Y%m%d-%H%M%S).md"
{
  echo "machine: $(nproc) cores, $(free -g | awk '/Mem:/ {print $2}') GiB, $(lscpu | sed -n 's/^Model name: *//p')"
  echo "pydicom: $("$py" -c 'import pydicom; print(pydicom.__version__)'), one thread each; release build; best of $REPEAT runs per side; load average before: $(cut -d' ' -f1-3 /proc/loadavg)"
  echo
  echo "| set | files | MB | imaging files/s | imaging MB/s | pydicom files/s | pydicom MB/s | ratio |"
  echo "|---|---|---|---|---|---|---|---|"
} | tee "$report"

row() {
  local name=$1 list=$2 rounds=$3 ours="" theirs="" i
  for ((i = 0; i < REPEAT; i++)); do
    ours+="$("$bin" "$rounds" "$list")"$'\n'
    theirs+="$("$py" bench/imaging_decode_pydicom.py "$rounds" "$list")"$'\n'
  done
  "$py" - "$name" "$ours" "$theirs" <<'PY' | tee -a "$report"
import json, sys
def fastest(runs):
    return min((json.loads(l) for l in runs.splitlines() if l.strip()), key=lambda r: r["seconds"])
name, a, b = sys.argv[1], fastest(sys.argv[2]), fastest(sys.argv[3])
def rate(r): return r["files"] / r["seconds"], r["in_bytes"] / 1e6 / r["seconds"]
(af, am), (bf, bm) = rate(a), rate(b)
fail = f" ({a['failures']}/{b['failures']} failed)" if a["failures"] or b["failures"] else ""
print(f"| {name}{fail} | {a['files']} | {a['in_bytes']/1e6:.1f} | {af:.1f} | {am:.1f} | {bf:.1f} | {bm:.1f} | {af/bf:.2f}× |")
PY
}

row "pydicom corpus (${ROUNDS} rounds)" "$lists/corpus" "$ROUNDS"
row "corpus JPEG 2000 ($((ROUNDS * 4)) rounds)" "$lists/corpus-j2k" "$((ROUNDS * 4))"
row "CT ${SLICES}×512², uncompressed" "$lists/ct-raw" 1
row "CT ${SLICES}×512², RLE" "$lists/ct-rle" 1
row "CT ${J2K_SLICES}×512², JPEG 2000 lossless" "$lists/ct-j2k" 1
echo "report: $report"
