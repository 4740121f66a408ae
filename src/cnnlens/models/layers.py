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


class ResidualBlock(nn.Module):
    """A pre-summed residual block: ``ReLU(x' + BN(conv(ReLU(BN(conv(x))))))``.

    ``x'`` is ``x`` itself, or a strided 1×1 conv + BN when the block changes the channel
    count or ``stride`` downsamples (ResNet's "basic block", He et al. 2016). ``dilation``
    widens the receptive field without downsampling, which keeps a 1-D CAM at full
    resolution. The output is post-ReLU, like a Keras layer with ``activation='relu'``.
    """

    def __init__(self, dims: int, in_ch: int, out_ch: int, *, kernel_size: int = 3,
                 stride: int = 1, dilation: int = 1) -> None:
        super().__init__()
        conv_cls = {1: nn.Conv1d, 2: nn.Conv2d}[dims]
        norm_cls = {1: nn.BatchNorm1d, 2: nn.BatchNorm2d}[dims]
        pad = dilation * (kernel_size - 1) // 2
        self.conv1 = conv_cls(in_ch, out_ch, kernel_size, stride=stride, padding=pad,
                              dilation=dilation, bias=False)
        self.bn1 = norm_cls(out_ch)
        self.relu1 = nn.ReLU()
        self.conv2 = conv_cls(out_ch, out_ch, kernel_size, padding=pad, dilation=dilation,
                              bias=False)
        self.bn2 = norm_cls(out_ch)
        self.shortcut: nn.Module = nn.Identity()
        if stride != 1 or in_ch != out_ch:
            self.shortcut = nn.Sequential(conv_cls(in_ch, out_ch, 1, stride=stride, bias=False),
                                          norm_cls(out_ch))
        self.relu = nn.ReLU()
        # Zero-init the last BN's scale: each block starts as the identity, which lets
        # short, high-learning-rate schedules train deep stacks stably (Goyal et al. 2017).
        nn.init.zeros_(self.bn2.weight)
        for m in self.modules():
            if isinstance(m, nn.Conv1d | nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.relu1(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + self.shortcut(x))


class ConvBNReLU(nn.Sequential):
    """Conv (no bias) + batch norm + ReLU: the stem of the residual models."""

    def __init__(self, dims: int, in_ch: int, out_ch: int, kernel_size: int,
                 stride: int = 1) -> None:
        conv_cls = {1: nn.Conv1d, 2: nn.Conv2d}[dims]
        norm_cls = {1: nn.BatchNorm1d, 2: nn.BatchNorm2d}[dims]
        conv = conv_cls(in_ch, out_ch, kernel_size, stride=stride,
                        padding=(kernel_size - 1) // 2, bias=False)
        nn.init.kaiming_normal_(conv.weight, mode="fan_out", nonlinearity="relu")
        super().__init__()
        self.add_module("conv", conv)
        self.add_module("bn", norm_cls(out_ch))
        self.add_module("relu", nn.ReLU())
