"""Training throughput on this machine: images (signals) per second, by speed setting.

Times optimisation steps (forward, backward, optimizer step) of a model at one input size
under several settings, interleaved round by round so a busy machine slows them alike:

- ``nchw-fp32``: how ``cnnlens train`` ran before (contiguous NCHW batches, fp32);
- ``cl-fp32``: channels-last model and batches (what ``cnnlens train`` does now for images);
- ``cl-bf16``: channels-last plus bf16 autocast (``--precision bf16``; ``auto`` picks it only
  where the CPU has native bf16).

With ``--data-dir`` each step includes building the batch from the decoded HMT tiles with
the recipe's augmentation (the loop's ``get_batch``), i.e. "end to end with data".

    .venv/bin/python bench/train_speed.py --data-dir ../shared/data/hmt --model hmt-vgg7 --size 224
    .venv/bin/python bench/train_speed.py --data-dir ../shared/data/hmt --model hmt-resnet \
        --size 128 --batch-size 64 --augmentation dihedral
"""

from __future__ import annotations

import argparse
import os
import time
from collections.abc import Callable, Iterator

import torch

from _machine import machine_line
from cnnlens.data import DataConfig, load_task
from cnnlens.data.batching import iterate_batches
from cnnlens.models import build_model, count_parameters
from cnnlens.train.loop import make_optimizer
from cnnlens.train.recipes import get_recipe
from cnnlens.train.speed import autocast, cpu_has_native_bf16, prepare_batch

SETTINGS = {"nchw-fp32": (False, "fp32"), "cl-fp32": (True, "fp32"), "cl-bf16": (True, "bf16")}
Batch = tuple[torch.Tensor, torch.Tensor]


def batch_source(args: argparse.Namespace) -> Callable[[], Iterator[Batch]]:
    """Endless batches: real augmented tiles with --data-dir, random tensors otherwise."""
    if args.data_dir:
        data = load_task(DataConfig("hmt", data_dir=args.data_dir, image_size=args.size,
                                    augmentation=args.augmentation))
        data.train.preload()  # type: ignore[attr-defined]

        def real() -> Iterator[Batch]:
            epoch = 0
            while True:
                data.train.set_epoch(epoch)  # type: ignore[attr-defined]
                order = torch.randperm(len(data.train))  # type: ignore[arg-type]
                yield from iterate_batches(data.train, order, args.batch_size)
                epoch += 1

        return real

    def synthetic() -> Iterator[Batch]:
        while True:
            yield (torch.rand(args.batch_size, 3, args.size, args.size),
                   torch.randint(0, 8, (args.batch_size,)))

    return synthetic


def time_setting(model: torch.nn.Module, batches: Iterator[Batch], steps: int,
                 channels_last: bool, precision: str) -> tuple[float, float]:
    """Items per wall second and per CPU second over ``steps`` steps after a warm-up step.

    On a shared machine wall time measures the neighbours too; CPU time (all threads of
    this process) does not, so with one thread items per CPU second approximates the
    throughput of an idle core.
    """
    model = model.to(memory_format=torch.channels_last if channels_last
                     else torch.contiguous_format)
    opt = make_optimizer(model, get_recipe("study"))
    model.train()
    cpu = torch.device("cpu")
    n, t0, c0 = 0, 0.0, 0.0
    for i in range(steps + 1):
        if i == 1:
            t0, c0, n = time.perf_counter(), time.process_time(), 0
        x, y = next(batches)
        x = prepare_batch(x, True) if channels_last else x.contiguous()
        with autocast(cpu, precision):
            logits = model(x)
        loss = torch.nn.functional.cross_entropy(logits.float(), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        n += int(y.shape[0])
    return n / (time.perf_counter() - t0), n / (time.process_time() - c0)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="hmt-vgg7")
    ap.add_argument("--size", type=int, default=224)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--steps", type=int, default=4, help="timed steps per setting and round")
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--settings", nargs="+", default=list(SETTINGS), choices=list(SETTINGS))
    ap.add_argument("--data-dir", default=None, help="HMT folder: include real data loading")
    ap.add_argument("--augmentation", default="study")
    ap.add_argument("--threads", type=int, default=None)
    args = ap.parse_args()
    print(machine_line())  # every figure names the CPU it was measured on
    if args.threads:
        torch.set_num_threads(args.threads)
    source = batch_source(args)
    torch.manual_seed(0)
    model = build_model(args.model)
    best: dict[str, tuple[float, float]] = {}
    for _ in range(args.rounds):
        for name in args.settings:
            cl, precision = SETTINGS[name]
            wall, cpu = time_setting(model, source(), args.steps, cl, precision)
            prev = best.get(name, (0.0, 0.0))
            best[name] = (max(prev[0], wall), max(prev[1], cpu))
    load = os.getloadavg()
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, batch "
          f"{args.batch_size}, native CPU bf16: {cpu_has_native_bf16()}, load average "
          f"{load[0]:.1f} / {load[1]:.1f} / {load[2]:.1f}, "
          f"data: {'HMT tiles, ' + args.augmentation if args.data_dir else 'synthetic'}\n")
    print("| model | params | input | setting | items/s wall | × nchw-fp32 | "
          "items / CPU-s | × nchw-fp32 |")
    print("|---|---:|---|---|---:|---:|---:|---:|")
    base = best.get("nchw-fp32")
    for name, (wall, cpu) in best.items():
        r_wall = f"{wall / base[0]:.2f}" if base else "—"
        r_cpu = f"{cpu / base[1]:.2f}" if base else "—"
        print(f"| {args.model} | {count_parameters(model):,} | 3×{args.size}×{args.size} | "
              f"{name} | {wall:.1f} | {r_wall} | {cpu:.1f} | {r_cpu} |")


if __name__ == "__main__":
    main()
