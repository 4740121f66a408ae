"""A real, tiny MNIST-1D run folder with every stage's artifacts, built once per session.

``cnnlens run`` on the full test split takes over a minute on 2 cores (faithfulness
dominates), so the later stages run on the first samples only.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from cnnlens.cli import main
from cnnlens.evaluate.stage import evaluate_run
from cnnlens.explain.stage import run_explain
from cnnlens.faithfulness.stage import run_faithfulness
from cnnlens.rundir.folder import RunDir


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("report") / "run"
    assert main(["train", "--epochs", "1", "--out", str(out), "--device", "cpu"]) == 0
    run = RunDir(out)
    evaluate_run(run, device="cpu")
    run_explain(out, limit=60, per_class=2, max_failures=3)
    run_faithfulness(out, limit=40, n_boot=100, sanity_samples=4, steps=4)
    return out
