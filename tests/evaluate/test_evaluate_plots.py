"""Evaluation figures draw class names literally: ``$x^2$`` is text, not mathtext."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from matplotlib.text import Text

from cnnlens.evaluate import plots
from cnnlens.evaluate.metrics import classification_metrics
from cnnlens.plotting import save_figure

NAMES = ["$x^2$", r"$\invalid{$", "<img src=x onerror=alert(1)>"]


def _metrics() -> dict[str, object]:
    rng = np.random.default_rng(0)
    labels = np.arange(30) % 3
    probs = rng.dirichlet(np.ones(3), size=30)
    return classification_metrics(labels, probs, NAMES)


def test_hostile_names_render_and_stay_literal(tmp_path: Path) -> None:
    m = _metrics()
    figures = {
        "cm": plots.confusion_matrix(m, NAMES),
        "roc": plots.roc_curves(m),
        "ex": plots.example_panel(m["examples"], {e["index"]: np.random.rand(1, 20)  # type: ignore[index]
                                                  for g in m["examples"].values()  # type: ignore[attr-defined]
                                                  for e in g}, NAMES, kind="signal"),
    }
    for name, fig in figures.items():
        path = save_figure(fig, tmp_path / f"{name}.png")  # an invalid expression must not crash
        assert path.stat().st_size > 1000
        texts = [t for t in fig.findobj(Text) if t.get_text()]
        assert all(not t.get_parse_math() for t in texts), name
    labels = [t.get_text() for t in figures["cm"].axes[0].get_xticklabels()]
    assert labels == NAMES
