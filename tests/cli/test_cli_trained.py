"""The command line for a model trained elsewhere: run, evaluate and faithfulness take
--model SOURCE [--weights FILE]; RUN_DIR commands make RUN_DIR from it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from torch import nn

from cnnlens.cli import main
from support import require
from userdata import make_image_folders

SIZE = 16


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("trained")
    pics = make_image_folders(root / "pics", size=SIZE)
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1),
                        nn.Flatten(), nn.Linear(8, 3), nn.Softmax(dim=1)).eval()
    require("onnx")
    torch.onnx.export(net, (torch.rand(1, 3, SIZE, SIZE),), str(root / "net.onnx"),
                      dynamo=False, input_names=["x"], dynamic_axes={"x": {0: "n"}})
    return {"pics": pics, "onnx": root / "net.onnx", "root": root}


def test_run_evaluate_and_faithfulness_take_a_trained_model(
        files: dict[str, Path], capsys: pytest.CaptureFixture[str]) -> None:
    common = ["--data-dir", str(files["pics"]), "--image-size", str(SIZE), "--model",
              str(files["onnx"]), "--normalize", "imagenet", "--device", "cpu"]
    out = files["root"] / "run"
    assert main(["run", "--task", "images", *common, "--out", str(out), "--limit", "6",
                 "--no-sanity", "--methods", "gradcam"]) == 0
    text = capsys.readouterr()
    assert "imported model" in text.out + text.err
    assert not (out / "train").exists() and (out / "report.html").is_file()
    ev = files["root"] / "ev"
    assert main(["evaluate", str(ev), "--task", "images", *common]) == 0
    assert json.loads((ev / "eval" / "metrics.json").read_text())["n"] == 12
    # the same model, data and normalization: the same predictions as the run's
    with np_load(ev / "eval" / "predictions.npz") as a, np_load(
            out / "eval" / "predictions.npz") as b:
        assert (a["probs"] == b["probs"]).all()
    ex = files["root"] / "ex"
    assert main(["explain", str(ex), "--task", "images", "--data-dir", str(files["pics"]),
                 "--image-size", str(SIZE), "--model", str(files["onnx"]), "--normalize",
                 "imagenet", "--device", "cpu", "--methods", "gradcam", "--no-figures"]) == 0
    assert (ex / "cams" / "gradcam.npz").is_file() and not (ex / "train").exists()
    fa = files["root"] / "fa"
    assert main(["faithfulness", str(fa), "--task", "images", *common, "--limit", "6",
                 "--no-sanity", "--methods", "gradcam", "--no-figures"]) == 0
    assert (fa / "faithfulness" / "results.json").is_file()


def np_load(path: Path):  # type: ignore[no-untyped-def]
    import numpy as np

    return np.load(path)


@pytest.mark.parametrize(("argv", "message"), [
    (["--model", "{onnx}"], "--model needs --task"),
    (["--weights", "{onnx}"], "--weights describes --model SOURCE; give --model too"),
    (["--model", "{onnx}", "--task", "images", "--pretrained", "hmt"], "give one"),
])
def test_bad_combinations_are_one_line(files: dict[str, Path], argv: list[str], message: str,
                                       capsys: pytest.CaptureFixture[str]) -> None:
    args = [a.format(onnx=files["onnx"]) for a in argv]
    assert main(["faithfulness", str(files["root"] / "bad"), *args]) != 0
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err
    assert not (files["root"] / "bad").exists()
