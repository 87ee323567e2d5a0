#!/usr/bin/env bash
# The GPU benchmark in one call of at most 8 minutes on one H100/H200 (bench/gpu.py says what it measures).
#   bench/gpu.sh            on a GPU machine: prints every table, with the card's name
#   bench/gpu.sh --dry-run  toy sizes on a CPU: checks the code paths (CI runs this)
# Without a GPU and without --dry-run it stops at once with a message.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-.venv/bin/python}
[ -x "$PYTHON" ] || PYTHON=python3
if [ "${1:-}" != "--dry-run" ] && ! "$PYTHON" -c 'import sys, torch; sys.exit(0 if torch.cuda.is_available() else 1)'; then
    echo "bench/gpu.sh: no CUDA device visible to torch: this benchmark needs an NVIDIA GPU (or --dry-run)." >&2
    exit 2
fi
command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || true
start=$(date +%s)
timeout 470 "$PYTHON" bench/gpu.py "$@"
echo "gpu.sh: total $(( $(date +%s) - start )) s"
