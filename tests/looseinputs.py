"""Makers for the ``explain --inputs`` tests: a folder of mixed loose images and small models."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from PIL import Image

NET = '''
from collections import OrderedDict

from torch import nn


def build(num_classes=4, in_channels=3):
    """A small 2-D CNN, trained elsewhere (here: random weights, seeded)."""
    return nn.Sequential(OrderedDict(
        conv1=nn.Sequential(nn.Conv2d(in_channels, 8, 3, padding=1), nn.ReLU()),
        pool=nn.MaxPool2d(2),
        conv2=nn.Sequential(nn.Conv2d(8, 8, 3, padding=1), nn.ReLU()),
        gap=nn.AdaptiveAvgPool2d(1),
        flat=nn.Flatten(),
        head=nn.Linear(8, num_classes),
    ))


def build1d(num_classes=3, in_channels=2):
    """A small 1-D CNN for signals."""
    return nn.Sequential(OrderedDict(
        conv1=nn.Sequential(nn.Conv1d(in_channels, 6, 3, padding=1), nn.ReLU()),
        conv2=nn.Sequential(nn.Conv1d(6, 6, 3, padding=1), nn.ReLU()),
        gap=nn.AdaptiveAvgPool1d(1),
        flat=nn.Flatten(),
        head=nn.Linear(6, num_classes),
    ))
'''

#: (suffix, Pillow mode, width, height): PNG, JPEG, TIFF; RGB, gray, RGBA, palette, 16-bit.
SPECS = [(".png", "RGB", 40, 30), (".jpg", "RGB", 33, 47), (".tif", "RGB", 64, 64),
         (".png", "L", 20, 20), (".png", "RGBA", 31, 17), (".tif", "L", 50, 50),
         (".png", "P", 25, 25), (".jpeg", "L", 45, 45), (".tiff", "RGBA", 19, 29),
         (".png", "I;16", 16, 16)]


def make_loose_images(root: Path, n: int = 20) -> list[Path]:
    """``n`` images of mixed formats, modes and odd sizes, half in a sub-folder; plus a
    hidden file and a text file that are not inputs."""
    rng = np.random.default_rng(0)
    files = []
    for i in range(n):
        suffix, mode, w, h = SPECS[i % len(SPECS)]
        folder = root / ("sub" if i % 2 else "")
        folder.mkdir(parents=True, exist_ok=True)
        rgb = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
        img = Image.fromarray(rgb)
        if mode == "I;16":
            img = Image.fromarray((rng.integers(0, 65536, (h, w))).astype(np.uint16))
        elif mode == "P":
            img = img.convert("P")
        elif mode != "RGB":
            img = img.convert(mode)
        path = folder / f"img_{i:02d}{suffix}"
        img.save(path)
        files.append(path)
    (root / ".hidden.png").write_bytes(b"not read")
    (root / "notes.txt").write_text("not an input")
    return files


def save_builder(folder: Path, name: str = "build", **kwargs: int) -> tuple[str, Path]:
    """The net file and a state dict of ``name(**kwargs)`` (seeded): ``(builder, weights)``."""
    folder.mkdir(parents=True, exist_ok=True)
    net = folder / "net.py"
    net.write_text(NET)
    namespace: dict[str, object] = {}
    exec(compile(NET, str(net), "exec"), namespace)
    torch.manual_seed(0)
    model = namespace[name](**kwargs)  # type: ignore[operator]
    weights = folder / f"{name}.pt"
    torch.save(model.state_dict(), weights)
    return f"{net}:{name}", weights


def save_onnx(folder: Path, size: int = 32, num_classes: int = 4) -> Path:
    """The 2-D net exported to ONNX with a dynamic batch (needs ``onnx``)."""
    namespace: dict[str, object] = {}
    exec(compile(NET, "net.py", "exec"), namespace)
    torch.manual_seed(0)
    model = namespace["build"](num_classes=num_classes).eval()  # type: ignore[operator]
    path = folder / "net.onnx"
    torch.onnx.export(model, (torch.zeros(1, 3, size, size),), str(path), dynamo=False,
                      input_names=["x"], dynamic_axes={"x": {0: "n"}})
    return path
