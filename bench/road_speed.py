"""Where ROAD's time goes: one imputation per removal percentage, and the forward pass.

For a 224 px tile (VGG-7 input) and a 40-sample MNIST-1D signal: the sparse solve of noisy
linear imputation at each percentage (CAM-like masks: uniform noise on a coarse grid,
upsampled, top p % removed), SuperLU with the nested-dissection ordering cnnlens uses vs
SuperLU's default COLAMD ordering (scipy's ``spsolve``), and the VGG-7's no-grad forward
throughput. Wall and CPU seconds are printed with the load average, since a shared machine
slows both. The projection multiplies out 3 methods × 496 tiles × 5 percentages × 2.

    .venv/bin/python bench/road_speed.py [--tiles 4] [--colamd]
"""

from __future__ import annotations

import argparse
import os
import sys
import time

import numpy as np
import torch
import torch.nn.functional as F


def _masks(n: int, size: int, frac: float, cells: int = 56) -> torch.Tensor:
    g = torch.Generator().manual_seed(0)
    m = F.interpolate(torch.rand(n, 1, cells, cells, generator=g), size=(size, size),
                      mode="bilinear", align_corners=False)[:, 0].reshape(n, -1)
    k = round(frac * size * size)
    order = torch.argsort(-m, dim=1)
    rem = torch.zeros_like(m, dtype=torch.bool)
    rem.scatter_(1, order[:, :k], True)
    return rem.reshape(n, size, size)


def _timed(fn: object) -> tuple[float, float]:
    w, c = time.perf_counter(), time.process_time()
    fn()  # type: ignore[operator]
    return time.perf_counter() - w, time.process_time() - c


def main(argv: list[str] | None = None) -> int:
    from cnnlens.faithfulness import imputation as imp
    from cnnlens.models import build_model

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--tiles", type=int, default=4, help="224 px tiles per percentage")
    p.add_argument("--colamd", action="store_true", help="also time scipy's default ordering")
    args = p.parse_args(argv)
    pcts = (10, 30, 50, 70, 90)
    print(f"load average before: {', '.join(f'{v:.1f}' for v in os.getloadavg())}; "
          f"torch {torch.__version__}, {torch.get_num_threads()} threads")
    print("\n| input | removed | cnnlens solve s/sample (wall / CPU) | COLAMD spsolve s/sample |")
    print("|---|---|---|---|")
    x = torch.rand(args.tiles, 3, 224, 224, dtype=torch.float64)
    per_tile = 0.0
    for q in pcts:
        rem = _masks(args.tiles, 224, q / 100)
        w, c = _timed(lambda rem=rem: imp.impute(x, rem, noise=0.0))
        per_tile += 2 * w / args.tiles  # MoRF and LeRF remove the same count
        col = "–"
        if args.colamd:
            from scipy.sparse.linalg import spsolve

            orig = imp.splu

            def colamd(a: object, **_: object) -> object:
                class Solver:
                    def solve(self, b: np.ndarray) -> np.ndarray:
                        return np.asarray(spsolve(a, b)).reshape(b.shape)
                return Solver()

            imp.splu = colamd  # type: ignore[assignment]
            try:
                cw, _ = _timed(lambda rem=rem: imp.impute(x, rem, noise=0.0))
            finally:
                imp.splu = orig
            col = f"{cw / args.tiles:.3f}"
        print(f"| 3×224×224 | {q} % | {w / args.tiles:.3f} / {c / args.tiles:.3f} | {col} |")
    sig = torch.rand(1000, 1, 40, dtype=torch.float64)
    for q in (10, 50, 90):
        rem = torch.rand(1000, 40).argsort(1).argsort(1) < round(0.4 * q)  # q % of 40
        w, c = _timed(lambda rem=rem: imp.impute(sig, rem, noise=0.01))
        print(f"| 1×40 (×1000) | {q} % | {w / 1000:.6f} / {c / 1000:.6f} | – |")
    model = build_model("hmt-vgg7").eval()
    xb = torch.rand(24, 3, 224, 224)
    with torch.no_grad():
        model(xb[:2])
        w, c = _timed(lambda: [model(xb[i : i + 6]) for i in range(0, 24, 6)])
    fwd = w / 24
    per_tile += 10 * fwd
    print(f"\nVGG-7 forward (no grad, chunks of 6): {24 / w:.1f} tiles/s wall, "
          f"{24 / c:.1f} tiles/s per CPU-second")
    print(f"ROAD per tile and map (5 percentages, MoRF + LeRF): {per_tile:.2f} s → projected "
          f"3 methods × 496 tiles: {3 * 496 * per_tile / 60:.1f} min (random map: +1/3)")
    print(f"load average after: {', '.join(f'{v:.1f}' for v in os.getloadavg())}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
