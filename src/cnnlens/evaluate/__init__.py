"""Evaluation: predictions, scikit-learn metrics and figures."""

from cnnlens.lazy import lazy_exports

_EXPORTS = {
    "classification_metrics": "metrics",
    "predict_proba": "predict",
}
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
__all__ = sorted(_EXPORTS)
