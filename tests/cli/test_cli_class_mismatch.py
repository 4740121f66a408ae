"""Data whose classes differ from the model's is refused by every stage that reads it, with
both class lists: a renamed folder would silently permute the labels, an extra one crash."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from cnnlens.cli import main
from support import SHARED_DATA, require_path


@pytest.fixture(scope="module")
def imported(tmp_path_factory: pytest.TempPathFactory) -> Path:
    h5 = require_path(SHARED_DATA / "keras" / "HMT.h5")
    out = tmp_path_factory.mktemp("mismatch") / "run"
    assert main(["import-keras", str(h5), "--task", "hmt", "--out", str(out)]) == 0
    return out


def _small_hmt(root: Path, per_class: int = 2) -> Path:
    """A copy of a few HMT tiles per class, in the study's layout."""
    src = require_path(SHARED_DATA / "hmt")
    for split in ("HMT_train", "HMT_test"):
        for cls in sorted(p for p in (src / split).iterdir() if p.is_dir()):
            dest = root / split / cls.name
            dest.mkdir(parents=True)
            for f in sorted(cls.iterdir())[:per_class]:
                shutil.copy(f, dest / f.name)
    return root


@pytest.mark.parametrize("command", ["evaluate", "explain", "faithfulness"])
def test_a_renamed_class_folder_is_refused_with_both_lists(
    imported: Path, tmp_path: Path, command: str, capsys: pytest.CaptureFixture[str]
) -> None:
    data = _small_hmt(tmp_path / "hmt")
    for split in ("HMT_train", "HMT_test"):
        (data / split / "01_TUMOR").rename(data / split / "99_TUMOR")
    assert main([command, str(imported), "--data-dir", str(data), "--device", "cpu"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert "only in the data: 99_TUMOR" in err and "only in the model: 01_TUMOR" in err
    assert "data: 02_STROMA" in err and "model: 01_TUMOR, 02_STROMA" in err
    for out in ("eval", "cams", "faithfulness"):
        assert not (imported / out).exists()


def test_a_ninth_class_folder_is_refused(imported: Path, tmp_path: Path,
                                         capsys: pytest.CaptureFixture[str]) -> None:
    data = _small_hmt(tmp_path / "hmt")
    for split in ("HMT_train", "HMT_test"):
        shutil.copytree(data / split / "08_EMPTY", data / split / "09_EXTRA")
    assert main(["evaluate", str(imported), "--data-dir", str(data), "--device", "cpu"]) == 2
    err = capsys.readouterr().err
    assert "only in the data: 09_EXTRA" in err and "Traceback" not in err
