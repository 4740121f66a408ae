"""Inference forwards: channels-last image batches give the same outputs, and models that
cannot take them fall back to the layout they were given."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from cnnlens.device import eval_mode, fast_forward, inference_rows, is_oom


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
        torch.testing.assert_close(fast_forward(model, x), model(x), rtol=1e-5, atol=1e-6)


def test_model_that_cannot_take_channels_last_falls_back_and_is_remembered() -> None:
    torch.manual_seed(0)
    model = _ViewHead().eval()
    x = torch.randn(3, 3, 8, 8)
    with torch.no_grad():
        want = model(x)
        model.calls = 0
        torch.testing.assert_close(fast_forward(model, x), want)
        assert model.calls == 2  # one failed channels-last try, one plain run
        fast_forward(model, x)
        assert model.calls == 3  # remembered: no second try


def test_signals_untouched_and_rows_sized_by_elements() -> None:
    model = nn.Sequential(nn.Conv1d(1, 2, 3), nn.Flatten()).eval()
    x = torch.randn(4, 1, 10)
    with torch.no_grad():
        assert torch.equal(fast_forward(model, x), model(x))
    assert inference_rows(torch.zeros(1000, 1, 40)) == 1000
    assert inference_rows(torch.zeros(496, 3, 224, 224)) == 3
    assert inference_rows(torch.zeros(1, 3, 2000, 2000)) == 1


def test_is_oom() -> None:
    assert is_oom(torch.cuda.OutOfMemoryError("CUDA out of memory"))
    assert is_oom(RuntimeError("DefaultCPUAllocator: can't allocate memory: out of memory"))
    assert not is_oom(RuntimeError("size mismatch"))


def _mixed_model() -> nn.Module:
    """Training model with a BatchNorm frozen in eval mode on purpose, and Dropout."""
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.Dropout(0.5),
                          nn.Flatten(), nn.LazyLinear(2))
    model(torch.rand(2, 3, 8, 8))
    model.train()
    model[1].eval()
    return model


def _flags(model: nn.Module) -> list[bool]:
    return [m.training for m in model.modules()]


def test_eval_mode_restores_each_modules_own_flag_even_after_an_error() -> None:
    model = _mixed_model()
    before = _flags(model)
    with eval_mode(model):
        assert not any(_flags(model))
    assert _flags(model) == before
    with pytest.raises(ZeroDivisionError), eval_mode(model):
        raise ZeroDivisionError
    assert _flags(model) == before


def test_every_inference_path_leaves_mixed_flags_as_found() -> None:
    """Evaluation, faithfulness scoring and CAMs all run in eval mode and give the model back
    with its frozen BatchNorm still frozen and the rest still training."""
    from torch.utils.data import TensorDataset

    from cnnlens.evaluate.predict import predict_proba
    from cnnlens.explain import cam
    from cnnlens.faithfulness.scoring import target_probs

    model = _mixed_model()
    before = _flags(model)
    x = torch.rand(4, 3, 8, 8)
    p1, _ = predict_proba(model, TensorDataset(x, torch.zeros(4, dtype=torch.long)))
    assert _flags(model) == before
    p2, _ = target_probs(model, x)
    assert _flags(model) == before
    cam(model, x, method="gradcam", layer="0")
    assert _flags(model) == before
    assert torch.allclose(torch.from_numpy(p1).float().max(dim=1).values, p2, atol=1e-6)
