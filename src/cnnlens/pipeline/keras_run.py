"""A trained Keras HDF5 model as a run folder that every later stage can use."""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

from torch import nn

from cnnlens.data import DataConfig, TaskSpec, get_task
from cnnlens.errors import CnnlensError
from cnnlens.models.keras_h5 import load_keras_h5
from cnnlens.pipeline.config import data_dict
from cnnlens.rundir.checkpoint import save_checkpoint
from cnnlens.rundir.folder import RunDir


def keras_run_config(path: str | Path, *, task: str, data: DataConfig,
                     spec: TaskSpec | None = None) -> tuple[
    dict[str, Any], nn.Module, dict[str, Any]
]:
    """Read a Keras file for ``task``: the run config, the converted model and its sidecar
    (``spec``: the task's registry entry when the caller looked it up already)."""
    src = Path(path)
    spec = spec if spec is not None else get_task(task)
    model, info = load_keras_h5(src, model_name=spec.model)
    source = {"keras_file": str(src.resolve()), "sha256": sha256_file(src), **info}
    # the classes the model was trained on: the task's own, never a folder's guess
    shape = spec.describe(DataConfig(task=task, image_size=data.image_size))
    cfg = {"task": task, "model": spec.model, "data": data_dict(data), "source": source,
           "recipe": None}
    meta = {"model": spec.model, "class_names": list(shape.class_names), "epoch": None,
            "imported_from": source}
    return cfg, model, meta


def write_imported(run: RunDir, model: nn.Module, meta: dict[str, Any]) -> None:
    """Save an imported model as the run's ``checkpoints/model``."""
    save_checkpoint(run.checkpoints, "model", model, meta)


def import_keras(
    path: str | Path, *, task: str, out_dir: str | Path, overwrite: bool = False,
    data_dir: str | None = None,
) -> Path:
    """Import a Keras HDF5 model as a new run folder.

    The folder is assembled under a temporary name beside ``out_dir`` and renamed into
    place, so a failed import leaves nothing that looks like a complete run.
    """
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise CnnlensError(f"{out}: exists and is not a folder; choose another --out")
    if out.is_dir() and any(out.iterdir()) and not overwrite:
        raise CnnlensError(f"{out}: folder exists and is not empty; pass --overwrite to replace it")
    data = DataConfig(task=task, data_dir=str(Path(data_dir).resolve()) if data_dir else None)
    cfg, model, meta = keras_run_config(path, task=task, data=data)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.import-", dir=out.parent))
    umask = os.umask(0)
    os.umask(umask)
    tmp.chmod(0o777 & ~umask)  # mkdtemp makes it private; a run folder should not be
    try:
        run = RunDir(tmp)
        run.write_config(cfg)
        write_imported(run, model, meta)
        _move_into_place(tmp, out)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp)
    return out


def _move_into_place(tmp: Path, out: Path) -> None:
    """Rename ``tmp`` to ``out``; an existing ``out`` is moved aside first, then deleted."""
    old: Path | None = None
    if out.exists():
        old = Path(tempfile.mkdtemp(prefix=f".{out.name}.old-", dir=out.parent))
        os.replace(out, old / out.name)
    try:
        os.replace(tmp, out)
    except OSError:
        if old is not None:  # put the previous run back
            os.replace(old / out.name, out)
            shutil.rmtree(old)
        raise
    if old is not None:
        shutil.rmtree(old)


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


__all__ = ["import_keras", "keras_run_config", "sha256_file", "write_imported"]
