"""``--pretrained``: explain and score the shipped best model without training."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from cnnlens.cli import main


def test_explain_and_faithfulness_make_the_run_from_shipped_weights(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run = tmp_path / "pre"
    assert main(["explain", "--pretrained", "mnist1d", str(run), "--limit", "16",
                 "--methods", "gradcam", "--no-figures"]) == 0
    out = capsys.readouterr().out
    assert "shipped mnist1d model" in out and "res1d_2" in out
    assert main(["faithfulness", "--pretrained", "mnist1d", str(run), "--limit", "16",
                 "--methods", "gradcam", "--metrics", "deletion", "--no-sanity",
                 "--no-figures", "--n-boot", "50"]) == 0
    results = json.loads((run / "faithfulness" / "results.json").read_text())
    assert results["n"] == 16 and "random" in results["methods"]
    cfg = json.loads((run / "config.json").read_text())
    assert cfg["recipe"] is None and cfg["model"] == "mnist1d-resnet"


def test_run_pretrained_with_training_options_is_a_one_line_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(["run", "--task", "mnist1d", "--pretrained", "--epochs", "2",
                 "--out", str(tmp_path / "x")])
    err = capsys.readouterr().err
    assert code != 0 and "--epochs" in err and "Traceback" not in err
