"""Ablation-CAM on models that are not ``nn.Sequential``: the traced graph is cut at the layer.

A torchvision-style ResNet-18 (residual connections skip over the layer) and the same network
converted from ONNX by onnx2torch (a ``torch.fx.GraphModule``) must give the maps of whole
forward passes, while calling the whole model once per chunk of samples instead of once per
ablated channel.
"""

from __future__ import annotations

import importlib.util
import math
import warnings
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest
import torch
from torch import Tensor, fx, nn

import cnnlens.explain.engine as engine_module
from cnnlens.errors import CnnlensError
from cnnlens.explain import explain, explain_methods
from cnnlens.explain.tail import GraphTail, graph_tail
from support import require, unavailable

REF = Path(__file__).resolve().parents[1] / "models" / "resnet_ref.py"
RESNET_LAYERS = ("conv1", "layer1.0.bn1", "layer2.0.downsample.1", "layer3.1", "layer4.1.conv1",
                 "layer4.1.bn2", "layer4")
ONNX_LAYERS = ("conv1/Conv", "layer2/layer2/0/downsample/downsample/0/Conv",
               "layer4/layer4/1/conv2/Conv", "layer4/layer4/1/relu_1/Relu")
TOL = 1e-5


def _resnet_ref() -> ModuleType:
    """tests/models/resnet_ref.py, loaded from its path (it is not on this folder's path)."""
    spec = importlib.util.spec_from_file_location("resnet_ref_for_tail", REF)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _randomised(net: nn.Module) -> nn.Module:
    """Non-trivial BatchNorm statistics (the ONNX export also needs them distinct)."""
    with torch.no_grad():
        for bn in (m for m in net.modules() if isinstance(m, nn.BatchNorm2d)):
            bn.running_mean.uniform_(-0.5, 0.5)
            bn.running_var.uniform_(0.5, 1.5)
            bn.weight.uniform_(0.5, 1.5)
            bn.bias.uniform_(-0.2, 0.2)
    return net.eval()


@pytest.fixture(scope="module")
def resnet() -> nn.Module:
    torch.manual_seed(0)
    return _randomised(_resnet_ref().build())


@pytest.fixture(scope="module")
def inplace_resnet() -> nn.Module:
    """torchvision's own block: ``out += identity`` in place, then an in-place ReLU."""
    ref = _resnet_ref()

    class InplaceBlock(ref.BasicBlock):  # type: ignore[name-defined,misc]
        def forward(self, x: Tensor) -> Tensor:
            identity = x
            out = self.relu(self.bn1(self.conv1(x)))
            out = self.bn2(self.conv2(out))
            if self.downsample is not None:
                identity = self.downsample(x)
            out += identity
            return self.relu(out)

    torch.manual_seed(1)
    net = ref.build()
    for block in net.modules():
        if isinstance(block, ref.BasicBlock):
            block.__class__ = InplaceBlock
    return _randomised(net)


@pytest.fixture(scope="module")
def x() -> Tensor:
    return torch.randn(3, 3, 64, 64, generator=torch.Generator().manual_seed(2))


@pytest.fixture(scope="module")
def onnx_resnet(tmp_path_factory: pytest.TempPathFactory, resnet: nn.Module,
                x: Tensor) -> nn.Module:
    """The ResNet exported to ONNX and converted back by onnx2torch (a GraphModule)."""
    require("onnx")
    from cnnlens.models.load import load
    from cnnlens.models.onnx_import import import_onnx2torch

    try:
        import_onnx2torch()
    except CnnlensError as exc:
        unavailable(str(exc))
    path = tmp_path_factory.mktemp("onnx") / "resnet.onnx"
    with warnings.catch_warnings():  # the TorchScript-based exporter is deprecated
        warnings.simplefilter("ignore")
        torch.onnx.export(resnet, (x,), str(path), dynamo=False, input_names=["x"],
                          output_names=["logits"], dynamic_axes={"x": {0: "batch"}})
    module = load(path).module
    assert isinstance(module, fx.GraphModule)
    return module


@pytest.fixture
def whole_passes(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """The engine as before the graph cut: ablated copies run through the whole model."""
    monkeypatch.setattr(engine_module, "graph_tail", lambda *_a: "disabled by the test")
    yield


def _layer_output(model: nn.Module, layer: str, x: Tensor) -> tuple[Tensor, Tensor]:
    out: list[Tensor] = []
    handle = model.get_submodule(layer).register_forward_hook(
        lambda _m, _i, o: out.append(o.clone()))
    try:
        with torch.no_grad():
            logits = model(x)
    finally:
        handle.remove()
    return out[0], logits


def _check_tail(model: nn.Module, layer: str, x: Tensor) -> GraphTail:
    cut = graph_tail(model, layer, model.get_submodule(layer))
    assert isinstance(cut, GraphTail), cut
    acts, logits = _layer_output(model, layer, x)
    saved = cut.saved(x)
    assert not isinstance(saved, str), saved
    with torch.no_grad():
        out = cut.tail(acts, *saved)
    assert (out - logits).abs().max() <= TOL * logits.abs().max()
    return cut


@pytest.mark.parametrize("layer", RESNET_LAYERS)
def test_tail_reproduces_the_resnet(resnet: nn.Module, x: Tensor, layer: str) -> None:
    cut = _check_tail(resnet, layer, x)
    # Inside a block, the tail also needs the block's identity from before the cut.
    assert bool(cut.saved_names) == (layer in ("layer1.0.bn1", "layer2.0.downsample.1",
                                               "layer4.1.conv1", "layer4.1.bn2"))


@pytest.mark.parametrize("layer", ["layer4.1.bn2", "layer2.0.conv1", "layer3"])
def test_tail_reproduces_inplace_residual_adds(inplace_resnet: nn.Module, x: Tensor,
                                               layer: str) -> None:
    _check_tail(inplace_resnet, layer, x)


@pytest.mark.parametrize("layer", ONNX_LAYERS)
def test_tail_reproduces_the_onnx_graph(onnx_resnet: nn.Module, x: Tensor, layer: str) -> None:
    cut = _check_tail(onnx_resnet, layer, x)
    assert bool(cut.saved_names) == ("conv2" in layer or "downsample" in layer)


def _count_calls(model: nn.Module) -> tuple[list[int], torch.utils.hooks.RemovableHandle]:
    calls: list[int] = []
    return calls, model.register_forward_hook(lambda _m, i, _o: calls.append(i[0].shape[0]))


def _close(a: Tensor, b: Tensor) -> bool:
    return bool((a - b).abs().max() <= TOL * max(float(b.abs().max()), 1e-12))


def _ablation_rounding_bound(model: nn.Module, layer: str, x: Tensor, targets: Tensor
                             ) -> Tensor:
    """How far two float32 evaluations of the same Ablation-CAM can differ per position.

    The cut and the whole passes compute each ablated score ``y_k`` with different kernels
    (chunk sizes, memory layouts), so each ``y_k`` and ``y`` may round differently by up to
    ``TOL`` of the logit scale; the weight ``(y - y_k) / y`` then moves by twice that over
    ``|y|``, and the map ``sum_k w_k A_k`` by that times ``sum_k |A_k|``. A wrong channel
    or sample moves it by the size of the map itself, far above this bound.
    """
    acts, logits = _layer_output(model, layer, x)
    y = logits.gather(1, targets[:, None]).abs().view(-1, *[1] * (acts.dim() - 2))
    scale = logits.abs().max()
    return 2 * TOL * scale / y * acts.abs().sum(1)


def _ablation_both_ways(model: nn.Module, layer: str, x: Tensor,
                        monkeypatch: pytest.MonkeyPatch, **kwargs: float) -> None:
    calls, handle = _count_calls(model)
    try:
        cut = explain(model, x, layer=layer, method="ablationcam", **kwargs)
        cut_calls = list(calls)
        calls.clear()
        with monkeypatch.context() as patch:
            patch.setattr(engine_module, "graph_tail", lambda *_a: "disabled by the test")
            whole = explain(model, x, layer=layer, method="ablationcam", **kwargs)
    finally:
        handle.remove()
    bound = _ablation_rounding_bound(model, layer, x, cut.targets)
    assert bool(((cut.raw - whole.raw).abs() <= bound).all()), float(
        ((cut.raw - whole.raw).abs() / bound).max())
    # the maps are the raw maps min-max scaled per sample (after ReLU): a change of at most
    # the bound in raw moves them by at most twice the bound over the sample's range
    span = whole.raw.flatten(1).amax(1) - whole.raw.flatten(1).amin(1).clamp_min(0)
    map_bound = 2 * bound.flatten(1).amax(1) / span.clamp_min(1e-12)
    assert bool(((cut.maps - whole.maps).abs().flatten(1).amax(1) <= map_bound).all())
    assert torch.equal(cut.targets, whole.targets)
    k = _layer_output(model, layer, x[:1])[0].shape[1]
    # The cut runs the whole model once per chunk of samples (the capture pass) ...
    assert sum(cut_calls) == x.shape[0]
    # ... whole passes run every ablated copy through it (batched, not one call per copy).
    assert sum(calls) == x.shape[0] * (k + 1)
    if not kwargs:  # at the default memory budget, in a few large batches
        assert len(calls) < x.shape[0] * k / 4


@pytest.mark.parametrize("layer", ["layer4.1.bn2", "layer4.1.conv1", "layer3", "layer4"])
def test_ablationcam_resnet_cut_equals_whole_passes(
    resnet: nn.Module, x: Tensor, layer: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    _ablation_both_ways(resnet, layer, x, monkeypatch)


def test_ablationcam_cut_in_small_chunks(resnet: nn.Module, x: Tensor,
                                         monkeypatch: pytest.MonkeyPatch) -> None:
    """Chunks of samples and of copies that split samples apart: the saved identity follows."""
    _ablation_both_ways(resnet, "layer4.1.bn2", x, monkeypatch, memory_budget_mb=0.01)


def test_ablationcam_inplace_resnet(inplace_resnet: nn.Module, x: Tensor,
                                    monkeypatch: pytest.MonkeyPatch) -> None:
    _ablation_both_ways(inplace_resnet, "layer4.1.bn2", x, monkeypatch)


@pytest.mark.parametrize("layer", ["layer4/layer4/1/conv2/Conv", "layer3/layer3/1/relu_1/Relu"])
def test_ablationcam_onnx_cut_equals_whole_passes(
    onnx_resnet: nn.Module, x: Tensor, layer: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    _ablation_both_ways(onnx_resnet, layer, x, monkeypatch)


def _scorecam_by_hand(model: nn.Module, layer: str, x: Tensor) -> Tensor:
    """Score-CAM from its definition: one forward per masked input (DESIGN §5)."""
    acts, logits = _layer_output(model, layer, x)
    n, k = acts.shape[:2]
    targets = logits.argmax(dim=1)
    maps = nn.functional.interpolate(acts, size=x.shape[2:], mode="bilinear",
                                     align_corners=True)
    scores = torch.empty(n, k)
    with torch.no_grad():
        for i in range(n):
            for c in range(k):
                m = maps[i, c]
                span = m.max() - m.min()
                mask = (m - m.min()) / span if span > 0 else torch.zeros_like(m)
                scores[i, c] = model((x[i] * mask)[None])[0, targets[i]]
    weights = torch.softmax(scores, dim=1)
    return torch.relu(torch.einsum("nk,nkhw->nhw", weights, acts))


@pytest.mark.parametrize("kind", ["resnet", "onnx"])
def test_scorecam_on_graph_models_is_batched_and_exact(
    request: pytest.FixtureRequest, x: Tensor, kind: str
) -> None:
    """Score-CAM masks the *input*, so every copy is a whole pass: batched ones."""
    model = request.getfixturevalue("resnet" if kind == "resnet" else "onnx_resnet")
    layer = "layer4" if kind == "resnet" else "layer4/layer4/1/relu_1/Relu"
    calls, handle = _count_calls(model)
    try:
        result = explain(model, x[:2], layer=layer, method="scorecam")
    finally:
        handle.remove()
    k = _layer_output(model, layer, x[:1])[0].shape[1]
    assert sum(calls) == 2 * (k + 1) and len(calls) <= 1 + math.ceil(2 * k / 8)
    ref = _scorecam_by_hand(model, layer, x[:2])
    assert _close(result.raw, ref)


def test_methods_together_share_the_capture(resnet: nn.Module, x: Tensor) -> None:
    """Ablation-CAM beside gradient methods (a capture with gradients) gives its own maps."""
    both = explain_methods(resnet, x, layer="layer4.1.bn2", methods=["gradcam", "ablationcam"])
    alone = explain(resnet, x, layer="layer4.1.bn2", method="ablationcam")
    assert _close(both["ablationcam"].raw, alone.raw)


def test_model_state_and_hooks_left_as_found(inplace_resnet: nn.Module, x: Tensor) -> None:
    model = inplace_resnet
    model.train()
    first = next(model.parameters())
    first.requires_grad_(False)
    grad = torch.ones_like(model.fc.weight)
    model.fc.weight.grad = grad
    stats = model.bn1.running_mean.clone()
    try:
        explain(model, x, layer="layer4.1.bn2", method="ablationcam")
        assert all(m.training for m in model.modules())
        assert not first.requires_grad
        assert all(p.requires_grad for p in model.parameters() if p is not first)
        assert model.fc.weight.grad is grad
        assert torch.equal(model.bn1.running_mean, stats)
        for m in model.modules():
            assert not (m._forward_hooks or m._forward_pre_hooks or m._backward_hooks)
    finally:
        model.eval()
        first.requires_grad_(True)
        model.fc.weight.grad = None


class _Branchy(nn.Module):
    """Python control flow on tensor values: torch.fx cannot trace it."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 6, 3, padding=1)
        self.relu = nn.ReLU(inplace=True)
        self.fc = nn.Linear(6, 4)

    def forward(self, x: Tensor) -> Tensor:
        h = self.relu(self.conv(x))
        if bool(h.mean() > -1):
            h = h * 2
        return self.fc(h.mean(dim=(2, 3)))


class _BatchFromInput(nn.Module):
    """The tail reshapes with ``x.shape[0]`` read before the layer: not a per-sample tensor."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 6, 3, padding=1)
        self.pool = nn.AdaptiveAvgPool2d(2)
        self.fc = nn.Linear(24, 4)

    def forward(self, x: Tensor) -> Tensor:
        b = x.shape[0]
        return self.fc(self.pool(torch.relu(self.conv(x))).reshape(b, -1))


def test_untraceable_models_fall_back_to_batched_whole_passes(x: Tensor) -> None:
    torch.manual_seed(0)
    branchy, shaped = _Branchy().eval(), _BatchFromInput().eval()
    refused = graph_tail(branchy, "conv", branchy.conv)
    assert isinstance(refused, str) and "cannot trace" in refused
    cut = graph_tail(shaped, "conv", shaped.conv)
    assert isinstance(cut, GraphTail) and isinstance(cut.saved(x), str)
    for model in (branchy, shaped):
        calls, handle = _count_calls(model)
        try:
            result = explain(model, x, layer="conv", method="ablationcam")
        finally:
            handle.remove()
        assert result.maps.shape == (3, 64, 64)
        assert sum(calls) == 3 * (6 + 1) and len(calls) == 2  # capture + one batched pass


def test_a_tail_that_disagrees_with_the_model_is_not_used(
    resnet: nn.Module, x: Tensor, monkeypatch: pytest.MonkeyPatch, whole_passes: None
) -> None:
    expected = explain(resnet, x, layer="layer4.1.bn2", method="ablationcam")
    good = graph_tail(resnet, "layer4.1.bn2", resnet.get_submodule("layer4.1.bn2"))
    assert isinstance(good, GraphTail)

    class Shifted(nn.Module):
        def forward(self, *args: Tensor) -> Tensor:
            return good.tail(*args) + 0.5

    wrong = GraphTail(head=good.head, tail=Shifted(), saved_names=good.saved_names)  # type: ignore[arg-type]
    monkeypatch.setattr(engine_module, "graph_tail", lambda *_a: wrong)
    got = explain(resnet, x, layer="layer4.1.bn2", method="ablationcam")
    assert _close(got.raw, expected.raw)


def test_pt2_unflattened_module_keeps_batched_whole_passes(
    tmp_path: Path, resnet: nn.Module, x: Tensor
) -> None:
    """``torch.export.unflatten``'s module flattens its arguments, which torch.fx cannot
    trace: Ablation-CAM runs its copies through the whole model, in batches."""
    from cnnlens.models.load import load

    path = tmp_path / "resnet.pt2"
    program = torch.export.export(resnet, (x,), dynamic_shapes=({0: torch.export.Dim.DYNAMIC},))
    torch.export.save(program, path)
    with warnings.catch_warnings():  # torch.export.load's own FutureWarning (pytree)
        warnings.simplefilter("ignore", FutureWarning)
        model = load(path).module
    refused = graph_tail(model, "layer4.1.bn2", model.get_submodule("layer4.1.bn2"))
    assert isinstance(refused, str) and "cannot trace" in refused
    calls, handle = _count_calls(model)
    try:
        got = explain(model, x, layer="layer4.1.bn2", method="ablationcam")
    finally:
        handle.remove()
    assert len(calls) == 2  # the capture, then all 3 × 64 copies in one batch
    assert _close(got.raw, explain(resnet, x, layer="layer4.1.bn2", method="ablationcam").raw)
