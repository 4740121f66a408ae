"""CAM speed, side by side in one process: cnnlens vs pytorch-grad-cam, torch-cam and Captum.

    .venv/bin/python bench/cam_speed.py [--quick] [--repeats 3] [--only vgg7|mnist1d]

Workloads (DESIGN §8): ``mnist1d-cnn`` on the 1000 MNIST-1D test signals at ``conv1d_2`` and
the VGG-7 (random weights) on 32 images of 224×224 at ``conv2d_3``. Each method's time is
given as a ratio to the *floor*: the fastest forward + gradient-to-layer pass over the same
inputs found here (whole batch or memory-sized chunks, NCHW or channels-last images);
Score-CAM's floor is K forward passes per input (K = channels). Peers are given as their
time / ours. Times are the best
of ``--repeats`` runs (gradient methods) or one run (Ablation/Score-CAM, which take long).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path

os.environ["TQDM_DISABLE"] = "1"  # before anything imports tqdm

import numpy as np
import torch
from torch import Tensor, nn

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _peers
from _machine import machine_line
from cnnlens.explain import METHODS, cam
from cnnlens.models import build_model

DATA = Path(__file__).resolve().parents[1] / ".." / "shared" / "data"
# One round, no warm-up on the VGG-7: the peers take minutes (pytorch-grad-cam's Eigen-CAM
# runs a full-matrices SVD of the (H·W)×K activations, a (H·W)² U per image).
SLOW = {"ablationcam", "scorecam", "eigencam"}
PEERS = ("pytorch-grad-cam", "torch-cam", "Captum")


def timed(fn: Callable[[], object], repeats: int, min_total: float = 1.0) -> float:
    """Best of ``repeats`` runs, and of more while they total under ``min_total`` s.

    Short calls (milliseconds) need many runs for a stable minimum on a busy machine.
    """
    best, total, runs = float("inf"), 0.0, 0
    while runs < repeats or (total < min_total and runs < 200):
        start = time.perf_counter()
        fn()
        took = time.perf_counter() - start
        best, total, runs = min(best, took), total + took, runs + 1
    return best


def _gradient_pass(model: nn.Module, x: Tensor, layer: nn.Module) -> None:
    """Forward + gradient of the summed top logit down to ``layer``'s output, nothing else."""
    store: list[Tensor] = []

    def hook(_m: nn.Module, _i: object, out: Tensor) -> Tensor:
        leaf = out.detach().requires_grad_(True)
        store.append(leaf)
        return leaf

    handle = layer.register_forward_hook(hook)
    try:
        with torch.enable_grad():
            logits = model(x)
            torch.autograd.grad(logits.max(dim=1).values.sum(), store[0])
    finally:
        handle.remove()


def floors(model: nn.Module, x: Tensor, layer: str, repeats: int
           ) -> tuple[float, float, list[Tensor], list[Tensor]]:
    """Fastest forward+gradient pass and fastest no-grad forward over chunk sizes and memory
    layouts, with the chunks each was fastest on."""
    module = model.get_submodule(layer)
    for p in model.parameters():
        p.requires_grad_(False)
    n = x.shape[0]
    sizes = sorted({n, *[s for s in (2, 4, 8, 16, 32, 64, 128, 256, 512) if s < n]})
    # images in both memory layouts: the floor is the fastest pass, whichever layout it needs
    layouts = [x] + ([x.contiguous(memory_format=torch.channels_last)] if x.dim() == 4 else [])
    best_grad, best_fwd = float("inf"), float("inf")
    grad_chunks: list[Tensor] = [x]
    fwd_chunks: list[Tensor] = [x]
    try:
        for size, xs in ((s, v) for s in sizes for v in layouts):
            chunks = [xs[i : i + size] for i in range(0, n, size)]

            def grad_all(chunks: list[Tensor] = chunks) -> None:
                for c in chunks:
                    _gradient_pass(model, c, module)

            def fwd_all(chunks: list[Tensor] = chunks) -> None:
                with torch.no_grad():
                    for c in chunks:
                        model(c)

            grad_all()  # warm-up
            t = timed(grad_all, repeats, min_total=0.3)
            if t < best_grad:
                best_grad, grad_chunks = t, chunks
            t = timed(fwd_all, repeats, min_total=0.3)
            if t < best_fwd:
                best_fwd, fwd_chunks = t, chunks
    finally:
        for p in model.parameters():
            p.requires_grad_(True)
    return best_grad, best_fwd, grad_chunks, fwd_chunks


def workload(
    title: str,
    model: nn.Module,
    x: Tensor,
    layer: str,
    repeats: int,
    one_d: bool,
    fast: bool,
    methods: list[str],
) -> list[str]:
    """Time every method and its peers on one model.

    Each round times the floor, cnnlens and every peer back to back, so that a busy machine
    slows them alike; a method's ratios are between the best times over its own rounds.
    ``fast``: Ablation/Score-CAM also get ``repeats`` rounds (else one).
    """
    model.eval()
    n = x.shape[0]
    module = model.get_submodule(layer)
    acts: list[Tensor] = []
    with torch.no_grad():
        out = model(x)
        handle = module.register_forward_hook(lambda _m, _i, o: acts.append(o))
        model(x[:1])
        handle.remove()
    k = acts[0].shape[1]
    targets = out.argmax(dim=1).tolist()
    floor0, fwd0, chunks, fwd_chunks = floors(model, x, layer, repeats)
    size = chunks[0].shape[0]
    layout = ("channels-last" if x.dim() == 4 and not chunks[0].is_contiguous() else "NCHW"
              if x.dim() == 4 else "contiguous")

    def floor_pass() -> None:
        for p in model.parameters():
            p.requires_grad_(False)
        try:
            for c in chunks:
                _gradient_pass(model, c, module)
        finally:
            for p in model.parameters():
                p.requires_grad_(True)

    def forward_pass() -> None:
        with torch.no_grad():
            for c in fwd_chunks:
                model(c)

    lines = [
        f"### {title}: N = {n}, input {tuple(x.shape[1:])}, layer `{layer}` (K = {k})",
        "",
        f"Floor (forward + gradient to layer, best chunk {size} of N, {layout}): "
        f"{floor0:.3f} s when first measured; Score-CAM floor = K × no-grad forward "
        f"({fwd0:.3f} s) = {k * fwd0:.3f} s. Each row's ratios use the floor re-timed in the "
        "same rounds. "
        f"torch {torch.__version__}, {torch.get_num_threads()} thread(s).",
        "",
        "| method | cnnlens s | items/s | × floor | pytorch-grad-cam s (÷ ours) "
        "| torch-cam s (÷ ours) | Captum s (÷ ours) |",
        "|---|---|---|---|---|---|---|",
    ]
    for name in methods:
        slow = name in SLOW and not fast
        rounds = 1 if slow else repeats
        base_fn = forward_pass if name == "scorecam" else floor_pass
        runners: dict[str, _peers.Runner | None] = {
            "pytorch-grad-cam": _peers.pgc_runner(_peers.PGC[name], one_d)
            if name in _peers.PGC
            else None,
            "torch-cam": _peers.torchcam_runner(_peers.TORCHCAM[name])
            if name in _peers.TORCHCAM
            else None,
            "Captum": _peers.captum_runner(targets) if name == "gradcam" else None,
        }
        if not slow:  # warm-up
            cam(model, x, layer=layer, method=name)
        best: dict[str, float] = {}
        failed: dict[str, str] = {}
        for _ in range(rounds):
            times = {
                "floor": timed(base_fn, 1, min_total=0.3),
                "cnnlens": timed(
                    lambda name=name: cam(model, x, layer=layer, method=name), 1, min_total=0.3
                ),
            }
            for peer, run in runners.items():
                if run is None or peer in failed:
                    continue
                try:
                    if not slow and peer not in best:
                        run(model, x, layer)  # warm-up
                    times[peer] = timed(lambda run=run: run(model, x, layer), 1, min_total=0.3)
                except Exception as exc:  # a peer that cannot do this input is a result too
                    failed[peer] = type(exc).__name__
                model.eval()
            for key, t in times.items():
                best[key] = min(best.get(key, float("inf")), t)
        floor = best["floor"] * (k if name == "scorecam" else 1)
        ours = best["cnnlens"]
        cells = [name, f"{ours:.3f}", _rate(n / ours), f"{ours / floor:.2f}×"]
        for peer in PEERS:
            if peer in failed:
                cells.append(f"fails: {failed[peer]}")
            elif peer in best:
                cells.append(f"{best[peer]:.3f} ({best[peer] / ours:.1f}×)")
            else:
                cells.append("—")
        lines.append("| " + " | ".join(cells) + " |")
        print(lines[-1], f"floor {floor:.3f}", file=sys.stderr, flush=True)
    return lines


def _rate(items_per_s: float) -> str:
    return f"{items_per_s:,.0f}" if items_per_s >= 100 else f"{items_per_s:.2g}"


def mnist1d_inputs(n: int) -> Tensor:
    ref = DATA / "mnist1d" / "mnist1d_reference.npz"
    if ref.exists():
        with np.load(ref, allow_pickle=False) as data:
            arr = data["x_test"][:n]
        return torch.from_numpy(arr).float().unsqueeze(1)
    return torch.randn(n, 1, 40, generator=torch.Generator().manual_seed(0))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small inputs, one repeat")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--only", choices=["mnist1d", "vgg7"])
    parser.add_argument("--methods", default=",".join(METHODS), help="comma-separated subset")
    parser.add_argument("--vgg-images", type=int, default=32, help="VGG-7 batch (default 32)")
    parser.add_argument("--threads", type=int, help="torch.set_num_threads (default: torch's)")
    args = parser.parse_args(argv)
    print(machine_line())  # every figure names the CPU it was measured on
    if args.threads:
        torch.set_num_threads(args.threads)
    _peers.install_torchvision_standin()
    repeats = 1 if args.quick else args.repeats
    methods = [m for m in args.methods.split(",") if m]
    if unknown := sorted(set(methods) - set(METHODS)):
        parser.error(f"--methods: unknown {', '.join(unknown)}; valid: {', '.join(METHODS)}")
    torch.manual_seed(0)
    out: list[str] = []
    if args.only in (None, "mnist1d"):
        n = 200 if args.quick else 1000
        model = build_model("mnist1d-cnn")
        out += workload(
            "mnist1d-cnn", model, mnist1d_inputs(n), "conv1d_2", repeats, True, True, methods
        )
        out.append("")
    if args.only in (None, "vgg7"):
        n = 4 if args.quick else args.vgg_images
        model = build_model("hmt-vgg7")
        x = torch.rand(n, 3, 224, 224, generator=torch.Generator().manual_seed(0))
        out += workload(
            "hmt-vgg7 (random weights)", model, x, "conv2d_3", repeats, False, False, methods
        )
    print("\n".join(out))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
