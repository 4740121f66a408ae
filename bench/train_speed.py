"""Training throughput of the study's models on this machine: images (signals) per second.

Times optimisation steps of ``hmt-vgg7`` at several image sizes (data loading with the
batched augmentation included when ``--data-dir`` is given) and of ``mnist1d-cnn``, and
prints a markdown table with the projected time per full epoch.

    .venv/bin/python bench/train_speed.py --data-dir ../shared/data/hmt --sizes 224 150 64
"""

from __future__ import annotations

import argparse
import time

import torch

from cnnlens.data import DataConfig, load_task
from cnnlens.models import build_model
from cnnlens.train.loop import iterate_batches, make_optimizer
from cnnlens.train.recipes import get_recipe

HMT_TRAIN = 4504
MNIST1D_TRAIN = 4000


def _time_steps(model: torch.nn.Module, batches: list[tuple[torch.Tensor, torch.Tensor]],
                warmup: int = 1) -> float:
    opt = make_optimizer(model, get_recipe("study"))
    model.train()
    t0 = 0.0
    for i, (x, y) in enumerate(batches):
        if i == warmup:
            t0 = time.perf_counter()
        loss = torch.nn.functional.cross_entropy(model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
    n = sum(int(y.shape[0]) for _, y in batches[warmup:])
    return n / (time.perf_counter() - t0)


def bench_hmt(size: int, steps: int, data_dir: str | None) -> dict[str, float | str]:
    torch.manual_seed(0)
    model = build_model("hmt-vgg7")
    if data_dir:
        data = load_task(DataConfig("hmt", data_dir=data_dir, image_size=size))
        data.train.set_epoch(0)  # type: ignore[attr-defined]
        order = torch.randperm(len(data.train))[: 32 * (steps + 1)]  # type: ignore[arg-type]
        t0 = time.perf_counter()
        batches = list(iterate_batches(data.train, order, 32))
        load_s = (time.perf_counter() - t0) / len(order)
    else:
        batches = [(torch.rand(32, 3, size, size), torch.randint(0, 8, (32,)))
                   for _ in range(steps + 1)]
        load_s = 0.0
    ips = _time_steps(model, batches)
    per_img = 1.0 / ips + load_s
    return {"model": "hmt-vgg7", "input": f"3×{size}×{size}", "items/s (step)": ips,
            "items/s (with data)": 1.0 / per_img, "epoch s": HMT_TRAIN * per_img}


def bench_mnist1d(steps: int) -> dict[str, float | str]:
    torch.manual_seed(0)
    model = build_model("mnist1d-cnn")
    batches = [(torch.randn(32, 1, 40), torch.randint(0, 10, (32,))) for _ in range(steps + 1)]
    ips = _time_steps(model, batches)
    return {"model": "mnist1d-cnn", "input": "1×40", "items/s (step)": ips,
            "items/s (with data)": ips, "epoch s": MNIST1D_TRAIN / ips}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[224, 150, 64])
    ap.add_argument("--steps", type=int, default=8, help="timed batches of 32 per setting")
    ap.add_argument("--data-dir", default=None, help="HMT folder: include real data loading")
    ap.add_argument("--threads", type=int, default=None)
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    rows = [bench_hmt(s, args.steps, args.data_dir) for s in args.sizes]
    rows.append(bench_mnist1d(max(args.steps, 200)))
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, batch 32, SGD step\n")
    print("| model | input | items/s (step) | items/s (with data) | projected epoch (s) |")
    print("|---|---|---:|---:|---:|")
    for r in rows:
        print(f"| {r['model']} | {r['input']} | {r['items/s (step)']:.1f} | "
              f"{r['items/s (with data)']:.1f} | {r['epoch s']:.1f} |")


if __name__ == "__main__":
    main()
