"""Fixtures for the CAM tests: a non-degenerate trained VGG-7 (``pgc`` is in tests/conftest.py)."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from cnnlens.models import build_model


def _structured_images(
    n: int, size: int, generator: torch.Generator
) -> tuple[torch.Tensor, torch.Tensor]:
    """Class c = a bright square in cell c of a 3×3 grid (colour varies), plus noise."""
    y = torch.randint(0, 8, (n,), generator=generator)
    x = 0.3 * torch.rand(n, 3, size, size, generator=generator)
    cell = size // 3
    for i, c in enumerate(y.tolist()):
        r, col = divmod(c, 3)
        colour = torch.rand(3, 1, 1, generator=generator) * 0.7 + 0.3
        x[i, :, r * cell : (r + 1) * cell, col * cell : (col + 1) * cell] += colour
    return x, y


@pytest.fixture(scope="session")
def trained_vgg7() -> tuple[nn.Module, torch.Tensor]:
    """A briefly trained VGG-7 and 6 held-out 32 px images (see :func:`make_trained_vgg7`)."""
    return make_trained_vgg7()


def make_trained_vgg7() -> tuple[nn.Module, torch.Tensor]:
    """A VGG-7 trained briefly at 32 px on structured data, and 6 held-out images.

    Random-init nets give nearly identical channel maps, which lets a wrong formula agree
    with a reference; a few training steps make channels differ.
    """
    torch.manual_seed(0)
    g = torch.Generator().manual_seed(0)
    model = build_model("hmt-vgg7")
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    for _ in range(30):
        x, y = _structured_images(32, 32, g)
        opt.zero_grad()
        nn.functional.cross_entropy(model(x), y).backward()
        opt.step()
    model.eval()
    model.zero_grad(set_to_none=True)
    x, _ = _structured_images(6, 32, g)
    return model, x
