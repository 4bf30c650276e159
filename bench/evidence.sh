#!/usr/bin/env bash
# Evidence retrieval benchmark: embedding throughput (all-MiniLM-L6-v2 in
# candle, batch 32, CPU) and top-10 hybrid query latency p50/p99 plus
# recall@10 against exact search over POINTS synthetic chunks in Qdrant Edge.
#   bench/evidence.sh                       # POINTS=100000 QUERIES=300 EMBED=512
#   PROFILE=release bench/evidence.sh       # full release build (slower to build)
#   BENCH_ST_PYTHON=/path/python            # also time sentence-transformers (torch)
# The default profile is dev, where the workspace builds candle and qdrant-edge
# at opt-level 3 (root Cargo.toml), so the hot paths are optimised without a
# second full build of the dependency tree.
set -euo pipefail
source "$(dirname "$0")/../scripts/env.sh"
cd "$ROOT"
POINTS=${POINTS:-100000} QUERIES=${QUERIES:-300} EMBED=${EMBED:-512}
PROFILE=${PROFILE:-dev}
"$ROOT/scripts/fetch-embedder.sh" || echo "no embedding model: the embedding part will be skipped" >&2
mkdir -p bench/results
out="bench/results/evidence-$(date -u +%Y%m%dT%H%M%SZ).txt"
{
  echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), $(free -g | awk '/Mem:/ {print $2}') GiB; load $(cut -d' ' -f1-3 /proc/loadavg)"
  echo "command: PROFILE=$PROFILE POINTS=$POINTS QUERIES=$QUERIES EMBED=$EMBED bench/evidence.sh"
  log "building (profile $PROFILE)" >&2
  if [ "$PROFILE" = release ]; then
    cargo build --release -p evidence --example evidence_bench >&2
    bin="$CARGO_TARGET_DIR/release/examples/evidence_bench"
  else
    cargo build -p evidence --example evidence_bench >&2
    bin="$CARGO_TARGET_DIR/debug/examples/evidence_bench"
  fi
  "$bin" --points "$POINTS" --queries "$QUERIES" --embed "$EMBED"
  py=${BENCH_ST_PYTHON:-$HOME/.cache/mv/venv-st/bin/python}
  if [ -x "$py" ] && "$py" -c "import sentence_transformers" 2>/dev/null; then
    "$py" - "$EMBED" <<'PY'
import os, random, sys, time, torch
from pathlib import Path
from sentence_transformers import SentenceTransformer
n = int(sys.argv[1])
d = os.environ.get("MEDVISION_EMBEDDER_DIR") or str(Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "medvision/models/all-minilm-l6-v2")
torch.set_num_threads(os.cpu_count())
words = [w for w in open("corpus/guidelines/fleischner-2017.md").read().split() if all(c.isalnum() or c in ",.;:()-" for c in w)]
rng = random.Random(7)
texts = []
for _ in range(n):
    k = rng.randrange(40, 120); s = rng.randrange(0, max(1, len(words) - k))
    texts.append(" ".join(words[s:s + k]))
m = SentenceTransformer(d, device="cpu")
m.encode(texts[:32], batch_size=32)
t = time.perf_counter(); m.encode(texts, batch_size=32, normalize_embeddings=True); dt = time.perf_counter() - t
print(f"sentence-transformers {__import__('sentence_transformers').__version__} / torch {torch.__version__}: {n} chunks in {dt:.2f} s: {n / dt:.1f} chunks/s on {torch.get_num_threads()} threads")
PY
  else
    echo "sentence-transformers comparison skipped: no python with it at $py (set BENCH_ST_PYTHON)"
  fi
} | tee "$out"
echo "report: $out" >&2
