#!/usr/bin/env bash
# The CUDA path in a few minutes, on a machine with an NVIDIA GPU and the project installed
# with a CUDA build of torch:
#
#     bash bench/gpu_check.sh [OUT_DIR] [EPOCHS]
#
# 1. trains the `best` HMT recipe for EPOCHS (default 3) epochs on the GPU (`--precision
#    auto` is bf16 autocast on a GPU with bf16), evaluates it;
# 2. explains and scores it on the GPU (Grad-CAM, Grad-CAM++, Ablation-CAM; Table I and ROAD
#    on 64 tiles), then the same on the CPU from the same weights;
# 3. prints the largest map difference and the score differences between the two devices.
# Nothing here is timed against a bound: it shows whether the device path runs and agrees.
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${1:-runs/gpu-check}
EPOCHS=${2:-3}
DATA=../shared/data/hmt
PY=${PYTHON:-.venv/bin/python}
CNNLENS=("$PY" -m cnnlens)

"$PY" - <<'EOF'
import sys
import torch
if not torch.cuda.is_available():
    sys.exit(f"no CUDA device visible to torch {torch.__version__}: this check needs a GPU")
print("device:", torch.cuda.get_device_name(0), "torch", torch.__version__,
      "bf16:", torch.cuda.is_bf16_supported())
EOF

rm -rf "$OUT"
"${CNNLENS[@]}" train --task hmt --data-dir "$DATA" --recipe best --epochs "$EPOCHS" \
    --device cuda --out "$OUT/gpu"
"${CNNLENS[@]}" evaluate "$OUT/gpu" --device cuda
cp -r "$OUT/gpu" "$OUT/cpu"
for dev in cuda cpu; do
    run=$OUT/$([ "$dev" = cuda ] && echo gpu || echo cpu)
    "${CNNLENS[@]}" explain "$run" --device "$dev" --limit 64 \
        --methods gradcam gradcampp ablationcam
    "${CNNLENS[@]}" faithfulness "$run" --device "$dev" --limit 64 \
        --metrics drop_increase road --baseline road --no-sanity
done

"$PY" - "$OUT" <<'EOF'
import json
import sys
from pathlib import Path

import numpy as np

out = Path(sys.argv[1])
for method in ("gradcam", "gradcampp", "ablationcam"):
    g = np.load(out / "gpu" / "cams" / f"{method}.npz")["maps"]
    c = np.load(out / "cpu" / "cams" / f"{method}.npz")["maps"]
    print(f"{method:12s} largest |GPU - CPU| map difference {np.abs(g - c).max():.2e}")
res = {d: json.loads((out / d / "faithfulness" / "results.json").read_text())
       for d in ("gpu", "cpu")}
for label, vals in res["gpu"]["per_sample"]["values"].items():
    for key, v in vals.items():
        a = np.asarray(v, dtype=float)
        b = np.asarray(res["cpu"]["per_sample"]["values"][label][key], dtype=float)
        print(f"{label:12s} {key:18s} largest |GPU - CPU| {np.nanmax(np.abs(a - b)):.2e}")
EOF
