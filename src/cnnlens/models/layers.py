"""Building blocks shared by the models: a conv fused with its ReLU, as Keras names it."""

from __future__ import annotations

import math

import torch
from torch import nn


class ConvReLU(nn.Sequential):
    """A convolution followed by ReLU: one Keras ``ConvND(activation='relu')`` layer.

    The output of this block is what Keras calls the layer's output, so a CAM at
    ``conv2d_3`` sees post-activation values, as in the study.
    """

    def __init__(self, dims: int, in_ch: int, out_ch: int, kernel_size: int) -> None:
        conv_cls = {1: nn.Conv1d, 2: nn.Conv2d, 3: nn.Conv3d}[dims]
        conv = conv_cls(in_ch, out_ch, kernel_size, padding="same")
        super().__init__()
        self.add_module("conv", conv)
        self.add_module("relu", nn.ReLU())
        glorot_uniform_(conv.weight)
        if conv.bias is not None:
            nn.init.zeros_(conv.bias)


def glorot_uniform_(weight: torch.Tensor) -> None:
    """Keras' default kernel initialiser (fan computed as Keras does, with the receptive field)."""
    receptive = math.prod(weight.shape[2:]) if weight.dim() > 2 else 1
    fan_in = weight.shape[1] * receptive
    fan_out = weight.shape[0] * receptive
    limit = math.sqrt(6.0 / (fan_in + fan_out))
    with torch.no_grad():
        weight.uniform_(-limit, limit)
