import numpy as np
import pytest

from cnnlens.errors import CnnlensError
from cnnlens.evaluate.metrics import classification_metrics

NAMES = ["a", "b", "c"]


def _probs(pred: list[int], conf: list[float]) -> np.ndarray:
    p = np.full((len(pred), 3), 0.0)
    for i, (c, v) in enumerate(zip(pred, conf, strict=True)):
        p[i] = (1 - v) / 2
        p[i, c] = v
    return p


def test_hand_made_predictions() -> None:
    labels = np.array([0, 0, 0, 1, 1, 2])
    pred = [0, 0, 1, 1, 2, 2]
    conf = [0.9, 0.8, 0.7, 0.6, 0.5, 0.95]
    m = classification_metrics(labels, _probs(pred, conf), NAMES, n_examples=2)
    assert m["n"] == 6 and m["correct"] == 4
    assert m["accuracy"] == pytest.approx(4 / 6)
    acc = [pc["accuracy"] for pc in m["per_class"]]
    assert acc == pytest.approx([2 / 3, 1 / 2, 1.0])
    # precision of class 1: predicted 1 twice (one right); of class 2: predicted twice, one right
    prec = [pc["precision"] for pc in m["per_class"]]
    assert prec == pytest.approx([1.0, 0.5, 0.5])
    f1_c2 = 2 * 0.5 * 1.0 / 1.5
    assert m["per_class"][2]["f1"] == pytest.approx(f1_c2)
    assert m["averages"]["macro"]["recall"] == pytest.approx((2 / 3 + 1 / 2 + 1) / 3)
    assert m["averages"]["weighted"]["recall"] == pytest.approx(4 / 6)
    assert m["confusion_matrix"] == [[2, 1, 0], [0, 1, 1], [0, 0, 1]]
    np.testing.assert_allclose(
        np.array(m["confusion_matrix_normalized"]),
        [[2 / 3, 1 / 3, 0], [0, 0.5, 0.5], [0, 0, 1]],
    )
    assert [e["index"] for e in m["examples"]["successes"]] == [5, 0]
    assert [e["index"] for e in m["examples"]["failures"]] == [2, 4]
    assert m["examples"]["failures"][0] == {"index": 2, "true": 0, "predicted": 1,
                                            "confidence": pytest.approx(0.7)}


def test_roc_auc_perfect_and_inverted() -> None:
    labels = np.array([0, 0, 1, 1])
    probs = np.array([[0.9, 0.1], [0.8, 0.2], [0.3, 0.7], [0.4, 0.6]])
    m = classification_metrics(labels, probs, ["x", "y"])
    assert [pc["roc_auc"] for pc in m["per_class"]] == [1.0, 1.0]
    inverted = classification_metrics(1 - labels, probs, ["x", "y"])
    assert [pc["roc_auc"] for pc in inverted["per_class"]] == [0.0, 0.0]
    assert m["roc_curves"]["x"]["tpr"][-1] == 1.0


def test_absent_class_is_undefined_not_zero() -> None:
    labels = np.array([0, 0, 1])
    m = classification_metrics(labels, _probs([0, 1, 1], [0.9, 0.9, 0.9]), NAMES)
    c = m["per_class"][2]
    assert c["support"] == 0 and c["accuracy"] is None and c["roc_auc"] is None


def test_shape_errors_name_the_problem() -> None:
    with pytest.raises(CnnlensError, match=r"shape \(N, 3\)"):
        classification_metrics(np.array([0]), np.zeros((1, 2)), NAMES)
    with pytest.raises(CnnlensError, match="empty"):
        classification_metrics(np.zeros(0, int), np.zeros((0, 3)), NAMES)
