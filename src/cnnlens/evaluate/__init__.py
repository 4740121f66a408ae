"""Evaluation: predictions, scikit-learn metrics and figures."""

from cnnlens.evaluate.metrics import classification_metrics
from cnnlens.evaluate.predict import predict_proba

__all__ = ["classification_metrics", "predict_proba"]
