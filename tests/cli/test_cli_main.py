import json
import subprocess
import sys
from pathlib import Path

import pytest

from cnnlens.cli import main


def _run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("runs") / "r"
    assert main(["run", "--epochs", "2", "--out", str(out), "--device", "cpu"]) == 0
    return out


def test_run_writes_every_artifact(trained_run: Path) -> None:
    for rel in ("config.json", "checkpoints/model.safetensors", "checkpoints/model.json",
                "train/history.json", "eval/metrics.json", "eval/predictions.npz",
                "eval/learning_curves.png", "eval/roc_curves.png", "eval/confusion_matrix.png",
                "eval/examples.png"):
        assert (trained_run / rel).is_file(), rel
    assert list((trained_run / "tb").glob("events.out.tfevents.*"))
    metrics = json.loads((trained_run / "eval" / "metrics.json").read_text())
    assert metrics["n"] == 1000 and 0.0 <= metrics["accuracy"] <= 1.0
    assert len(metrics["per_class"]) == 10
    assert not list(trained_run.rglob("*.tmp"))


def test_rerun_of_finished_run_does_not_retrain(
    trained_run: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    before = (trained_run / "checkpoints" / "model.safetensors").stat().st_mtime_ns
    code, out, _ = _run(capsys, "run", "--epochs", "2", "--out", str(trained_run),
                        "--device", "cpu")
    assert code == 0 and "already done" in out and "test accuracy" in out
    assert (trained_run / "checkpoints" / "model.safetensors").stat().st_mtime_ns == before


def test_other_config_in_existing_folder_is_refused(
    trained_run: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = _run(capsys, "run", "--epochs", "3", "--out", str(trained_run))
    assert code == 2 and "--overwrite" in err and str(trained_run) in err
    assert len(err.strip().splitlines()) == 1


def test_folder_with_foreign_files_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "notes.txt").write_text("mine")
    code, _, err = _run(capsys, "train", "--epochs", "1", "--out", str(tmp_path))
    assert code == 2 and "not a run" in err
    assert (tmp_path / "notes.txt").read_text() == "mine"


def test_evaluate_reads_existing_run(trained_run: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = _run(capsys, "evaluate", str(trained_run), "--device", "cpu")
    assert code == 0 and "test accuracy" in out and "of 1000 correct" in out


@pytest.mark.parametrize(
    ("argv", "needle"),
    [
        (["train", "--task", "mnist2d", "--epochs", "1"], "unknown task 'mnist2d'"),
        (["train", "--model", "resnet", "--epochs", "1"],
         "valid: hmt-resnet, hmt-vgg7, mnist1d-cnn, mnist1d-resnet"),
        (["train", "--recipe", "studdy", "--epochs", "1"], "did you mean study"),
        (["train", "--val-fraction", "1.2", "--epochs", "1"], "--val-fraction"),
    ],
)
def test_bad_options_give_one_line(
    argv: list[str], needle: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = _run(capsys, *argv, "--out", str(tmp_path / "x"))
    assert code == 2
    assert needle in err
    assert len(err.strip().splitlines()) == 1
    assert not (tmp_path / "x").exists()


@pytest.mark.parametrize("flag", ["--epochs", "--batch-size"])
def test_non_positive_numbers_are_rejected(flag: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["train", flag, "0"]) == 2
    err = capsys.readouterr().err
    assert "positive integer" in err and flag in err and len(err.strip().splitlines()) == 1


def test_missing_and_corrupt_checkpoint_name_the_path(
    trained_run: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = _run(capsys, "evaluate", str(tmp_path / "nope"))
    assert code == 2 and "nope" in err and "not found" in err
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "config.json").write_text((trained_run / "config.json").read_text())
    (broken / "checkpoints").mkdir()
    code, _, err = _run(capsys, "evaluate", str(broken))
    assert code == 2 and "model.json" in err and "not found" in err
    (broken / "checkpoints" / "model.json").write_text(
        (trained_run / "checkpoints" / "model.json").read_text())
    (broken / "checkpoints" / "model.safetensors").write_bytes(b"\x00garbage")
    code, _, err = _run(capsys, "evaluate", str(broken))
    assert code == 2 and "model.safetensors" in err and "corrupt" in err


def test_debug_shows_traceback(tmp_path: Path) -> None:
    from cnnlens.errors import CnnlensError

    with pytest.raises(CnnlensError):
        main(["--debug", "evaluate", str(tmp_path / "nope")])


def test_console_script_help() -> None:
    exe = Path(sys.executable).with_name("cnnlens")
    proc = subprocess.run([str(exe), "--help"], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0
    for cmd in ("run", "train", "evaluate"):
        assert cmd in proc.stdout


def _imported_after(code: str, modules: tuple[str, ...]) -> list[str]:
    """Which of ``modules`` a fresh interpreter has imported after running ``code``."""
    probe = f"{code}\nimport sys\nprint(','.join(m for m in {modules!r} if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                         check=True).stdout.strip()
    return out.split(",") if out else []


HELP_ALL = """
from cnnlens.cli import build_parser
parser = build_parser()
commands = parser._subparsers._group_actions[0].choices  # every command's own parser
assert len(commands) >= 8, commands
for sub in commands.values():
    sub.format_help()
"""


def test_the_parser_builds_without_importing_torch_or_scipy() -> None:
    """`cnnlens --help` stays fast: option choices live in torch-free modules and package
    __init__s load their modules on first use (a module check, not a timing)."""
    heavy = ("torch", "scipy", "sklearn", "matplotlib", "numba", "PIL")
    assert _imported_after(HELP_ALL, heavy) == []
    # the statistics alone, without the stage machinery
    assert _imported_after("import cnnlens.faithfulness.stats", heavy) == ["scipy"]
    # and the check sees an import when there is one
    assert _imported_after("import cnnlens.explain.methods", ("torch",)) == ["torch"]
