"""The main job: train → evaluate → explain → faithfulness → report, in one run folder.

Each stage reads the previous stage's artifacts, so a finished stage is not redone when
the same run is started again.
"""

from __future__ import annotations

import datetime as _dt
import shutil
from collections.abc import Callable, Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

from cnnlens import __version__
from cnnlens.data import DataConfig, get_task
from cnnlens.errors import CnnlensError
from cnnlens.models import get_model_spec
from cnnlens.rundir import RunDir
from cnnlens.train.recipes import epochs_for, get_recipe

# Everything a run writes; --overwrite removes exactly these, never a user's other files.
RUN_ARTIFACTS = ("config.json", "checkpoints", "tb", "train", "eval", "cams", "faithfulness",
                 "report.html")


def make_config(
    *,
    task: str,
    model: str | None = None,
    recipe: str = "study",
    seed: int = 0,
    device: str = "auto",
    data_dir: str | None = None,
    image_size: int | None = None,
    cache_dir: str | None = None,
    skip_bad: bool = False,
    **recipe_overrides: Any,
) -> dict[str, Any]:
    """Build and validate a run config from user options."""
    spec = get_task(task)
    model_name = model or spec.model
    get_model_spec(model_name)
    rec = get_recipe(recipe).with_overrides(**recipe_overrides)
    data = DataConfig(
        task=task,
        data_dir=str(Path(data_dir).resolve()) if data_dir else None,
        image_size=image_size or 224,
        val_fraction=rec.val_fraction,
        seed=seed,
        augment=rec.augment,
        skip_bad=skip_bad,
        cache_dir=cache_dir,
    )
    data_dict = asdict(data)
    data_dict.pop("task")
    return {
        "task": task,
        "model": model_name,
        "recipe": rec.to_dict(),
        "epochs": epochs_for(rec, task),
        "seed": seed,
        "device": device,
        "data": data_dict,
    }


def _comparable(cfg: dict[str, Any]) -> dict[str, Any]:
    """The parts of a config that define a run (not when or where it was made)."""
    out = {k: v for k, v in cfg.items() if k not in ("created", "cnnlens_version", "device")}
    data = dict(out.get("data", {}))
    data.pop("cache_dir", None)
    out["data"] = data
    return out


def prepare_run_dir(out: str | Path | None, cfg: dict[str, Any], *, overwrite: bool) -> RunDir:
    """Create the run folder, or reuse it when it holds a run of the same config.

    A folder holding anything else is refused unless ``overwrite``, which removes only the
    artifacts a run writes.
    """
    if out is None:
        stamp = _dt.datetime.now().strftime("%Y%m%d-%H%M%S")
        out = Path("runs") / f"{cfg['task']}-{stamp}"
    run = RunDir(out)
    if run.path.exists() and not run.path.is_dir():
        raise CnnlensError(f"--out {run.path}: exists and is not a folder")
    if run.path.is_dir() and any(run.path.iterdir()):
        same = False
        if run.exists():
            try:
                same = _comparable(run.read_config()) == _comparable(cfg)
            except CnnlensError:
                same = False
        if not same and not overwrite:
            what = "a run with a different config" if run.exists() else "files that are not a run"
            raise CnnlensError(
                f"--out {run.path}: folder holds {what}; choose another --out or pass --overwrite"
            )
        if not same:
            for name in RUN_ARTIFACTS:
                p = run.path / name
                if p.is_dir():
                    shutil.rmtree(p)
                elif p.exists():
                    p.unlink()
    run.path.mkdir(parents=True, exist_ok=True)
    if not run.exists():
        stamped = {**cfg, "created": _dt.datetime.now().isoformat(timespec="seconds"),
                   "cnnlens_version": __version__}
        run.write_config(stamped)
    return run


Stage = Callable[[RunDir], Any]


def run_pipeline(
    run: RunDir,
    stages: Sequence[tuple[str, Stage]],
    *,
    on_stage: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Run named stages in order; each one sees the artifacts of the stages before it."""
    results: dict[str, Any] = {}
    for name, stage in stages:
        if on_stage:
            on_stage(name)
        results[name] = stage(run)
    return results
