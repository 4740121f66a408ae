"""CAM images in TensorBoard while a model trains: watch the explanations evolve.

A fixed set of test samples (the first of each class, up to ``max_samples``) is explained
every ``every`` epochs with one method at the model's CAM layer; each sample's figure goes
to the run's TensorBoard log under ``cams/<method>``, one step per epoch.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import nn
from torch.utils.data import Dataset

from cnnlens.explain.api import explain
from cnnlens.explain.figures import image_cam_figure, signal_cam_figure
from cnnlens.explain.layers import LayerRef, default_layer
from cnnlens.plotting import literal_text
from cnnlens.train.loop import EpochHook


def pick_samples(dataset: Dataset[Any], n_classes: int, max_samples: int = 8) -> list[int]:
    """Indices of the first sample of each class (in class order), at most ``max_samples``."""
    labels = getattr(dataset, "targets", None)
    if labels is None:
        tensors = getattr(dataset, "tensors", None)
        labels = tensors[1] if tensors is not None else [dataset[i][1] for i in range(
            min(len(dataset), 2000))]  # type: ignore[arg-type]
    labels = np.asarray(labels).reshape(-1)
    out: list[int] = []
    for c in range(n_classes):
        hits = np.flatnonzero(labels == c)
        if hits.size:
            out.append(int(hits[0]))
        if len(out) >= max_samples:
            break
    return out


class CamImageLogger(EpochHook):
    """Log CAM figures of fixed samples to TensorBoard every ``every`` epochs (and the last)."""

    def __init__(
        self,
        dataset: Dataset[Any],
        class_names: list[str],
        *,
        kind: str,
        layer: LayerRef | None,
        method: str = "gradcam",
        score: str = "logit",
        every: int = 10,
        max_samples: int = 8,
    ) -> None:
        self.indices = pick_samples(dataset, len(class_names), max_samples)
        self.x = torch.stack([dataset[i][0] for i in self.indices]) if self.indices else None
        self.labels = [int(dataset[i][1]) for i in self.indices]
        self.class_names = class_names
        self.kind = kind
        self.layer = layer
        self.method = method
        self.score = score
        self.every = max(1, int(every))

    def after_epoch(self, epoch: int, epochs: int, model: nn.Module, writer: Any) -> None:
        if self.x is None or ((epoch + 1) % self.every and epoch + 1 != epochs):
            return
        device = next((p.device for p in model.parameters()), torch.device("cpu"))
        x = self.x.to(device)
        layer = self.layer if self.layer is not None else default_layer(model, x)
        res = explain(model, x, layer=layer, method=self.method, score=self.score)
        maps = res.maps.float().cpu().numpy()
        pred = res.predicted.cpu().numpy()
        rows = [f"#{i} {self.class_names[y]} → {self.class_names[int(p)]}"
                for i, y, p in zip(self.indices, self.labels, pred, strict=True)]
        make = signal_cam_figure if self.kind == "signal" else image_cam_figure
        fig = make(self.x.cpu().numpy(), {self.method: maps}, row_labels=rows,
                   title=f"epoch {epoch + 1}: {self.method} at {layer}")
        literal_text(fig)
        writer.add_figure(f"cams/{self.method}", fig, global_step=epoch, close=False)
        writer.flush()


__all__ = ["CamImageLogger", "pick_samples"]
