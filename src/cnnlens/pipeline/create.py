"""Creating a run folder: reuse it when it holds the same run, refuse (or clear) it otherwise.

Only the runner (and the shipped-weights and Keras-import paths beside it) create run
folders; every stage opens an existing one through :class:`cnnlens.rundir.RunDir`.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import json
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from cnnlens.errors import CnnlensError
from cnnlens.fileio import json_round_trip
from cnnlens.rundir import LOCK_NAME, RUN_ARTIFACTS, RunDir


def _comparable(cfg: dict[str, Any]) -> dict[str, Any]:
    """The parts of a config that define a run (not when or where it was made).

    Compared as JSON reads them back: a tuple (e.g. a user model's ``input_shape``) and
    the list it becomes in ``config.json`` are the same run.
    """
    cfg = json.loads(json.dumps(cfg, default=str))
    out = {k: v for k, v in cfg.items() if k not in ("created", "cnnlens_version", "device")}
    data = dict(out.get("data", {}))
    data.pop("cache_dir", None)
    out["data"] = data
    return out


def _only_config(run: RunDir) -> bool:
    """A folder holding a config and nothing a stage wrote: a run that never started."""
    entries = {p.name for p in run.path.iterdir()} - {LOCK_NAME, "config.json"}
    return not entries or (entries <= {"checkpoints", "tb"} and not any(
        (run.path / e).is_dir() and any((run.path / e).iterdir()) for e in entries
    ))


def default_out(cfg: dict[str, Any]) -> Path:
    """``runs/<task>-<timestamp>``: where a run goes when no folder is named."""
    stamp = _dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    return Path("runs") / f"{cfg['task']}-{stamp}"


@contextlib.contextmanager
def locked_run_dir(out: str | Path | None, cfg: dict[str, Any], *,
                   overwrite: bool) -> Iterator[tuple[RunDir, dict[str, Any]]]:
    """:func:`open_run_dir` under the folder's lock, held until the block ends.

    The lock is taken before anything is written, so a second process on the same folder
    fails before touching it.
    """
    run = RunDir(out if out is not None else default_out(cfg))
    if run.path.exists() and not run.path.is_dir():
        raise CnnlensError(f"--out {run.path}: exists and is not a folder")
    run.path.mkdir(parents=True, exist_ok=True)
    with run.lock():
        yield open_run_dir(run.path, cfg, overwrite=overwrite)


def prepare_run_dir(out: str | Path | None, cfg: dict[str, Any], *,
                    overwrite: bool) -> RunDir:
    """Create the run folder, or reuse it when it holds a run of the same config.

    A folder holding anything else is refused unless ``overwrite``, which removes only the
    artifacts a run writes. A folder that holds only the config of a run that never started
    (it failed before training) takes the new config without ``overwrite``.
    """
    return open_run_dir(out, cfg, overwrite=overwrite)[0]


def open_run_dir(out: str | Path | None, cfg: dict[str, Any], *,
                 overwrite: bool) -> tuple[RunDir, dict[str, Any]]:
    """:func:`prepare_run_dir`, also returning the config the folder holds: the one read to
    compare (a continued run keeps its own) or the one written, as ``config.json`` reads
    back. The pipeline hands it to every stage, so none reads the file again."""
    run = RunDir(out if out is not None else default_out(cfg))
    if run.path.exists() and not run.path.is_dir():
        raise CnnlensError(f"--out {run.path}: exists and is not a folder")
    stored: dict[str, Any] | None = None
    if run.path.is_dir() and any(p.name != LOCK_NAME for p in run.path.iterdir()):
        same = False
        if run.exists():
            try:
                stored = run.read_config()
                same = _comparable(stored) == _comparable(cfg)
            except CnnlensError:
                same = False
        fresh = run.exists() and _only_config(run)
        if not same and not overwrite and not fresh:
            what = "a run with a different config" if run.exists() else "files that are not a run"
            raise CnnlensError(
                f"--out {run.path}: folder holds {what}; choose another --out or pass --overwrite"
            )
        if not same:
            remove_artifacts(run)
            stored = None
    run.path.mkdir(parents=True, exist_ok=True)
    if stored is None:  # a new folder, or one just cleared (config.json went with the rest)
        from cnnlens import __version__

        stamped = {**cfg, "created": _dt.datetime.now().isoformat(timespec="seconds"),
                   "cnnlens_version": __version__}
        run.write_config(stamped)
        stored = json_round_trip(stamped)
    return run, stored


def remove_artifacts(run: RunDir) -> None:
    """Delete what a run writes (never other files in the folder)."""
    for name in RUN_ARTIFACTS:
        p = run.path / name
        if p.is_dir():
            shutil.rmtree(p)
        elif p.exists():
            p.unlink()


__all__ = ["default_out", "locked_run_dir", "open_run_dir", "prepare_run_dir",
           "remove_artifacts"]
