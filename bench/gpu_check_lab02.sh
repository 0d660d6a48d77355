#!/usr/bin/env bash
# Lab 02's train.py on this machine's GPUs (CUDA, NCCL): see bench/gpu_check_lab02.py.
#   bash bench/gpu_check_lab02.sh            # as a SageMaker job on the offline backend
#   bash bench/gpu_check_lab02.sh --direct   # torchrun alone (needs only torch with CUDA)
# PYTHON overrides the interpreter (default: the repository's .venv).
set -euo pipefail
cd "$(dirname "$0")/.."
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || true
exec "${PYTHON:-.venv/bin/python}" -m bench.gpu_check_lab02 "$@"
