"""Evaluation of a 360-class model: summaries instead of a K² figure, every PNG bounded."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from matplotlib.text import Text
from PIL import Image
from sklearn.metrics import roc_auc_score

from cnnlens.evaluate import plots, summary_plots
from cnnlens.evaluate.confusion import most_confused, worst_classes
from cnnlens.evaluate.limits import MANY_CLASSES, MAX_FIGURE_PX, TOP_PAIRS, WORST_K, bounded_dpi
from cnnlens.evaluate.metrics import classification_metrics
from cnnlens.evaluate.stage import write_class_figures
from cnnlens.plotting import new_figure

K, N = 360, 2000
CONFUSED = (7, 12)  # every sample of class 7 is predicted as class 12


def synthetic(k: int = K, n: int = N) -> tuple[np.ndarray, np.ndarray]:
    """Labels and probabilities: 80 % right, the rest spread at random, plus 7 → 12 always."""
    rng = np.random.default_rng(0)
    labels = np.arange(n) % k
    labels[-40:] = CONFUSED[0]  # class 7 gets ~45 samples; every class keeps >= 5
    pred = np.where(rng.random(n) < 0.8, labels, rng.integers(0, k, n))
    pred[labels == CONFUSED[0]] = CONFUSED[1]
    logits = rng.normal(size=(n, k))
    logits[np.arange(n), pred] += 6.0
    probs = np.exp(logits)
    return labels, probs / probs.sum(axis=1, keepdims=True)


@pytest.fixture(scope="module")
def many() -> tuple[dict[str, object], list[str]]:
    labels, probs = synthetic()
    names = [f"class {i}" for i in range(K)]
    return classification_metrics(labels, probs, names), names


def test_most_confused_names_the_dominant_pair(many: tuple[dict, list[str]]) -> None:
    m, _ = many
    pairs = m["most_confused"]
    assert len(pairs) == TOP_PAIRS
    top = pairs[0]
    n7 = m["per_class"][7]["support"]
    assert (top["true"], top["predicted"]) == CONFUSED
    assert (top["true_name"], top["predicted_name"]) == ("class 7", "class 12")
    assert top["count"] == top["support"] == n7 and top["rate"] == 1.0
    rates = [p["rate"] for p in pairs]
    assert rates == sorted(rates, reverse=True)
    assert all(p["true"] != p["predicted"] for p in pairs)
    assert len(m["confusion_matrix"]) == K  # the full matrix stays in the data
    assert worst_classes(m["per_class"], k=WORST_K)[0]["class"] == "class 7"


def test_most_confused_orders_ties_by_count_then_index() -> None:
    cm = np.array([[1, 1, 0], [0, 8, 8], [3, 0, 3]])
    pairs = most_confused(cm, ["a", "b", "c"], k=5)
    # three pairs at rate 0.5: (1→2, 8 samples), then (2→0, 3), then (0→1, 1)
    assert [(p["true"], p["predicted"], p["count"]) for p in pairs] == [
        (1, 2, 8), (2, 0, 3), (0, 1, 1)]
    assert most_confused(np.diag([3, 4]), ["a", "b"], k=5) == []


def test_averaged_roc_matches_scikit_learn(many: tuple[dict, list[str]]) -> None:
    m, _ = many
    labels, probs = synthetic()
    avg = m["roc_average"]
    onehot = np.eye(K)[labels]
    assert avg["micro"]["auc"] == pytest.approx(roc_auc_score(onehot, probs, average="micro"))
    assert avg["macro"]["auc"] == pytest.approx(m["macro_roc_auc"])
    for kind in ("micro", "macro"):
        assert len(avg[kind]["fpr"]) == len(avg[kind]["tpr"]) == 201  # fixed size, any K


def test_figures_above_the_threshold_are_summaries_of_bounded_size(
        many: tuple[dict, list[str]], tmp_path: Path) -> None:
    m, names = many
    (tmp_path / "confusion_matrix.png").write_bytes(b"left by an earlier evaluation")
    written = write_class_figures(m, names, tmp_path)
    assert written == ["roc_curves.png", "most_confused.png", "class_accuracy.png"]
    assert not (tmp_path / "confusion_matrix.png").exists()  # stale: removed
    for name in written:
        with Image.open(tmp_path / name) as img:
            assert max(img.size) <= MAX_FIGURE_PX, (name, img.size)


def test_roc_figure_draws_averages_and_worst_classes_only(many: tuple[dict, list[str]]) -> None:
    m, _ = many
    ax = plots.roc_curves(m).axes[0]
    labels = [line.get_label() for line in ax.get_lines()]
    assert len(labels) == 2 + WORST_K + 1  # micro, macro, worst classes, chance diagonal
    assert labels[0].startswith("micro average") and labels[1].startswith("macro average")


def test_summary_figures_show_the_pairs_and_the_worst_classes(
        many: tuple[dict, list[str]]) -> None:
    m, _ = many
    ticks = [t.get_text() for t in summary_plots.most_confused_pairs(m).axes[0].get_yticklabels()]
    assert ticks[0] == "class 7 → class 12" and len(ticks) == TOP_PAIRS
    fig = summary_plots.class_accuracy_summary(m)
    worst = [t.get_text() for t in fig.axes[1].get_yticklabels()]
    assert len(worst) == WORST_K and worst[0].startswith("class 7 ")
    assert sum(p.get_height() for p in fig.axes[0].patches) == K  # histogram counts classes


def test_full_matrix_figure_stays_cheap_for_library_callers(
        many: tuple[dict, list[str]]) -> None:
    m, names = many
    fig = plots.confusion_matrix(m, names)
    assert len([t for t in fig.findobj(Text) if t.get_text()]) < 50  # no K² cell texts
    assert max(fig.get_size_inches()) * 110 <= MAX_FIGURE_PX


def test_small_class_counts_keep_the_full_confusion_matrix(tmp_path: Path) -> None:
    labels = np.arange(200) % 10
    probs = np.random.default_rng(0).dirichlet(np.ones(10), size=200)
    names = [str(i) for i in range(10)]
    m = classification_metrics(labels, probs, names)
    assert write_class_figures(m, names, tmp_path) == ["roc_curves.png", "confusion_matrix.png"]
    ax = plots.roc_curves(m).axes[0]
    assert len(ax.get_lines()) == 10 + 1
    assert MANY_CLASSES >= 10


def test_bounded_dpi_caps_every_side() -> None:
    assert bounded_dpi(6, 5.5, 110) == 110  # what fits is untouched
    dpi = bounded_dpi(218.5, 196.6, 110)  # the 360-class confusion matrix of old
    assert 218.5 * dpi <= MAX_FIGURE_PX and dpi == 18
    fig = new_figure(3, 60)
    assert 60 * bounded_dpi(*fig.get_size_inches(), 110) <= MAX_FIGURE_PX
