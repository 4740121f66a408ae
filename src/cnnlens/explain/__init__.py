"""Class activation maps: one engine, eight methods, 1-D/2-D/3-D inputs (DESIGN §5).

>>> maps = cam(model, x, layer="conv1d_2", method="gradcam")  # (N, L) in [0, 1]
"""

from cnnlens.lazy import lazy_exports

_EXPORTS = {
    "CamMethod": "methods",
    "CamResult": "api",
    "DEFAULT_MEMORY_BUDGET_MB": "api",
    "METHODS": "methods",
    "cam": "api",
    "candidate_layers": "layers",
    "default_layer": "layers",
    "explain": "api",
    "explain_methods": "api",
    "normalize_maps": "methods",
    "resolve_layer": "layers",
    "upsample_maps": "methods",
}
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
__all__ = sorted(_EXPORTS)
