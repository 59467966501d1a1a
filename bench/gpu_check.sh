#!/usr/bin/env bash
# The GPU check: one command, one GPU, no network, under 8 minutes (bench/gpu_check.py says what it does).
#   bench/gpu_check.sh              device auto -> CUDA/bf16; generation, scoring, DPO steps on GPU vs CPU; a server
#   bench/gpu_check.sh --dry-run    resolve the device and print the plan; load nothing
# Without a CUDA GPU it says so and exits 0. Extra flags go to bench/gpu_check.py (--help lists them).
set -euo pipefail
cd "$(dirname "$0")/.."
PY="${PYTHON:-.venv/bin/python}"
if [ ! -x "$PY" ]; then
    PY="$(command -v python3)"
fi
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 HF_DATASETS_OFFLINE=1 TQDM_DISABLE=1 TOKENIZERS_PARALLELISM=false
# The driver keeps to a 450 s budget; this is the hard stop at 8 minutes (SIGTERM, then SIGKILL 10 s later).
exec timeout --kill-after=10 480 "$PY" -m bench.gpu_check "$@"
