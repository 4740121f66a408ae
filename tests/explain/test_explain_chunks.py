"""Chunk planning: calls that skip the probe still halve a chunk that runs out of memory."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from cnnlens.explain import explain
from cnnlens.models import build_model


class _OomAbove(nn.Sequential):
    """mnist1d-cnn that raises a CUDA out-of-memory error for batches above ``limit``."""

    def __init__(self, limit: int) -> None:
        torch.manual_seed(0)
        super().__init__(*build_model("mnist1d-cnn").children())
        self.limit = limit
        self.batches: list[int] = []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.batches.append(x.shape[0])
        if x.shape[0] > self.limit:
            raise torch.cuda.OutOfMemoryError("CUDA out of memory (injected)")
        return super().forward(x)


def _x() -> torch.Tensor:
    return torch.randn(100, 1, 40, generator=torch.Generator().manual_seed(0))


# gradcam runs one chunk without the probe; ablationcam probes (its extra passes need a plan).
@pytest.mark.parametrize("method", ["gradcam", "ablationcam"])
def test_first_chunk_out_of_memory_is_halved(method: str) -> None:
    ref = explain(_OomAbove(10**6).eval(), _x(), layer="2", method=method)
    model = _OomAbove(30).eval()
    got = explain(model, _x(), layer="2", method=method)
    assert model.batches[:3] == [100, 50, 25]  # the first chunk, halved until it fits
    if method == "gradcam":
        assert model.batches[3:] == [25, 25, 25]  # later chunks keep the size that fitted
    torch.testing.assert_close(got.maps, ref.maps, rtol=1e-4, atol=1e-5)
    assert torch.equal(got.targets, ref.targets)


def test_out_of_memory_on_one_sample_is_raised() -> None:
    with pytest.raises(torch.cuda.OutOfMemoryError):
        explain(_OomAbove(0).eval(), _x(), layer="2", method="gradcam")
