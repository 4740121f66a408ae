"""The reference CAM libraries, called the way their docs show, for side-by-side timing.

pytorch-grad-cam 1.5.7 imports torchvision only in helper modules its CAM classes never use;
:func:`install_torchvision_standin` puts a stand-in in ``sys.modules`` of *this* process so
it imports without torchvision (DESIGN §8). Each runner returns maps at input resolution.
"""

from __future__ import annotations

import os
import sys
from collections import OrderedDict
from collections.abc import Callable
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from peers_shim import PGC_CLASSES, torchvision_standin

Runner = Callable[[nn.Module, Tensor, str], object]


def install_torchvision_standin() -> None:
    """Register a fake ``torchvision`` whose helpers raise if anything calls them."""
    os.environ["TQDM_DISABLE"] = "1"
    try:
        import torchvision  # noqa: F401

        return
    except ImportError:
        pass

    sys.modules.update(torchvision_standin())


class _Squeeze(nn.Module):
    def forward(self, x: Tensor) -> Tensor:
        return x.squeeze(2)


class _Unsqueeze(nn.Module):
    def forward(self, x: Tensor) -> Tensor:
        return x.unsqueeze(2)


def as_2d(model: nn.Sequential, layer: str) -> tuple[nn.Sequential, str]:
    """Wrap a flat 1-D Sequential so pytorch-grad-cam sees (N, C, 1, L) at ``layer``.

    pytorch-grad-cam rejects 1-D inputs; this wrapper (input (N, C, 1, L), a 2-D view of the
    layer's output as target) is how its methods run on ``mnist1d-cnn`` at all.
    """
    children = list(model.named_children())
    idx = [n for n, _ in children].index(layer)
    mods: list[tuple[str, nn.Module]] = [("squeeze_in", _Squeeze())]
    mods += children[: idx + 1]
    mods += [("as2d", _Unsqueeze()), ("squeeze_out", _Squeeze())]
    mods += children[idx + 1 :]
    return nn.Sequential(OrderedDict(mods)), "as2d"


def _upsample(maps: Tensor, size: tuple[int, ...]) -> Tensor:
    mode = {1: "linear", 2: "bilinear", 3: "trilinear"}[len(size)]
    return F.interpolate(maps[:, None], size=size, mode=mode, align_corners=False)[:, 0]


def pgc_runner(cls_name: str, one_d: bool) -> Runner:
    """pytorch-grad-cam: ``with Method(model, [layer]) as cam: cam(input_tensor=x)``."""
    import pytorch_grad_cam

    cls = getattr(pytorch_grad_cam, cls_name)

    def run(model: nn.Module, x: Tensor, layer: str) -> object:
        if one_d:
            model, layer = as_2d(model, layer)  # type: ignore[arg-type]
            x = x.unsqueeze(2)
        with cls(model=model, target_layers=[model.get_submodule(layer)]) as cam:
            return cam(input_tensor=x, targets=None)

    return run


def torchcam_runner(cls_name: str) -> Runner:
    """torch-cam: hook, forward, ``extractor(class_idx, scores)``, then upsample."""
    from torchcam import methods

    cls = getattr(methods, cls_name)
    gradient_free = cls_name == "ScoreCAM"

    def run(model: nn.Module, x: Tensor, layer: str) -> object:
        kwargs = {"batch_size": 32} if gradient_free else {}
        with cls(model, layer, input_shape=tuple(x.shape[1:]), **kwargs) as extractor:
            if gradient_free:
                with torch.no_grad():
                    out = model(x)
            else:
                out = model(x)
            maps = extractor(out.argmax(dim=1).tolist(), out)[0]
        model.zero_grad(set_to_none=True)
        return _upsample(maps, tuple(x.shape[2:]))

    return run


def captum_runner(targets: list[int]) -> Runner:
    """Captum ``LayerGradCam`` (targets given: it needs them up front), then upsample."""
    from captum.attr import LayerGradCam

    def run(model: nn.Module, x: Tensor, layer: str) -> object:
        attr = LayerGradCam(model, model.get_submodule(layer)).attribute(
            x, target=targets, relu_attributions=True
        )
        model.zero_grad(set_to_none=True)
        return _upsample(attr[:, 0].detach(), tuple(x.shape[2:]))

    return run


PGC = PGC_CLASSES
TORCHCAM = {
    "gradcam": "GradCAM",
    "gradcampp": "GradCAMpp",
    "xgradcam": "XGradCAM",
    "layercam": "LayerCAM",
    "scorecam": "ScoreCAM",
}
