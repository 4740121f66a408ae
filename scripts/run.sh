#!/usr/bin/env bash
# Set everything up, then run the main job on built-in data (MNIST-1D, study recipe).
# Extra arguments go to `cnnlens run`, e.g. scripts/run.sh --epochs 5 --out runs/quick
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec .venv/bin/cnnlens run "$@"
