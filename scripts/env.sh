# Shared by scripts/run.sh and scripts/test.sh (sourced, not run).
# A persistent target directory outside the checkout keeps rebuilds short;
# CI and developers reuse it when it is set or already there.
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/medvision/target}"
export PATH="$HOME/.cargo/bin:$PATH"
export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-never}"
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
export ROOT
log() { printf '\n==> %s\n' "$*" >&2; }
