"""Ablation- and Score-CAM on a model that is not ``nn.Sequential``: before and after the cut.

    .venv/bin/python bench/cam_graph_speed.py [--width 32] [--size 96] [--images 8]

The torchvision-style ResNet-18 of ``tests/models/resnet_ref.py`` (random weights, random
BatchNorm statistics) at ``--width`` (64 = torchvision's) on ``--images`` random images of
``--size`` px. For Ablation-CAM at the last stage (``layer4``, the default CAM layer) and
inside the last block (``layer4.1.bn2``, whose tail needs the block's identity from before
the cut), it times cnnlens with the traced graph cut ("after"), cnnlens with the cut
disabled (every ablated copy through the whole model, in batches: "before") and
pytorch-grad-cam's AblationCAM; for Score-CAM (always whole passes: it masks the input)
cnnlens and pytorch-grad-cam's ScoreCAM. One round each (the whole-pass rows take seconds);
``max |Δ|`` compares each row's normalised maps with the first row's (cnnlens's).
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from unittest import mock

os.environ["TQDM_DISABLE"] = "1"  # before anything imports tqdm

import numpy as np
import torch
from torch import Tensor, nn

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _peers
from _machine import machine_line
from cnnlens.explain import cam

RESNET_REF = Path(__file__).resolve().parents[1] / "tests" / "models" / "resnet_ref.py"


def resnet_ref() -> ModuleType:
    """The test suite's torchvision-style ResNet, loaded from its file."""
    spec = importlib.util.spec_from_file_location("resnet_ref", RESNET_REF)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def build(width: int) -> nn.Module:
    torch.manual_seed(0)
    net = resnet_ref().ResNet(num_classes=10, width=width)
    with torch.no_grad():
        for bn in (m for m in net.modules() if isinstance(m, nn.BatchNorm2d)):
            bn.running_mean.uniform_(-0.5, 0.5)
            bn.running_var.uniform_(0.5, 1.5)
            bn.weight.uniform_(0.5, 1.5)
            bn.bias.uniform_(-0.2, 0.2)
    return net.eval()


def timed(fn: Callable[[], object]) -> tuple[float, object]:
    start = time.perf_counter()
    out = fn()
    return time.perf_counter() - start, out


def _np(maps: object) -> np.ndarray:
    return maps.numpy() if isinstance(maps, Tensor) else np.asarray(maps)


def rows(model: nn.Module, x: Tensor, method: str, layer: str) -> list[str]:
    """Table rows for one method at one layer: cnnlens after/before the cut, the peer."""
    runs: dict[str, Callable[[], object]] = {
        "cnnlens (graph cut)": lambda: cam(model, x, layer=layer, method=method),
    }
    if method == "ablationcam":
        def whole() -> object:
            with mock.patch("cnnlens.explain.engine.graph_tail", lambda *_a: "bench: off"):
                return cam(model, x, layer=layer, method=method)

        runs = {"cnnlens before (whole passes)": whole, **runs}
    else:
        runs = {"cnnlens (whole passes)": runs["cnnlens (graph cut)"]}
    cam(model, x[:1], layer=layer, method="gradcam")  # warm-up: allocator, kernels
    pgc = _peers.pgc_runner(_peers.PGC[method], one_d=False)
    runs["pytorch-grad-cam"] = lambda: pgc(model, x, layer)
    k = _channels(model, layer, x)
    out, first = [], None
    for name, fn in runs.items():
        seconds, maps = timed(fn)
        model.eval()
        arr = _np(maps)
        diff = "—" if first is None else f"{np.abs(arr - first).max():.1e}"
        first = arr if first is None else first
        out.append(f"| {method} | `{layer}` (K = {k}) | {name} | {seconds:.3f} | "
                   f"{x.shape[0] / seconds:.2f} | {diff} |")
        print(out[-1], file=sys.stderr, flush=True)
    return out


def _channels(model: nn.Module, layer: str, x: Tensor) -> int:
    seen: list[int] = []
    handle = model.get_submodule(layer).register_forward_hook(
        lambda _m, _i, o: seen.append(o.shape[1]))
    try:
        with torch.no_grad():
            model(x[:1])
    finally:
        handle.remove()
    return seen[0]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--width", type=int, default=32, help="ResNet width (64 = torchvision)")
    parser.add_argument("--size", type=int, default=96, help="image size in px")
    parser.add_argument("--images", type=int, default=8)
    parser.add_argument("--threads", type=int, help="torch.set_num_threads (default: torch's)")
    args = parser.parse_args(argv)
    print(machine_line())  # every figure names the CPU it was measured on
    if args.threads:
        torch.set_num_threads(args.threads)
    _peers.install_torchvision_standin()
    model = build(args.width)
    x = torch.rand(args.images, 3, args.size, args.size,
                   generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        model(x)
        start = time.perf_counter()
        model(x)
        forward = time.perf_counter() - start
    print(f"### ResNet-18 (tests/models/resnet_ref.py), width {args.width}: N = {args.images}, "
          f"input (3, {args.size}, {args.size}); one no-grad forward of the batch: "
          f"{forward:.3f} s; torch {torch.__version__}, {torch.get_num_threads()} thread(s)")
    print()
    print("| method | layer | implementation | s | images/s | max \\|Δ\\| |")
    print("|---|---|---|---|---|---|")
    for method, layer in (("ablationcam", "layer4"), ("ablationcam", "layer4.1.bn2"),
                          ("scorecam", "layer4")):
        print("\n".join(rows(model, x, method, layer)), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
