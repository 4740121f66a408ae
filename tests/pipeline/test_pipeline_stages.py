"""Each stage's skip rule on its own: done for the same request and weights, not otherwise."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import torch

from cnnlens.evaluate import stage as evaluate_stage
from cnnlens.explain import stage as explain_stage
from cnnlens.faithfulness import stage as faithfulness_stage
from cnnlens.pipeline import RunDir, run
from cnnlens.pipeline.stages import STAGE_NAMES, STAGES
from cnnlens.report import stage as report_stage
from cnnlens.rundir.checkpoint import save_checkpoint

EXPLAIN = explain_stage.ExplainOptions(limit=12, figures=False)
FAITH = faithfulness_stage.FaithfulnessOptions(limit=8, n_boot=20, sanity=False,
                                               metrics=("drop_increase",))


@pytest.fixture(scope="module")
def done_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("stages") / "run"
    run(epochs=1, device="cpu", out=out, explain=EXPLAIN, faithfulness=FAITH,
        stages=("train", "evaluate", "explain", "faithfulness"))
    return out


@pytest.fixture()
def copy(done_run: Path, tmp_path: Path) -> RunDir:
    dest = tmp_path / "run"
    shutil.copytree(done_run, dest)
    return RunDir(dest)


def test_stage_table_is_the_data_flow_order() -> None:
    assert STAGE_NAMES == ("train", "evaluate", "explain", "faithfulness", "report")
    assert STAGES["explain"].is_done is explain_stage.is_done


def test_every_stage_is_done_for_the_request_it_answered(copy: RunDir) -> None:
    assert STAGES["train"].is_done(copy, None)
    assert evaluate_stage.is_done(copy, evaluate_stage.EvaluateOptions())
    assert explain_stage.is_done(copy, EXPLAIN)
    assert faithfulness_stage.is_done(copy, FAITH)
    assert not report_stage.is_done(copy, report_stage.ReportOptions())  # always rebuilt


def test_other_requests_are_not_done(copy: RunDir) -> None:
    assert not evaluate_stage.is_done(copy, evaluate_stage.EvaluateOptions(split="train"))
    assert not explain_stage.is_done(copy, explain_stage.ExplainOptions(limit=13,
                                                                        figures=False))
    assert not explain_stage.is_done(copy, explain_stage.ExplainOptions(
        methods=("gradcam",), limit=12, figures=False))
    assert not faithfulness_stage.is_done(copy, faithfulness_stage.FaithfulnessOptions(
        limit=8, n_boot=20, sanity=False, metrics=("drop_increase",), seed=1))
    # options that do not change the numbers do not force a rerun
    assert faithfulness_stage.is_done(copy, faithfulness_stage.FaithfulnessOptions(
        limit=8, n_boot=20, sanity=False, metrics=("drop_increase",), batch_size=3,
        figures=False))


def test_new_weights_make_every_later_stage_stale(copy: RunDir) -> None:
    model, meta = copy.load_model()
    with torch.no_grad():
        next(model.parameters()).add_(0.01)
    save_checkpoint(copy.checkpoints, "model", model, meta)
    assert not evaluate_stage.is_done(copy, evaluate_stage.EvaluateOptions())
    assert not explain_stage.is_done(copy, EXPLAIN)
    assert not faithfulness_stage.is_done(copy, FAITH)


def test_missing_or_corrupt_outputs_are_not_done(copy: RunDir) -> None:
    (copy.cams_dir / "gradcampp.npz").unlink()
    assert not explain_stage.is_done(copy, EXPLAIN)
    (copy.faithfulness_dir / "results.json").write_text("{trunc")
    assert not faithfulness_stage.is_done(copy, FAITH)
    (copy.eval_dir / "metrics.json").write_text("")
    assert not evaluate_stage.is_done(copy, evaluate_stage.EvaluateOptions())
