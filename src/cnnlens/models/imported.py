"""What a format-specific loader hands back: the module plus the facts its file declared.

Each loader (state dict, pickle, ``.pt2``, ONNX, Keras) knows different things about its
model; collecting them in one record lets :func:`cnnlens.models.load.load` finish every
model the same way (eval mode, float32, CPU, final activation) without knowing formats.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from torch import nn

#: Final layers cnnlens recognises, by module class name, and the name it reports.
FINAL_ACTIVATIONS: dict[str, str] = {
    "Softmax": "softmax",
    "Sigmoid": "sigmoid",
    "LogSoftmax": "log_softmax",
}


@dataclass
class Imported:
    """A model read from a file, before the shared finishing steps."""

    module: nn.Module
    converter: str | None = None
    input_shape: tuple[int, ...] | None = None  # (C, *spatial), batch dimension dropped
    num_classes: int | None = None
    final_activation: str | None = None
    #: True when the loader read the final activation from the file's graph or config (even
    #: "none"); otherwise the module's last registered layer decides.
    head_read: bool = False
    notes: list[str] = field(default_factory=list)


__all__ = ["FINAL_ACTIVATIONS", "Imported"]
