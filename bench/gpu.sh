#!/usr/bin/env bash
# GPU benchmark, sized for under 8 minutes on one H100:
#   1. fmnist-standard end to end on cuda with stage timings (seed 0; finetune, retrain, original; 2 shadows,
#      not the suite's 32: those alone are ~128 models)
#   2. shadow-style training, vmap-batched vs sequential, cnn-small and mlp on fmnist-standard halves.
# Usage: bench/gpu.sh            (env: PYTHON, SEEDS, METHODS, SHADOWS, K, EPOCHS to change the sizes)
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-.venv/bin/python}
[ -x "$PYTHON" ] || PYTHON=python
SEEDS=${SEEDS:-0}
METHODS=${METHODS:-finetune,retrain,original}
K=${K:-8,16}
EPOCHS=${EPOCHS:-2}

if ! "$PYTHON" -c 'import sys, torch; sys.exit(0 if torch.cuda.is_available() else 1)' 2>/dev/null; then
    echo "bench/gpu.sh: no CUDA device visible to torch ($("$PYTHON" -c 'import torch; print(torch.__version__)' 2>&1))." >&2
    echo "This benchmark needs an NVIDIA GPU; run bench/ensemble.py or bench/quick_suite.py on a CPU instead." >&2
    exit 2
fi
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || true
start=$(date +%s)
echo "== 1/2 fmnist-standard end to end (stage timings)"
timeout 390 "$PYTHON" bench/gpu_stages.py --suite fmnist-standard --device cuda --seeds "$SEEDS" --methods "$METHODS" \
    --shadows "${SHADOWS:-2}"
echo "== 2/2 shadow training: batched vs sequential"
timeout 90 "$PYTHON" bench/ensemble.py --suite fmnist-standard --device cuda --k "$K" --archs cnn-small,mlp \
    --epochs "$EPOCHS"
echo "gpu.sh: total $(( $(date +%s) - start )) s"
