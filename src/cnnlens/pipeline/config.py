"""A run's ``config.json``: task, model and its build options, recipe, data options."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

from cnnlens.data import DataConfig, describe_task, get_task
from cnnlens.data.augmentations import AUGMENTATIONS
from cnnlens.data.resize import canonical_size, check_resize
from cnnlens.errors import CnnlensError
from cnnlens.models import get_model_spec, is_user_model, model_kwargs_for
from cnnlens.models.user import normalize_reference
from cnnlens.train.recipes import epochs_for, get_recipe


def resolve_model_name(task: str, model: str | None) -> str:
    """The task's default model, a registered name, or a user builder reference."""
    name = model or get_task(task).model
    if is_user_model(name):
        return normalize_reference(name)
    get_model_spec(name)
    return name


def data_config(
    *,
    task: str,
    data_dir: str | None = None,
    image_size: int | Sequence[int] | None = None,
    val_fraction: float = 0.0,
    seed: int = 0,
    augment: bool = True,
    augmentation: str = "study",
    skip_bad: bool = False,
    cache_dir: str | None = None,
    resize: str = "stretch",
    class_names: Sequence[str] | None = None,
) -> DataConfig:
    """A validated :class:`DataConfig` with an absolute data path."""
    spec = get_task(task)
    size = canonical_size(224 if image_size is None else image_size)
    check_resize(resize)
    if augment and AUGMENTATIONS[augmentation].quarter_turns and isinstance(size, tuple):
        raise CnnlensError(f"--augmentation {augmentation} turns images by 90 degrees: it "
                           f"needs square images, not --image-size {size[0]},{size[1]}")
    if data_dir is not None and not spec.needs:
        raise CnnlensError(f"task {task} generates its data; --data-dir/--data is not used")
    path = str(Path(data_dir).expanduser().resolve()) if data_dir else None
    if class_names is not None and (spec.kind != "image" or task == "hmt"):
        raise CnnlensError("--class-names names a trained model's classes for image folders "
                           f"(--task images); task {task} names its own")
    return DataConfig(task=task, data_dir=path, image_size=size, val_fraction=val_fraction,
                      seed=seed, augment=augment, augmentation=augmentation, skip_bad=skip_bad,
                      cache_dir=cache_dir, resize=resize,
                      class_names=tuple(class_names) if class_names is not None else None)


def data_dict(data: DataConfig) -> dict[str, Any]:
    """A :class:`DataConfig` as a run's config stores it: without the task, and without the
    default resize, so square stretched runs keep the configs they always had."""
    out = {k: v for k, v in asdict(data).items() if k != "task"}
    if out.get("resize") == "stretch":
        del out["resize"]
    if out.get("class_names") is None:
        out.pop("class_names", None)
    else:
        out["class_names"] = list(out["class_names"])
    if isinstance(out.get("image_size"), tuple):
        out["image_size"] = list(out["image_size"])
    return out


def make_config(
    *,
    task: str,
    model: str | None = None,
    recipe: str = "study",
    seed: int = 0,
    device: str = "auto",
    data_dir: str | None = None,
    image_size: int | Sequence[int] | None = None,
    cache_dir: str | None = None,
    skip_bad: bool = False,
    resize: str = "stretch",
    **recipe_overrides: Any,
) -> dict[str, Any]:
    """Build and validate a training run's config from user options.

    The model is fitted to the data (channels, length, classes) without decoding a sample:
    the task describes its shape from file names and array headers. The recipe may name a
    default model and image size (``best``); explicit ``model``/``image_size`` win.
    """
    spec = get_task(task)
    rec = get_recipe(recipe, task).with_overrides(**recipe_overrides)
    model_name = resolve_model_name(task, model or rec.model)
    data = data_config(task=task, data_dir=data_dir,
                       image_size=image_size if image_size is not None else rec.image_size,
                       val_fraction=rec.val_fraction, seed=seed, augment=rec.augment,
                       augmentation=rec.augmentation, skip_bad=skip_bad, cache_dir=cache_dir,
                       resize=resize)
    shape = describe_task(data)
    kwargs = model_kwargs_for(model_name, shape.input_shape, len(shape.class_names))
    cfg: dict[str, Any] = {
        "task": task,
        "model": model_name,
        "recipe": rec.to_dict(),
        "epochs": epochs_for(rec, task),
        "seed": seed,
        "device": device,
        "data": data_dict(data),
    }
    if kwargs:
        cfg["model_kwargs"] = kwargs
    if spec.kind != shape.kind:  # pragma: no cover - a task registry mistake
        raise CnnlensError(f"task {task}: describes {shape.kind} data but is {spec.kind}")
    return cfg


__all__ = ["data_config", "make_config", "resolve_model_name"]
