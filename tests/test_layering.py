"""Imports only go down (DESIGN §10): data, models → run folder (cnnlens.rundir) → stages in
data-flow order → pipeline → CLI. Checked on the source, including imports inside functions.
Each package sits on one layer: no module is ranked apart from its package."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src" / "cnnlens"

#: Lowest first. A module may import modules of its own rank or lower.
LAYERS: list[tuple[str, ...]] = [
    ("cnnlens", "cnnlens.errors", "cnnlens.fileio", "cnnlens.device", "cnnlens.plotting",
     "cnnlens.distributed", "cnnlens.progress", "cnnlens.lazy", "cnnlens.constraints",
     "cnnlens.optionspec"),
    ("cnnlens.data", "cnnlens.models"),
    ("cnnlens.rundir",),
    ("cnnlens.train",),
    ("cnnlens.evaluate",),
    ("cnnlens.explain",),
    ("cnnlens.faithfulness",),
    ("cnnlens.report",),
    ("cnnlens.pipeline",),
    ("cnnlens.cli", "cnnlens.__main__"),
]


def rank(module: str) -> int:
    """The layer of ``module``: the one entry that is it or a package above it."""
    found = {i for i, prefixes in enumerate(LAYERS) for p in prefixes
             if p != "cnnlens" and (module == p or module.startswith(p + "."))}
    if module == "cnnlens":
        found.add(0)
    if len(found) != 1:
        raise AssertionError(f"{module} is in {len(found) or 'no'} layers; fix LAYERS")
    return found.pop()


def module_name(path: Path) -> str:
    rel = path.relative_to(SRC.parent).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def cnnlens_imports(path: Path) -> list[tuple[int, str]]:
    """(line, module) of every ``cnnlens`` import in a file, wherever it appears."""
    tree = ast.parse(path.read_text(), filename=str(path))
    out: list[tuple[int, str]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out += [(node.lineno, a.name) for a in node.names if a.name.split(".")[0] == "cnnlens"]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            if node.module.split(".")[0] != "cnnlens":
                continue
            for alias in node.names:  # `from cnnlens.x import y` may import submodule x.y
                sub = f"{node.module}.{alias.name}"
                is_module = (SRC.parent / sub.replace(".", "/")).with_suffix(".py").exists() or (
                    SRC.parent / sub.replace(".", "/")).is_dir()
                out.append((node.lineno, sub if is_module else node.module))
    return out


FILES = sorted(SRC.rglob("*.py"))


@pytest.mark.parametrize("path", FILES, ids=lambda p: str(p.relative_to(SRC)))
def test_imports_only_go_down(path: Path) -> None:
    me = module_name(path)
    mine = rank(me)
    upward = [f"line {line}: {mod} (layer {rank(mod)})" for line, mod in cnnlens_imports(path)
              if rank(mod) > mine]
    assert not upward, f"{me} (layer {mine}) imports upward: " + "; ".join(upward)


def test_the_check_sees_function_level_imports(tmp_path: Path) -> None:
    f = tmp_path / "m.py"
    f.write_text("def later() -> None:\n    from cnnlens.pipeline.runner import run\n")
    assert cnnlens_imports(f) == [(2, "cnnlens.pipeline.runner")]
    assert rank("cnnlens.cli.run") > rank("cnnlens.pipeline.runner") > rank("cnnlens.report")
    assert rank("cnnlens.rundir.folder") < rank("cnnlens.train.loop")
