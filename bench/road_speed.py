"""Where ROAD's time goes: the imputation solves and the forward passes.

For 224 px tiles (the VGG-7's input) with CAM-like masks (coarse uniform noise on a 7, 28 or
56 cell grid, upsampled bilinearly, top p % removed), at each removal percentage: the exact
sparse factorisation (SuperLU, nested-dissection ordering; ``solver="direct"``) against
multigrid-preconditioned CG (``solver="multigrid"``, what images get from 2048 removed
pixels on), both on one thread, CG's iterations and its largest error against the exact
solve at ROAD's default noise (sigma 0.01, tolerance 1e-4); then ``impute`` as ROAD calls it
(torch's threads, noise included), the VGG-7's no-grad forward throughput as faithfulness
scoring runs it, and the projection for 3 methods × 496 HMT tiles × 5 percentages × MoRF and
LeRF. MNIST-1D signals (1000 of length 40) are solved by SuperLU in block-diagonal groups.
Wall and CPU seconds are printed with the load average, since a shared machine slows both.

    .venv/bin/python bench/road_speed.py [--tiles 4]
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Callable

import numpy as np
import torch
import torch.nn.functional as F

from _machine import machine_line

PERCENTAGES = (10, 30, 50, 70, 90)
CELLS = (56, 28, 7)


def _masks(n: int, size: int, frac: float, cells: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(cells)
    m = F.interpolate(torch.rand(n, 1, cells, cells, generator=g), size=(size, size),
                      mode="bilinear", align_corners=False)[:, 0].reshape(n, -1)
    k = round(frac * size * size)
    order = torch.argsort(-m, dim=1)
    rem = torch.zeros_like(m, dtype=torch.bool)
    rem.scatter_(1, order[:, :k], True)
    return rem.reshape(n, size, size)


def _timed(fn: Callable[[], object]) -> tuple[float, float, object]:
    w, c = time.perf_counter(), time.process_time()
    out = fn()
    return time.perf_counter() - w, time.process_time() - c, out


def _load() -> str:
    return ", ".join(f"{v:.1f}" for v in os.getloadavg())


def main(argv: list[str] | None = None) -> int:
    from cnnlens.device import fast_forward, inference_rows
    from cnnlens.faithfulness import imputation as imp
    from cnnlens.faithfulness import multigrid as mg
    from cnnlens.models import build_model

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--tiles", type=int, default=4, help="224 px tiles per percentage and grid")
    args = p.parse_args(argv)
    print(machine_line())  # every figure names the CPU it was measured on
    threads = torch.get_num_threads()
    print(f"load average before: {_load()}; torch {torch.__version__}, {threads} threads")
    x = torch.rand(args.tiles, 3, 224, 224, dtype=torch.float64) * 4 - 2
    tol = imp.tolerance(imp.NOISE)
    mg.solve(x[0].numpy(), np.ones((224, 224), dtype=bool) & (np.arange(224) > 3)[:, None])
    print(f"\nOne thread, per 224 px tile (mean over {len(CELLS)} mask grids × {args.tiles} "
          f"tiles); multigrid at tol {tol:g}\n")
    print("| removed | SuperLU s (CPU) | multigrid s (CPU) | speed-up | CG iterations | "
          "max error |")
    print("|---|---|---|---|---|---|")
    torch.set_num_threads(1)
    per_pct: dict[int, float] = {}
    for q in PERCENTAGES:
        d_cpu = m_cpu = err = 0.0
        its: list[int] = []
        for cells in CELLS:
            rem = _masks(args.tiles, 224, q / 100, cells)
            _, c1, ref = _timed(lambda rem=rem: imp.impute(x, rem, noise=0.0, solver="direct"))
            d_cpu += c1
            for i in range(args.tiles):
                r = rem[i].numpy()
                _, c2, (vals, it) = _timed(  # type: ignore[misc]
                    lambda i=i, r=r: mg.solve(x[i].numpy(), r, tol=tol))
                m_cpu += c2
                its.append(it)
                err = max(err, float(np.abs(vals - ref[i].numpy()[:, r]).max()))  # type: ignore[index]
        n = len(CELLS) * args.tiles
        per_pct[q] = m_cpu / n
        print(f"| {q} % | {d_cpu / n:.3f} | {m_cpu / n:.3f} | {d_cpu / m_cpu:.1f}× | "
              f"{min(its)}–{max(its)} | {err:.1e} |")
    torch.set_num_threads(threads)
    # impute() as ROAD calls it: noise on, every tile of a percentage at once, torch's threads
    wall = cpu = 0.0
    for q in PERCENTAGES:
        for cells in CELLS:
            rem = _masks(args.tiles, 224, q / 100, cells)
            w, c, _ = _timed(lambda rem=rem: imp.impute(x.float(), rem))
            wall += w
            cpu += c
    n_imp = len(PERCENTAGES) * len(CELLS) * args.tiles
    solve = wall / n_imp
    print(f"\nimpute() with {threads} threads, noise {imp.NOISE:g}: {1e3 * solve:.1f} ms wall, "
          f"{1e3 * cpu / n_imp:.1f} ms CPU per imputed tile (mean over the percentages)")
    model = build_model("hmt-vgg7").eval()
    xb = torch.rand(48, 3, 224, 224)
    bs = inference_rows(xb)
    with torch.no_grad():
        fast_forward(model, xb[:bs])
        w, c, _ = _timed(lambda: [fast_forward(model, xb[i : i + bs])
                                  for i in range(0, 48, bs)])
    fwd = w / 48
    print(f"VGG-7 forward (no grad, channels-last batches of {bs}): {48 / w:.1f} tiles/s wall, "
          f"{48 / c:.1f} tiles/s per CPU-second")
    inputs = 3 * 496 * len(PERCENTAGES) * 2
    print(f"ROAD, 3 methods × 496 tiles × {len(PERCENTAGES)} percentages × MoRF + LeRF = "
          f"{inputs} imputed inputs: solves {inputs * solve / 60:.1f} min + forwards "
          f"{inputs * fwd / 60:.1f} min = {inputs * (solve + fwd) / 60:.1f} min projected "
          "(the random map adds 1/3)")
    sig = torch.rand(1000, 1, 40, dtype=torch.float64)
    print("\n| 1×40 signals (×1000) | removed | solve s/signal (wall / CPU) |\n|---|---|---|")
    for q in (10, 50, 90):
        rem = torch.rand(1000, 40).argsort(1).argsort(1) < round(0.4 * q)  # q % of 40
        w, c, _ = _timed(lambda rem=rem: imp.impute(sig, rem, noise=0.01))
        print(f"| 1000 | {q} % | {w / 1000:.6f} / {c / 1000:.6f} |")
    print(f"\nload average after: {_load()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
