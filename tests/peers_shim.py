"""Names and import shims for the reference CAM libraries (tests and benchmarks only).

pytorch-grad-cam 1.5.7 imports torchvision in three helper modules its CAM classes never
use (DESIGN §8); :func:`torchvision_standin` builds modules whose helpers raise if anything
calls them, so it imports without the multi-GB torchvision. Nothing here runs at import.
"""

from __future__ import annotations

import types
from collections.abc import Callable

# cnnlens method -> pytorch-grad-cam class name
PGC_CLASSES: dict[str, str] = {
    "gradcam": "GradCAM",
    "gradcampp": "GradCAMPlusPlus",
    "xgradcam": "XGradCAM",
    "hirescam": "HiResCAM",
    "layercam": "LayerCAM",
    "ablationcam": "AblationCAM",
    "scorecam": "ScoreCAM",
    "eigencam": "EigenCAM",
}


def _raiser(name: str) -> Callable[..., None]:
    def fail(*_a: object, **_k: object) -> None:
        raise RuntimeError(f"torchvision stand-in: {name} is not available")

    return fail


def torchvision_standin() -> dict[str, types.ModuleType]:
    """``sys.modules`` entries for a fake ``torchvision`` (the caller decides to install)."""
    tv = types.ModuleType("torchvision")
    transforms = types.ModuleType("torchvision.transforms")
    functional = types.ModuleType("torchvision.transforms.functional")
    ops = types.ModuleType("torchvision.ops")
    for name in ("Compose", "Normalize", "ToTensor", "Resize"):
        setattr(transforms, name, _raiser(f"transforms.{name}"))
    functional.resize = _raiser("transforms.functional.resize")  # type: ignore[attr-defined]
    ops.box_iou = _raiser("ops.box_iou")  # type: ignore[attr-defined]
    transforms.functional = functional  # type: ignore[attr-defined]
    tv.transforms = transforms  # type: ignore[attr-defined]
    tv.ops = ops  # type: ignore[attr-defined]
    return {
        "torchvision": tv,
        "torchvision.transforms": transforms,
        "torchvision.transforms.functional": functional,
        "torchvision.ops": ops,
    }
