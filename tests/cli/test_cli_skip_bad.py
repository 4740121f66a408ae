"""Unreadable images: every one named before anything runs; ``--skip-bad`` drops and lists
them, on every command that reads images; a failed first attempt needs no ``--overwrite``."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from cnnlens.cli import main
from userdata import make_image_folders


@pytest.fixture()
def bad_images(tmp_path: Path) -> tuple[Path, list[Path]]:
    root = make_image_folders(tmp_path / "pics")
    bad = [root / "train" / "cats" / "broken.png", root / "test" / "owls" / "empty.png"]
    bad[0].write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00" * 40)
    bad[1].write_bytes(b"")
    return root, bad


def _run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_every_bad_file_is_named_before_training(bad_images: tuple[Path, list[Path]],
                                                 tmp_path: Path,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    root, bad = bad_images
    out = tmp_path / "run"
    args = ["run", "--task", "images", "--data-dir", str(root), "--image-size", "8",
            "--epochs", "1", "--device", "cpu", "--limit", "6", "--no-sanity", "--out", str(out)]
    code, _, err = _run(capsys, *args)
    assert code == 2 and len(err.strip().splitlines()) == 1
    assert "2 unreadable image file(s)" in err and all(str(p) in err for p in bad)
    assert "--skip-bad" in err
    assert not out.exists() or not any(p.name != "config.json" for p in out.iterdir())
    code, stdout, err = _run(capsys, *args, "--skip-bad")  # no --overwrite needed
    assert code == 0, err
    assert all(str(p) in stdout for p in bad)
    metrics = json.loads((out / "eval" / "metrics.json").read_text())
    assert sorted(e["path"] for e in metrics["skipped_files"]) == sorted(map(str, bad))
    assert metrics["n"] == 12  # the 12 good test tiles; the unreadable 13th is left out


@pytest.mark.parametrize("command", ["evaluate", "explain", "faithfulness"])
def test_stage_commands_offer_skip_bad(bad_images: tuple[Path, list[Path]], tmp_path: Path,
                                       command: str, capsys: pytest.CaptureFixture[str]) -> None:
    root, bad = bad_images
    good = make_image_folders(tmp_path / "good")
    out = tmp_path / "run"
    assert main(["run", "--task", "images", "--data-dir", str(good), "--image-size", "8",
                 "--epochs", "1", "--device", "cpu", "--out", str(out)]) == 0
    capsys.readouterr()
    extra = ["--limit", "4", "--no-figures"] if command == "explain" else (
        ["--limit", "4", "--no-sanity", "--no-figures", "--metrics", "drop_increase"]
        if command == "faithfulness" else [])
    code, _, err = _run(capsys, command, str(out), "--data-dir", str(root), "--device", "cpu",
                        *extra)
    assert code == 2 and str(bad[1]) in err and "--skip-bad" in err
    code, stdout, err = _run(capsys, command, str(out), "--data-dir", str(root), "--device",
                             "cpu", "--skip-bad", *extra)
    assert code == 0, err
    assert str(bad[1]) in stdout
