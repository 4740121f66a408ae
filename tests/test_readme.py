"""The README's own-data examples run as written: files saved, commands run, in an empty folder."""

from __future__ import annotations

import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from cnnlens.cli import main

README = Path(__file__).resolve().parents[1] / "README.md"
BLOCK = re.compile(r"<!-- readme-test: (?P<what>[^>]*?) -->\s*```\w*\n(?P<body>.*?)```", re.S)


def blocks() -> list[tuple[str, str]]:
    return [(m["what"].strip(), m["body"]) for m in BLOCK.finditer(README.read_text())]


def test_the_readme_has_its_examples() -> None:
    kinds = [what.split()[0] for what, _ in blocks()]
    assert kinds.count("file") == 5 and kinds.count("run") == 4 and kinds.count("python") == 1


def test_readme_examples_run_as_written(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                        capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.chdir(tmp_path)
    for what, body in blocks():
        kind, *arg = what.split()
        if kind == "file":
            (tmp_path / arg[0]).write_text(body)
        elif kind == "run":
            for line in body.strip().splitlines():
                words = shlex.split(line)
                if words[0] == "python":
                    subprocess.run([sys.executable, *words[1:]], check=True, timeout=300)
                else:
                    assert words[0] == "cnnlens", line
                    assert main(words[1:]) == 0, line
        else:
            exec(compile(body, "README.md", "exec"), {})
    out = capsys.readouterr().out
    assert "CAM layer 'features' chosen" in out
    for run in ("runs/signals", "runs/pics", "runs/signals-py", "runs/mine", "runs/mine-onnx"):
        assert (tmp_path / run / "report.html").is_file(), run
    for run in ("runs/mine", "runs/mine-onnx"):  # trained elsewhere: explained, not trained
        assert not (tmp_path / run / "train").exists(), run
    rows = (tmp_path / "explained" / "predictions.csv").read_text().splitlines()
    assert len(rows) == 31 and rows[0].startswith("file,kind,explained,top1,top1_prob")
    assert (tmp_path / "explained" / "index.html").is_file()
    metrics = (tmp_path / "runs/pics/eval/metrics.json").read_text()
    assert '"class_names": [\n    "blue",\n    "green",\n    "red"\n  ]' in metrics
