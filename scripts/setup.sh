#!/usr/bin/env bash
# Make .venv and install cnnlens into it. Usage: scripts/setup.sh [test]
# With "test", also installs the test and benchmark tools (reference CAM libraries included)
# and, when run as root on Debian, headless Chromium for the report's browser test.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$PY" -m venv .venv
export PIP_DISABLE_PIP_VERSION_CHECK=1
pip() { .venv/bin/python -m pip "$@"; }
# torch first, pinned: on this project's machines 2.13.0 is a local CPU wheel; elsewhere pip
# fetches the matching build for the platform.
.venv/bin/python -c "import torch" 2>/dev/null || pip install -q "torch==2.13.0"
if [ "${1:-}" = "test" ]; then
    pip install -q -e ".[test]"
    # pytorch-grad-cam's CAM classes never import torchvision; installing it without deps
    # avoids pulling a multi-GB CUDA torchvision (tests give it a stand-in module).
    pip install -q --no-deps "grad-cam==1.5.7"
    # Quantus 0.6.0 requires opencv-python, whose cv2 would overwrite the headless one the
    # test extras install; its metrics need only the extras' pandas, scikit-image, cachetools.
    pip install -q --no-deps "quantus==0.6.0"
    # ONNX import (the onnx extra): onnx2torch 1.5.15 declares torchvision, used only by its
    # NonMaxSuppression/RoiAlign converters; --no-deps keeps the multi-GB build out
    # (cnnlens.models.onnx_import gives its import a stand-in). Its other deps: onnx, numpy.
    pip install -q "onnx>=1.15"
    pip install -q --no-deps "onnx2torch==1.5.15"
    bash scripts/install_browser.sh
else
    pip install -q -e .
fi
