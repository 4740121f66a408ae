"""Agreement with the reference libraries: pytorch-grad-cam (2-D) and Captum (1-D/2-D/3-D)."""

from __future__ import annotations

import copy
import types

import numpy as np
import pytest
import torch
from torch import nn

from cnnlens.explain import explain
from cnnlens.models import build_model
from peers_shim import PGC_CLASSES as ALL_PGC_CLASSES
from support import require

LAYER = "conv2d_3"

# Eigen-CAM's sign is free: it is compared separately, up to sign.
PGC_CLASSES = {k: v for k, v in ALL_PGC_CLASSES.items() if k != "eigencam"}


def _pgc_maps(
    pgc: types.ModuleType, name: str, model: nn.Module, x: torch.Tensor, targets: torch.Tensor
) -> np.ndarray:
    from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

    cls = getattr(pgc, PGC_CLASSES[name])
    with cls(model=model, target_layers=[model.get_submodule(LAYER)]) as extractor:
        return extractor(input_tensor=x, targets=[ClassifierOutputTarget(int(t)) for t in targets])


def _scaled_logits(model: nn.Module, factor: float) -> nn.Module:
    """The same network with logits × ``factor``.

    pytorch-grad-cam adds 1e-6 to Grad-CAM++'s denominator 2g² + Σ_S A·g³; at this model's
    logit gradients (|g| ~ 1e-3, g² ~ 1e-6) that constant changes α by tens of percent. With
    logits × 1000 it is negligible, so the comparison tests the formula, not the constant.
    """
    scaled = copy.deepcopy(model)
    with torch.no_grad():
        scaled.dense.weight.mul_(factor)
        scaled.dense.bias.mul_(factor)
    return scaled


@pytest.mark.parametrize("name", sorted(PGC_CLASSES))
def test_matches_pytorch_grad_cam(
    pgc: types.ModuleType, trained_vgg7: tuple[nn.Module, torch.Tensor], name: str
) -> None:
    model, x = trained_vgg7
    if name == "gradcampp":
        model = _scaled_logits(model, 1000.0)
    ours = explain(model, x, layer=LAYER, method=name)
    ref = _pgc_maps(pgc, name, model, x, ours.targets)
    assert ours.maps.shape == ref.shape
    diff = np.abs(ours.maps.numpy() - ref).max()
    assert diff <= 1e-4, f"{name}: max abs diff {diff:.2e}"


def test_gradcampp_follows_the_formula_at_small_gradients(
    trained_vgg7: tuple[nn.Module, torch.Tensor],
) -> None:
    """At the model's own (small) gradients, check Grad-CAM++ against DESIGN §5 directly."""
    model, x = trained_vgg7
    layer = model.get_submodule(LAYER)
    acts: list[torch.Tensor] = []
    handle = layer.register_forward_hook(lambda _m, _i, out: acts.append(out))
    try:
        logits = model(x)
    finally:
        handle.remove()
    targets = logits.argmax(dim=1)
    (g,) = torch.autograd.grad(logits.gather(1, targets[:, None]).sum(), acts[0])
    a = acts[0].detach().double()
    g = g.double()
    denom = 2 * g**2 + a.sum(dim=(2, 3), keepdim=True) * g**3
    alpha = torch.where(denom != 0, g**2 / denom, torch.zeros_like(denom))
    w = (alpha * g.clamp(min=0)).sum(dim=(2, 3))
    expected = torch.relu((w[:, :, None, None] * a).sum(dim=1))
    ours = explain(model, x, layer=LAYER, method="gradcampp", targets=targets)
    torch.testing.assert_close(ours.raw.double(), expected, rtol=1e-4, atol=1e-6 * expected.max())
    model.zero_grad(set_to_none=True)


def test_eigencam_matches_pytorch_grad_cam_projection_up_to_sign(
    pgc: types.ModuleType, trained_vgg7: tuple[nn.Module, torch.Tensor]
) -> None:
    """SVD fixes the component only up to sign; pytorch-grad-cam keeps whatever LAPACK gives."""
    from pytorch_grad_cam.utils.svd_on_activations import get_2d_projection

    model, x = trained_vgg7
    with torch.no_grad():
        acts = model[:5](x)  # up to and including conv2d_3
    ref = torch.from_numpy(get_2d_projection(acts.numpy()))
    ours = explain(model, x, layer=LAYER, method="eigencam", upsample=False, normalize=False)
    for i in range(x.shape[0]):
        best = min((ours.raw[i] - torch.relu(s * ref[i])).abs().max().item() for s in (1.0, -1.0))
        assert best <= 1e-4 * ref[i].abs().max().item(), f"sample {i}: {best:.2e}"


class _Conv3dNet(nn.Sequential):
    def __init__(self) -> None:
        torch.manual_seed(3)
        super().__init__(
            nn.Conv3d(2, 4, 3, padding=1), nn.ReLU(), nn.Conv3d(4, 6, 3, padding=1),
            nn.ReLU(), nn.AdaptiveAvgPool3d(1), nn.Flatten(), nn.Linear(6, 3),
        )  # fmt: skip


def _models() -> dict[str, tuple[nn.Module, torch.Tensor, str]]:
    torch.manual_seed(1)
    m1 = build_model("mnist1d-cnn").eval()
    m2 = build_model("hmt-vgg7").eval()
    m3 = _Conv3dNet().eval()
    return {
        "1d": (m1, torch.randn(5, 1, 40), "conv1d_2"),
        "2d": (m2, torch.rand(3, 3, 24, 24), "conv2d_3"),
        "3d": (m3, torch.randn(3, 2, 6, 7, 8), "3"),
    }


@pytest.mark.parametrize("dims", ["1d", "2d", "3d"])
@pytest.mark.parametrize("score", ["logit", "prob"])
def test_gradcam_matches_captum(dims: str, score: str) -> None:
    captum_layer = require("captum.attr").LayerGradCam
    model, x, layer = _models()[dims]
    ours = explain(model, x, layer=layer, method="gradcam", score=score)
    wrapped = nn.Sequential(model, nn.Softmax(dim=1)) if score == "prob" else model
    ref = (
        captum_layer(wrapped, model.get_submodule(layer))
        .attribute(x, target=ours.targets.tolist(), relu_attributions=True)[:, 0]
        .detach()
    )
    scale = ref.abs().max()
    assert scale > 0
    torch.testing.assert_close(ours.raw, ref, rtol=1e-4, atol=1e-5 * scale)
