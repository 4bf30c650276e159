#!/usr/bin/env bash
# Forward latency per architecture: crates/inference (candle, release) against
# PyTorch eager on the same threads in the same run, batch 1 and 16, f32.
#   bench/inference.sh                 # REPS=3 BATCHES=1,16 THREADS=<cores>
#   BENCH_TORCH_PYTHON=/path/python    # a venv with torch, torchvision, monai
# Without a torch venv only the candle side runs (and says so).
set -euo pipefail
source "$(dirname "$0")/../scripts/env.sh"
cd "$ROOT"
THREADS=${THREADS:-$(nproc)}
export REPS=${REPS:-3} BATCHES=${BATCHES:-1,16}
# Same thread count for both: candle's gemm and rayon, PyTorch's intra-op pool.
export RAYON_NUM_THREADS=$THREADS OMP_NUM_THREADS=$THREADS MKL_NUM_THREADS=$THREADS
log "candle (release, $THREADS threads)"
cargo build --release -p inference --example bench_inference >&2
candle=$("$CARGO_TARGET_DIR/release/examples/bench_inference")
echo "$candle"
py=${BENCH_TORCH_PYTHON:-$HOME/.cache/mv/venv-torch/bin/python}
if [ ! -x "$py" ] || ! "$py" -c "import torch, torchvision, monai" 2>/dev/null; then
  echo "PyTorch comparison skipped: no python with torch, torchvision and monai at $py (set BENCH_TORCH_PYTHON)" >&2
  exit 0
fi
log "PyTorch $("$py" -c 'import torch; print(torch.__version__)') eager ($THREADS threads)"
torch=$(TORCH_NUM_THREADS=$THREADS "$py" -c "import torch; torch.set_num_threads($THREADS); exec(open('bench/inference_torch.py').read())" 2>/dev/null)
echo "$torch"
log "ratio (candle ms / PyTorch ms; below 1 means candle is faster)"
python3 - "$candle" "$torch" <<'PY'
import json, sys
c = {(d["arch"], d["batch"]): d for d in map(json.loads, sys.argv[1].splitlines())}
t = {(d["arch"], d["batch"]): d for d in map(json.loads, sys.argv[2].splitlines())}
print(f"{'arch':16} {'batch':>5} {'candle ms':>10} {'torch ms':>10} {'ratio':>6}")
for k in sorted(c):
    if k in t:
        print(f"{k[0]:16} {k[1]:5} {c[k]['ms_per_batch']:10.1f} {t[k]['ms_per_batch']:10.1f} {c[k]['ms_per_batch'] / t[k]['ms_per_batch']:6.2f}")
PY
