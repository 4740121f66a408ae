"""Torch modules for what a Keras graph needs and torch lacks, and the graph module itself
(:mod:`cnnlens.models.keras_graph` builds it from a file)."""

from __future__ import annotations

import math
from typing import Any, NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

Shape = tuple[int | None, ...]  # channels-first, without the batch axis
Key = tuple[str, int, int]  # a Keras tensor: (layer name, node index, tensor index)


def pool_size(value: tuple[int, ...]) -> Any:
    """A per-axis size for torch (whose stubs want a fixed-length tuple per dimensionality)."""
    return value


# -- torch modules for what torch lacks ----------------------------------------------------
class SamePad(nn.Module):
    """TF ``same`` padding, computed from the input size at run time.

    TF pads ``total = max((ceil(n/s) - 1) * s + (k - 1) * d + 1 - n, 0)`` per axis, half
    (rounded down) before and the rest after; with a stride that depends on ``n``, and for
    even kernels torch's ``padding="same"`` would copy the input, so it is done here.
    """

    def __init__(self, kernel: tuple[int, ...], stride: tuple[int, ...],
                 dilation: tuple[int, ...], value: float = 0.0) -> None:
        super().__init__()
        self.kernel, self.stride, self.dilation, self.value = kernel, stride, dilation, value

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pads: list[int] = []
        for n, k, s, d in reversed(list(zip(x.shape[2:], self.kernel, self.stride,
                                            self.dilation, strict=True))):
            total = max((math.ceil(n / s) - 1) * s + (k - 1) * d + 1 - n, 0)
            pads += [total // 2, total - total // 2]
        return F.pad(x, pads, value=self.value)

    def extra_repr(self) -> str:
        return f"kernel={self.kernel}, stride={self.stride}, dilation={self.dilation}"


class AvgPoolSame(nn.Module):
    """Average pooling with TF ``same`` padding: padded cells are left out of each mean."""

    def __init__(self, pool: tuple[int, ...], stride: tuple[int, ...]) -> None:
        super().__init__()
        self.pad = SamePad(pool, stride, (1,) * len(pool))
        pool_class = nn.AvgPool1d if len(pool) == 1 else nn.AvgPool2d
        self.pool = pool_class(pool_size(pool), pool_size(stride))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        ones = torch.ones_like(x[:1, :1])
        return self.pool(self.pad(x)) / self.pool(self.pad(ones))


class ChannelsLastFlatten(nn.Module):
    """Keras' Flatten order ``(*spatial, C)``, for a Flatten whose output is not only Dense
    input (there, the Dense rows are permuted instead and a plain ``nn.Flatten`` is used)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.movedim(1, -1).flatten(1)


class KerasReshape(nn.Module):
    """Keras ``Reshape(target)``: reshaped in channels-last order, then channels first."""

    def __init__(self, target: tuple[int, ...]) -> None:
        super().__init__()
        self.target = target

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = x.movedim(1, -1).reshape(x.shape[0], *self.target)
        return y.movedim(-1, 1) if y.dim() > 2 else y

    def extra_repr(self) -> str:
        return f"target={self.target}"


class ChannelsDense(nn.Linear):
    """A Dense on a tensor with spatial axes: Keras applies it to the channel (last) axis."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(x.movedim(1, -1)).movedim(-1, 1)


class KerasReLU(nn.Module):
    """Keras ``ReLU(max_value, negative_slope, threshold)`` when any differs from plain ReLU."""

    def __init__(self, max_value: float | None, negative_slope: float, threshold: float) -> None:
        super().__init__()
        self.max_value, self.negative_slope, self.threshold = max_value, negative_slope, threshold

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = torch.where(x >= self.threshold, x, self.negative_slope * (x - self.threshold))
        return y if self.max_value is None else y.clamp(max=self.max_value)


class Merge(nn.Module):
    """Keras' element-wise merge layers (Add, Subtract, Multiply, Average, Maximum, Minimum)."""

    def __init__(self, op: str) -> None:
        super().__init__()
        self.op = op

    def forward(self, *xs: torch.Tensor) -> torch.Tensor:
        if self.op == "Subtract":
            return xs[0] - xs[1]
        out = xs[0]
        for x in xs[1:]:
            if self.op in ("Add", "Average"):
                out = out + x
            elif self.op == "Multiply":
                out = out * x
            else:
                out = torch.maximum(out, x) if self.op == "Maximum" else torch.minimum(out, x)
        return out / len(xs) if self.op == "Average" else out

    def extra_repr(self) -> str:
        return self.op


class Concat(nn.Module):
    """Keras ``Concatenate`` along the torch axis its Keras axis maps to."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.dim = dim

    def forward(self, *xs: torch.Tensor) -> torch.Tensor:
        return torch.cat(xs, self.dim)

    def extra_repr(self) -> str:
        return f"dim={self.dim}"


class Step(NamedTuple):
    """One call of a Keras layer: which submodule, on which tensors, giving which tensor."""

    layer: str
    inputs: tuple[Key, ...]
    output: Key


class KerasGraph(nn.Module):
    """A functional Keras model: submodules named as the Keras layers, run in graph order."""

    def __init__(self, modules: dict[str, nn.Module], steps: list[Step], inp: Key,
                 out: Key) -> None:
        super().__init__()
        for name, module in modules.items():
            self.add_module(name, module)
        self.steps, self.inp, self.out = steps, inp, out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        values = {self.inp: x}
        for step in self.steps:
            module = self._modules[step.layer]
            assert module is not None
            values[step.output] = module(*(values[k] for k in step.inputs))
        return values[self.out]


