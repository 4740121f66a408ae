"""Memory while explaining many images in a loop: the resident set must reach a plateau.

Explains ``--images`` random images (VGG-7, random weights) batch after batch with each
method, and prints the process's resident memory (VmRSS) as the loop goes on. A leak (maps,
hooks or autograd graphs kept alive between calls) shows as RSS growing with the number of
images; a plateau means every call frees what it allocated.

    .venv/bin/python bench/explain_memory.py                  # 5000 images of 64 px
    .venv/bin/python bench/explain_memory.py --size 224 --images 1000 --methods gradcam
"""

from __future__ import annotations

import argparse
import gc
import time
from pathlib import Path

import numpy as np
import torch

from _machine import machine_line
from cnnlens.explain import explain
from cnnlens.models import build_model


def rss_mb() -> float:
    """Resident set size of this process in MiB (Linux ``/proc``)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("VmRSS not found in /proc/self/status")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--images", type=int, default=5000)
    p.add_argument("--batch", type=int, default=50)
    p.add_argument("--size", type=int, default=64)
    p.add_argument("--methods", default="gradcam,gradcampp,ablationcam")
    p.add_argument("--threads", type=int, default=None)
    args = p.parse_args()
    print(machine_line())  # every figure names the CPU it was measured on
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    model = build_model("hmt-vgg7").eval()
    methods = args.methods.split(",")
    gen = torch.Generator().manual_seed(1)
    rows: list[tuple[int, float, float]] = []  # after every batch
    t0 = time.perf_counter()
    done = 0
    while done < args.images:
        n = min(args.batch, args.images - done)
        x = torch.rand(n, 3, args.size, args.size, generator=gen)
        for method in methods:
            res = explain(model, x, layer="conv2d_3", method=method)
            del res
        done += n
        gc.collect()
        rows.append((done, rss_mb(), time.perf_counter() - t0))
    print(f"explain_memory: {args.images} images of {args.size} px, batches of {args.batch}, "
          f"methods {', '.join(methods)}, torch threads {torch.get_num_threads()}")
    print()
    print("| images explained | RSS (MiB) | max RSS so far (MiB) | seconds |")
    print("|---:|---:|---:|---:|")
    shown = {min(range(len(rows)), key=lambda i: abs(rows[i][0] - args.images * f))
             for f in (0.0, 0.1, 0.25, 0.5, 0.75, 1.0)}
    for i in sorted(shown):
        done, rss, secs = rows[i]
        print(f"| {done} | {rss:.1f} | {max(r[1] for r in rows[: i + 1]):.1f} | {secs:.1f} |")
    # a leak grows with every call; allocator noise goes up and down: fit a line to the
    # second half and compare the peaks of the two halves
    half = rows[len(rows) // 2:]
    xs = np.array([r[0] for r in half], dtype=np.float64)
    ys = np.array([r[1] for r in half], dtype=np.float64)
    slope = float(np.polyfit(xs, ys, 1)[0]) * 1000 if len(half) > 2 else 0.0
    first_peak = max(r[1] for r in rows[: len(rows) // 2])
    second_peak = max(ys)
    verdict = "plateau" if abs(slope) < 2.0 and second_peak < first_peak + 20 else "GROWING"
    print()
    print(f"second half: slope {slope:+.2f} MiB per 1000 images; peak {second_peak:.1f} MiB vs "
          f"{first_peak:.1f} MiB in the first half -> {verdict} (thresholds: |slope| < 2 MiB "
          "per 1000 images, peak within 20 MiB)")


if __name__ == "__main__":
    main()
