"""The study's 1-D CNN for MNIST-1D, with Keras layer names."""

from __future__ import annotations

from collections import OrderedDict

import torch
from torch import nn

from cnnlens.models.layers import ConvReLU


def build_mnist1d_cnn(
    *, in_channels: int = 1, length: int = 40, num_classes: int = 10, channels: int = 25
) -> nn.Sequential:
    """Three ``same``-padded Conv1d+ReLU layers, flatten, dense (13,960 parameters by default).

    A flat ``nn.Sequential`` keeps layer names user-addressable (``--layer conv1d_2``) and
    lets the CAM engine run only the tail of the network after a layer.
    """
    dense = nn.Linear(channels * length, num_classes)
    with torch.no_grad():
        dense.weight.normal_(0.0, 0.5)
        dense.bias.zero_()
    return nn.Sequential(
        OrderedDict(
            conv1d=ConvReLU(1, in_channels, channels, 5),
            conv1d_1=ConvReLU(1, channels, channels, 3),
            conv1d_2=ConvReLU(1, channels, channels, 3),
            flatten=nn.Flatten(),
            dense=dense,
        )
    )
