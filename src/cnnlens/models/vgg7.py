"""The study's "VGG-7" for HMT histology tiles, with Keras layer names."""

from __future__ import annotations

from collections import OrderedDict

import torch
from torch import nn

from cnnlens.models.layers import ConvReLU


def build_hmt_vgg7(*, in_channels: int = 3, num_classes: int = 8) -> nn.Sequential:
    """Two conv pairs with max pooling, global average pooling and a dense head.

    Global average pooling makes the network resolution-agnostic, so the same weights run
    at 224 px (the study) or smaller sizes for quick CPU experiments.
    """
    dense = nn.Linear(64, num_classes)
    with torch.no_grad():
        dense.weight.normal_(0.0, 0.5)  # the study's Keras config: RandomNormal(stddev=0.5)
        dense.bias.zero_()
    return nn.Sequential(
        OrderedDict(
            conv2d=ConvReLU(2, in_channels, 32, 3),
            conv2d_1=ConvReLU(2, 32, 32, 3),
            max_pooling2d=nn.MaxPool2d(2),
            conv2d_2=ConvReLU(2, 32, 64, 3),
            conv2d_3=ConvReLU(2, 64, 64, 3),
            max_pooling2d_1=nn.MaxPool2d(2),
            global_average_pooling2d=nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten()),
            dense=dense,
        )
    )
