"""Residual CNNs that train to high accuracy on a CPU in minutes: ``mnist1d-resnet`` and
``hmt-resnet``.

Both are flat, named ``nn.Sequential`` stacks of blocks (``stem``, ``res1d``, ``res1d_1``,
... or ``res2d``, ...): users address a block by name (``--layer res2d_2``), and the CAM
engine can split off the network after a block (fast Ablation-CAM). A block's output is
post-ReLU, as the study's Keras layers are.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence

from torch import nn

from cnnlens.models.layers import ConvBNReLU, ResidualBlock


def _head(dims: int, channels: int, num_classes: int) -> OrderedDict[str, nn.Module]:
    pool = {1: nn.AdaptiveAvgPool1d, 2: nn.AdaptiveAvgPool2d}[dims](1)
    return OrderedDict([(f"global_average_pooling{dims}d", nn.Sequential(pool, nn.Flatten())),
                        ("dense", nn.Linear(channels, num_classes))])


def build_mnist1d_resnet(
    *, in_channels: int = 1, num_classes: int = 10, channels: int = 64,
    dilations: Sequence[int] = (1, 2, 4, 8),
) -> nn.Sequential:
    """A stem and one dilated residual block per dilation, global average pooling, dense.

    No layer downsamples, so every block keeps the signal's full length (a CAM at the last
    block is as fine as the input) while dilations 1-2-4-8 give the last block a receptive
    field of 65 samples, more than a 40-sample signal. Global pooling makes the network
    shift-tolerant, which MNIST-1D's randomly shifted digits reward. Any signal length works.
    """
    layers: OrderedDict[str, nn.Module] = OrderedDict()
    layers["stem"] = ConvBNReLU(1, in_channels, channels, 5)
    for i, d in enumerate(dilations):
        layers["res1d" if i == 0 else f"res1d_{i}"] = ResidualBlock(1, channels, channels,
                                                                    dilation=int(d))
    layers.update(_head(1, channels, num_classes))
    return nn.Sequential(layers)


def build_hmt_resnet(
    *, in_channels: int = 3, num_classes: int = 8, widths: Sequence[int] = (32, 64, 128, 256),
    stem_kernel: int = 5,
) -> nn.Sequential:
    """A ResNet-style stem (stride-2 conv, 2×2 max pooling), then one residual block per
    width, each after the first halving the grid; global average pooling; dense.

    At 128 px input the blocks see 32, 16, 8 and 4 px grids: a quarter of the work of
    running the blocks at 64 px, while the stem still sees the tile's fine texture (nuclei)
    that resizing the 150 px tiles to 64 px would blur away. Global average pooling makes
    it resolution-agnostic, like the study's VGG-7.
    """
    layers: OrderedDict[str, nn.Module] = OrderedDict()
    layers["stem"] = ConvBNReLU(2, in_channels, widths[0], stem_kernel, stride=2)
    layers["max_pooling2d"] = nn.MaxPool2d(2)
    prev = widths[0]
    for i, w in enumerate(widths):
        layers["res2d" if i == 0 else f"res2d_{i}"] = ResidualBlock(
            2, prev, int(w), stride=1 if i == 0 else 2)
        prev = int(w)
    layers.update(_head(2, prev, num_classes))
    return nn.Sequential(layers)
