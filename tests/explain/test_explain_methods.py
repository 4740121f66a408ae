"""Method values: hand-computed maps, batch = per-sample, chunking, split vs hook fallback."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from cnnlens.explain import METHODS, explain
from cnnlens.models import build_model


def _tiny() -> nn.Sequential:
    """x (1, 1, 3) → A = [x, 2x] (two 1×1 conv channels) → logits; y0 = A[0,0] + A[1,2]."""
    conv = nn.Conv1d(1, 2, 1)
    dense = nn.Linear(6, 2)
    with torch.no_grad():
        conv.weight.copy_(torch.tensor([[[1.0]], [[2.0]]]))
        conv.bias.zero_()
        dense.weight.copy_(torch.tensor([[1.0, 0, 0, 0, 0, 1], [0, 1, 0, 0, 1, 0]]))
        dense.bias.zero_()
    return nn.Sequential(conv, nn.ReLU(), nn.Flatten(), dense)


# A0 = [1, 2, 3], A1 = [2, 4, 6], g0 = [1, 0, 0], g1 = [0, 0, 1], y = 7 for class 0.
HAND = {
    "gradcam": [1.0, 2.0, 3.0],  # w = [1/3, 1/3]
    "gradcampp": [1 / 8 + 2 / 14, 2 / 8 + 4 / 14, 3 / 8 + 6 / 14],  # α0 = 1/(2+6), α1 = 1/(2+12)
    "xgradcam": [1 / 6 + 1, 2 / 6 + 2, 3 / 6 + 3],  # w = [1/6, 6/12]
    "hirescam": [1.0, 0.0, 6.0],
    "layercam": [1.0, 0.0, 6.0],
    "ablationcam": [13 / 7, 26 / 7, 39 / 7],  # y_0 = 6, y_1 = 1: w = [1/7, 6/7]
}


@pytest.mark.parametrize("name", sorted(HAND))
def test_hand_computed_values(name: str) -> None:
    x = torch.tensor([[[1.0, 2.0, 3.0]]])
    res = explain(_tiny(), x, layer="1", method=name, targets=[0], normalize=False)
    torch.testing.assert_close(res.raw, torch.tensor([HAND[name]]))
    torch.testing.assert_close(res.scores, torch.tensor([7.0]))


def test_scorecam_hand_computed() -> None:
    # Masks: normalised A0 = normalised A1 = [0, .5, 1]; masked input [0, 1, 3] gives
    # y0 = 0 + 2*3 = 6 for both channels, so softmax weights are [1/2, 1/2].
    x = torch.tensor([[[1.0, 2.0, 3.0]]])
    res = explain(_tiny(), x, layer="1", method="scorecam", targets=[0], normalize=False)
    torch.testing.assert_close(res.raw, torch.tensor([[1.5, 3.0, 4.5]]))


@pytest.mark.parametrize("name", sorted(METHODS))
def test_batch_equals_per_sample(name: str, trained_vgg7: tuple[nn.Module, torch.Tensor]) -> None:
    model, x = trained_vgg7
    x = x[:3]
    batch = explain(model, x, layer="conv2d_3", method=name)
    singles = torch.cat(
        [explain(model, x[i : i + 1], layer="conv2d_3", method=name).maps for i in range(3)]
    )
    torch.testing.assert_close(batch.maps, singles, rtol=0, atol=1e-5)


@pytest.mark.parametrize("name", sorted(METHODS))
def test_chunked_equals_unchunked(name: str, trained_vgg7: tuple[nn.Module, torch.Tensor]) -> None:
    model, x = trained_vgg7
    big = explain(model, x, layer="conv2d_3", method=name, memory_budget_mb=1024)
    small = explain(model, x, layer="conv2d_3", method=name, memory_budget_mb=0.01, batch_size=2)
    torch.testing.assert_close(big.maps, small.maps, rtol=0, atol=1e-5)
    torch.testing.assert_close(big.raw, small.raw)


class _Wrapped(nn.Module):
    """A non-Sequential container: the engine cannot split it and must hook the layer."""

    def __init__(self, inner: nn.Sequential) -> None:
        super().__init__()
        self.inner = inner

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.inner(x)  # type: ignore[no-any-return]


@pytest.mark.parametrize("name", ["ablationcam", "gradcam"])
def test_split_and_hook_fallback_agree(
    name: str, trained_vgg7: tuple[nn.Module, torch.Tensor]
) -> None:
    model, x = trained_vgg7
    split = explain(model, x, layer="conv2d_3", method=name)
    hooked = explain(_Wrapped(model), x, layer="inner.conv2d_3", method=name)
    torch.testing.assert_close(split.raw, hooked.raw, rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("score", ["logit", "prob"])
def test_linear_head_shortcut_equals_rerunning_the_tail(score: str) -> None:
    """mnist1d-cnn's tail is Flatten → Linear: ablated logits come from W_k·A_k directly."""
    torch.manual_seed(0)
    model = build_model("mnist1d-cnn").eval()
    x = torch.randn(7, 1, 40)
    fast = explain(model, x, layer="conv1d_2", method="ablationcam", score=score)
    slow = explain(_Wrapped(model), x, layer="inner.conv1d_2", method="ablationcam", score=score)
    torch.testing.assert_close(fast.raw, slow.raw, rtol=1e-4, atol=1e-5 * slow.raw.max())


def test_nested_sequential_layer_splits(trained_vgg7: tuple[nn.Module, torch.Tensor]) -> None:
    """A layer inside a block (``conv2d_3.conv``, pre-ReLU) splits into the right tail."""
    model, x = trained_vgg7
    split = explain(model, x, layer="conv2d_3.conv", method="ablationcam")
    hooked = explain(_Wrapped(model), x, layer="inner.conv2d_3.conv", method="ablationcam")
    torch.testing.assert_close(split.raw, hooked.raw, rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("name", sorted(METHODS))
@pytest.mark.parametrize(
    ("shape", "spatial_dims"), [((2, 1, 12), 1), ((2, 1, 10, 12), 2), ((2, 1, 4, 6, 8), 3)]
)
def test_every_method_every_rank(name: str, shape: tuple[int, ...], spatial_dims: int) -> None:
    torch.manual_seed(0)
    conv = {1: nn.Conv1d, 2: nn.Conv2d, 3: nn.Conv3d}[spatial_dims]
    pool = {1: nn.MaxPool1d, 2: nn.MaxPool2d, 3: nn.MaxPool3d}[spatial_dims]
    model = nn.Sequential(
        conv(1, 4, 3, padding=1), nn.ReLU(), pool(2), conv(4, 5, 3, padding=1), nn.ReLU(),
        nn.Flatten(), nn.LazyLinear(3),
    )  # fmt: skip
    x = torch.randn(*shape)
    model(x)  # materialise the lazy layer
    res = explain(model, x, layer="4", method=name)
    assert res.maps.shape == (2, *shape[2:])
    assert res.raw.shape == (2, *(s // 2 for s in shape[2:]))
    assert torch.isfinite(res.maps).all()
    assert res.maps.min() >= 0 and res.maps.max() <= 1
    assert res.targets.tolist() == res.predicted.tolist()


def _net_with_tail(kind: str) -> nn.Sequential:
    """Tails for each Ablation-CAM path: BN first (no shortcut), pool then conv (prefix)."""
    torch.manual_seed(4)
    head = [nn.Conv2d(3, 6, 3, padding=1), nn.ReLU(), nn.Conv2d(6, 6, 3, padding=1)]
    tails = {
        "batchnorm": [nn.BatchNorm2d(6), nn.ReLU()],
        "pool-conv": [nn.ReLU(), nn.MaxPool2d(2), nn.Conv2d(6, 5, 3, padding=1), nn.ReLU()],
    }
    model = nn.Sequential(
        *head,
        *tails[kind],
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(6 if kind == "batchnorm" else 5, 4),
    )
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.running_mean.uniform_(-0.5, 0.5)
                m.bias.uniform_(-0.5, 0.5)
    return model.eval()


@pytest.mark.parametrize("kind", ["batchnorm", "pool-conv"])
@pytest.mark.parametrize("budget", [1024.0, 0.001])
def test_ablation_tail_paths_match_the_hook_fallback(kind: str, budget: float) -> None:
    model = _net_with_tail(kind)
    x = torch.randn(3, 3, 8, 8, generator=torch.Generator().manual_seed(5))
    split = explain(model, x, layer="2", method="ablationcam", memory_budget_mb=budget)
    hooked = explain(_Wrapped(model), x, layer="inner.2", method="ablationcam")
    torch.testing.assert_close(split.raw, hooked.raw, rtol=1e-4, atol=1e-5 * hooked.raw.max())
    assert split.raw.max() > 0


def test_gradcampp_zero_denominator_gives_zero_weight() -> None:
    """2g² + Σ_S A·g³ = 0 (possible when Σ_S A < 0): α = 0 there, never inf or NaN."""
    from cnnlens.explain.context import LayerContext
    from cnnlens.explain.methods import gradcampp

    a = torch.tensor([[[-1.0, -1.0], [1.0, 2.0]]])  # channel 0: Σ A = -2
    g = torch.tensor([[[1.0, 0.0], [0.5, 0.0]]])  # channel 0, pos 0: 2 + (-2)(1) = 0
    ctx = LayerContext(a, a, g, torch.zeros(1, 2), torch.zeros(1, dtype=torch.long),
                       torch.zeros(1), engine=None)  # type: ignore[arg-type]  # fmt: skip
    w1 = 0.5 / (2 + 3 * 0.5)  # channel 1: α·ReLU(g) = g / (2 + Σ A·g)
    torch.testing.assert_close(gradcampp(ctx), torch.tensor([[w1 * 1.0, w1 * 2.0]]))
