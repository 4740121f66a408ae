"""A run's ``config.json``: task, model and its build options, recipe, data options.

:func:`resolve_run_config` assembles it from a run's options in one place, looking the
task up once; the runner writes it once and hands it to every stage.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cnnlens.data import DataConfig, TaskData, TaskSpec, get_task
from cnnlens.data.augmentations import AUGMENTATIONS
from cnnlens.data.resize import canonical_size, check_resize
from cnnlens.errors import CnnlensError
from cnnlens.models import get_model_spec, is_user_model, model_kwargs_for
from cnnlens.models.user import normalize_reference
from cnnlens.train.recipes import epochs_for, get_recipe

if TYPE_CHECKING:
    from cnnlens.pipeline.runner import RunOptions


def resolve_model_name(task: str, model: str | None, *, spec: TaskSpec | None = None) -> str:
    """The task's default model, a registered name, or a user builder reference (``spec``:
    the task's registry entry when the caller looked it up already)."""
    name = model or (spec if spec is not None else get_task(task)).model
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
    spec: TaskSpec | None = None,
) -> DataConfig:
    """A validated :class:`DataConfig` with an absolute data path (``spec``: the task's
    registry entry when the caller looked it up already)."""
    spec = spec if spec is not None else get_task(task)
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
    spec: TaskSpec | None = None,
    **recipe_overrides: Any,
) -> dict[str, Any]:
    """Build and validate a training run's config from user options.

    The model is fitted to the data (channels, length, classes) without decoding a sample:
    the task describes its shape from file names and array headers. The recipe may name a
    default model and image size (``best``); explicit ``model``/``image_size`` win.
    ``spec``: the task's registry entry when the caller looked it up already.
    """
    spec = spec if spec is not None else get_task(task)
    rec = get_recipe(recipe, task).with_overrides(**recipe_overrides)
    model_name = resolve_model_name(task, model or rec.model, spec=spec)
    data = data_config(task=task, data_dir=data_dir,
                       image_size=image_size if image_size is not None else rec.image_size,
                       val_fraction=rec.val_fraction, seed=seed, augment=rec.augment,
                       augmentation=rec.augmentation, skip_bad=skip_bad, cache_dir=cache_dir,
                       resize=resize, spec=spec)
    shape = spec.describe(data)
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


@dataclass(frozen=True)
class RunConfig:
    """A run's configuration, resolved once from its options by :func:`resolve_run_config`:
    the task's registry entry, the ``config.json`` values (before the folder stamps them)
    and, for a model not trained here, the model and its checkpoint sidecar to write."""

    spec: TaskSpec
    values: dict[str, Any]
    imported: tuple[Any, dict[str, Any]] | None = None  # (nn.Module, sidecar)

    @property
    def data(self) -> DataConfig:
        """The data options as the config stores them: what a stage run alone reads back."""
        names = {f.name for f in fields(DataConfig)}
        return DataConfig(task=self.values["task"],
                          **{k: v for k, v in self.values["data"].items() if k in names})

    def load_data(self) -> TaskData:
        """The run's datasets, loaded by the task's own loader (no second registry lookup)."""
        return self.spec.load(self.data)


def resolve_run_config(options: RunOptions) -> RunConfig:
    """The run's config from its options, with the task looked up once: a Keras import, a
    model trained elsewhere, the shipped weights, or a model to train. Each source looks the
    task up where it always did, so a bad option is named in the same order."""
    if options.from_keras is not None:
        return _keras_config(options)
    if _is_trained(options):
        return _trained_config(options)
    if options.pretrained:
        return _pretrained_config(options)
    spec = get_task(options.task)
    return RunConfig(spec, make_config(
        task=options.task, model=options.model, recipe=options.recipe, seed=options.seed,
        device=options.device, data_dir=options.data_dir, image_size=options.image_size,
        cache_dir=options.cache_dir, skip_bad=options.skip_bad, resize=options.resize,
        spec=spec, **options.training_overrides()))


def _is_trained(options: RunOptions) -> bool:
    from cnnlens.pipeline.trained import is_trained_source

    return is_trained_source(options.model, options.weights)


def _source_data(options: RunOptions, spec: TaskSpec,
                 class_names: Sequence[str] | None = None) -> DataConfig:
    """The data options of a model trained elsewhere: read as given, never augmented."""
    return data_config(task=options.task, data_dir=options.data_dir,
                       image_size=options.image_size, cache_dir=options.cache_dir,
                       skip_bad=options.skip_bad, seed=options.seed, augment=False,
                       resize=options.resize, class_names=class_names, spec=spec)


def _keras_config(options: RunOptions) -> RunConfig:
    from cnnlens.pipeline.keras_run import keras_run_config

    assert options.from_keras is not None  # resolve_run_config's branch
    spec = get_task(options.task)
    data = _source_data(options, spec)
    if options.model is not None:
        raise CnnlensError("--from-keras builds the task's own model; --model does not apply")
    cfg, model, meta = keras_run_config(options.from_keras, task=options.task, data=data,
                                        spec=spec)
    cfg["device"] = options.device
    return RunConfig(spec, cfg, (model, meta))


def _trained_config(options: RunOptions) -> RunConfig:
    from cnnlens.data.loose import read_class_names
    from cnnlens.pipeline.trained import trained_run_config

    assert options.model is not None  # validate() says so to the user
    names = read_class_names(options.class_names) if options.class_names else None
    spec = get_task(options.task)
    cfg, model, meta = trained_run_config(options.model, options.weights,
                                          data=_source_data(options, spec, names),
                                          trust_pickle=options.trust_pickle,
                                          normalize=options.normalize, output=options.output,
                                          standardize=options.standardize,
                                          grayscale=options.grayscale, spec=spec)
    cfg["device"] = options.device
    return RunConfig(spec, cfg, (model, meta))


def _pretrained_config(options: RunOptions) -> RunConfig:
    from cnnlens.pipeline.pretrained import (
        check_pretrained_options,
        pretrained_meta,
        pretrained_run_config,
        pretrained_tasks,
    )

    check_pretrained_options({**options.training_overrides(), "model": options.model,
                              "from_keras": options.from_keras})
    if options.task not in pretrained_tasks():
        pretrained_meta(options.task)  # raises naming the shipped tasks, before the registry
    spec = get_task(options.task)
    cfg, model, meta = pretrained_run_config(
        options.task, data_dir=options.data_dir, image_size=options.image_size,
        cache_dir=options.cache_dir, skip_bad=options.skip_bad, seed=options.seed,
        resize=options.resize, spec=spec)
    cfg["device"] = options.device
    return RunConfig(spec, cfg, (model, meta))


__all__ = ["RunConfig", "data_config", "make_config", "resolve_model_name",
           "resolve_run_config"]
