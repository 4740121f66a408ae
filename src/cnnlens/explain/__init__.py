"""Class activation maps: one engine, eight methods, 1-D/2-D/3-D inputs (DESIGN §5).

>>> maps = cam(model, x, layer="conv1d_2", method="gradcam")  # (N, L) in [0, 1]
"""

from cnnlens.explain.api import (
    DEFAULT_MEMORY_BUDGET_MB,
    CamResult,
    cam,
    explain,
    explain_methods,
)
from cnnlens.explain.layers import candidate_layers, default_layer, resolve_layer
from cnnlens.explain.methods import METHODS, CamMethod, normalize_maps, upsample_maps

__all__ = [
    "DEFAULT_MEMORY_BUDGET_MB",
    "METHODS",
    "CamMethod",
    "CamResult",
    "cam",
    "candidate_layers",
    "default_layer",
    "explain",
    "explain_methods",
    "normalize_maps",
    "resolve_layer",
    "upsample_maps",
]
