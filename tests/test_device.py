"""Inference forwards: channels-last image batches give the same outputs, and models that
cannot take them fall back to the layout they were given."""

from __future__ import annotations

import torch
from torch import nn

from cnnlens.device import inference_forward, inference_rows, is_oom


class _ViewHead(nn.Module):
    """A conv net whose head flattens with ``view`` (fails on a channels-last tensor)."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, padding=1)
        self.fc = nn.Linear(4 * 8 * 8, 5)
        self.calls = 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.calls += 1
        h = self.conv(x)
        return self.fc(h.view(h.shape[0], -1))


def test_channels_last_images_score_like_nchw() -> None:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                          nn.Conv2d(8, 8, 3, padding=1), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                          nn.Linear(8, 4)).eval()
    x = torch.randn(5, 3, 16, 16)
    with torch.no_grad():
        torch.testing.assert_close(inference_forward(model, x), model(x), rtol=1e-5, atol=1e-6)


def test_model_that_cannot_take_channels_last_falls_back_and_is_remembered() -> None:
    torch.manual_seed(0)
    model = _ViewHead().eval()
    x = torch.randn(3, 3, 8, 8)
    with torch.no_grad():
        want = model(x)
        model.calls = 0
        torch.testing.assert_close(inference_forward(model, x), want)
        assert model.calls == 2  # one failed channels-last try, one plain run
        inference_forward(model, x)
        assert model.calls == 3  # remembered: no second try


def test_signals_untouched_and_rows_sized_by_elements() -> None:
    model = nn.Sequential(nn.Conv1d(1, 2, 3), nn.Flatten()).eval()
    x = torch.randn(4, 1, 10)
    with torch.no_grad():
        assert torch.equal(inference_forward(model, x), model(x))
    assert inference_rows(torch.zeros(1000, 1, 40)) == 1000
    assert inference_rows(torch.zeros(496, 3, 224, 224)) == 3
    assert inference_rows(torch.zeros(1, 3, 2000, 2000)) == 1


def test_is_oom() -> None:
    assert is_oom(torch.cuda.OutOfMemoryError("CUDA out of memory"))
    assert is_oom(RuntimeError("DefaultCPUAllocator: can't allocate memory: out of memory"))
    assert not is_oom(RuntimeError("size mismatch"))
