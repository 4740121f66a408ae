"""``cnnlens explain --inputs``: loose files through an ONNX model, and one-line errors."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

from cnnlens.cli import main
from looseinputs import make_loose_images, save_builder, save_onnx
from support import require

SIZE = 32


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("cli_loose") / "pics"
    make_loose_images(root)
    return root


@pytest.fixture(scope="module")
def onnx_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    require("onnx")
    return save_onnx(tmp_path_factory.mktemp("onnx"), size=SIZE)


def _run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_onnx_model_on_a_folder_writes_everything(folder: Path, onnx_model: Path,
                                                  tmp_path: Path,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    names = tmp_path / "names.txt"
    names.write_text("a\nb\nc\nd\n")
    out = tmp_path / "out"
    code, stdout, err = _run(capsys, "explain", "--model", str(onnx_model), "--inputs",
                             str(folder), "--out", str(out), "--class-names", str(names),
                             "--top-k", "3", "--device", "cpu")
    assert code == 0, err
    assert len(list((out / "overlays").glob("*.png"))) == 20 * 3
    with (out / "predictions.csv").open() as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == 20 and {"top3", "top3_prob"} <= set(rows[0])
    assert str(out / "index.html") in stdout and "explained 20 input(s)" in stdout
    assert "deletion AUC" in stdout


def test_skip_bad_lists_the_file(folder: Path, tmp_path: Path,
                                 capsys: pytest.CaptureFixture[str]) -> None:
    builder, weights = save_builder(tmp_path / "m")
    bad = tmp_path / "broken.png"
    bad.write_bytes(b"\x89PNG\r\n\x1a\n broken")
    good = sorted(folder.glob("img_*"))[0]
    argv = ["explain", "--model", builder, "--weights", str(weights), "--inputs", str(good),
            str(bad), "--out", str(tmp_path / "o"), "--image-size", str(SIZE),
            "--methods", "gradcam", "--faithfulness-steps", "0"]
    code, _, err = _run(capsys, *argv)
    assert code == 2 and len(err.strip().splitlines()) == 1 and str(bad) in err
    code, stdout, _ = _run(capsys, *argv, "--skip-bad")
    assert code == 0 and "skipped 1 unreadable" in stdout and str(bad) in stdout


@pytest.mark.parametrize(
    ("argv", "needles"),
    [
        ([], ["RUN_DIR is missing", "--inputs"]),
        (["--model", "m.onnx"], ["RUN_DIR is missing", "--model SOURCE --task TASK"]),
        (["--inputs", "x.png", "--out", "o"], ["--inputs needs --model"]),
        (["run", "--inputs", "x.png", "--model", "m.onnx", "--out", "o"],
         ["RUN_DIR run", "cannot be used"]),
        (["--inputs", "nowhere.png", "--model", "m.onnx", "--out", "o"],
         ["--inputs nowhere.png: no such file"]),
        (["--inputs"], ["--inputs", "expected at least one argument"]),
    ],
)
def test_bad_options_are_one_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                  capsys: pytest.CaptureFixture[str], argv: list[str],
                                  needles: list[str]) -> None:
    monkeypatch.chdir(tmp_path)
    code, _, err = _run(capsys, "explain", *argv)
    assert code == 2
    assert len(err.strip().splitlines()) == 1, err
    for needle in needles:
        assert needle in err


def test_class_names_mismatch_names_both_numbers(folder: Path, tmp_path: Path,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    builder, weights = save_builder(tmp_path / "m")
    names = tmp_path / "names.txt"
    names.write_text("a\nb\nc\n")
    code, _, err = _run(capsys, "explain", "--model", builder, "--weights", str(weights),
                        "--inputs", str(folder), "--out", str(tmp_path / "o"),
                        "--class-names", str(names), "--image-size", str(SIZE))
    assert code == 2 and len(err.strip().splitlines()) == 1
    assert "lists 3 classes" in err and "outputs 4 class scores" in err
