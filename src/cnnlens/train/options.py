"""What defines a training run, declared once and free of torch: the task, data, model,
recipe, seed and device (:class:`TrainingRunOptions`), and what a user may change of the
recipe (:class:`TrainingOverrides`; None keeps the recipe's value, see
:mod:`cnnlens.train.recipes`).

The CLI builds ``train``'s and ``run``'s flags from these fields (:mod:`cnnlens.cli.options`),
and :class:`cnnlens.pipeline.runner.RunOptions` inherits them, so ``run(epochs=5)`` and
``cnnlens run --epochs 5`` are one declaration. The help texts quote the recipes' own values.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields, replace

from cnnlens.data import TASKS
from cnnlens.data.augmentations import AUGMENTATIONS
from cnnlens.data.resize import RESIZE_MODES
from cnnlens.models import MODELS
from cnnlens.optionspec import flag
from cnnlens.train.recipes import (
    OPTIMIZERS,
    PRECISIONS,
    SCHEDULES,
    Recipe,
    epochs_for,
    get_recipe,
    recipe_names,
)

_TASKS = ", ".join(f"{k} ({v.description})" for k, v in TASKS.items())
_MODELS = ", ".join(MODELS)


def _study(task: str = "mnist1d") -> Recipe:
    recipe = get_recipe("study", task)
    return replace(recipe, epochs=epochs_for(recipe, task))


_BEST_LRS = ", ".join(f"{get_recipe('best', t).lr:g} ({t})" for t in ("mnist1d", "hmt"))


@dataclass(frozen=True)
class TrainingOverrides:
    """Recipe values to override (None: the recipe's)."""

    epochs: int | None = field(default=None, metadata=flag(
        "--epochs", parse="positive_int",
        help=f"epochs (default: the recipe's; study {_study('mnist1d').epochs} for MNIST-1D, "
        f"{_study('hmt').epochs} for HMT)"))
    batch_size: int | None = field(default=None, metadata=flag(
        "--batch-size", parse="positive_int",
        help=f"training batch size (default: the recipe's; study {_study().batch_size}); "
        "other stages have their own"))
    lr: float | None = field(default=None, metadata=flag(
        "--lr", parse="float",
        help=f"learning rate (default: the recipe's; study {_study().lr:g}, best {_BEST_LRS})"))
    momentum: float | None = field(default=None, metadata=flag(
        "--momentum", parse="float",
        help=f"SGD momentum (default: the recipe's; study {_study().momentum:g})"))
    schedule: str | None = field(default=None, metadata=flag(
        "--schedule", choices=SCHEDULES,
        help="step: lr = 1e-3 * 0.5^(epoch // 15), as the study's report describes; "
        "onecycle: warm up to --lr, then anneal, every step"))
    early_stopping: bool | None = field(default=None, metadata=flag(
        "--early-stopping", parse="switch",
        help="stop when validation loss has not improved for --patience epochs"))
    patience: int | None = field(default=None, metadata=flag(
        "--patience", parse="positive_int",
        help=f"early-stopping patience (default: {_study().patience})"))
    val_fraction: float | None = field(default=None, metadata=flag(
        "--val-fraction", parse="float",
        help="fraction of the training data held out for validation (per class)"))
    augment: bool | None = field(default=None, metadata=flag(
        "--no-augment", parse="switch", negate=True,
        help="turn off training-time augmentation (images)"))
    optimizer: str | None = field(default=None, metadata=flag(
        "--optimizer", choices=OPTIMIZERS,
        help="sgd (with Keras-style L2, the study's) or adamw"))
    weight_decay: float | None = field(default=None, metadata=flag(
        "--weight-decay", parse="float", help="AdamW's decoupled weight decay on kernels"))
    label_smoothing: float | None = field(default=None, metadata=flag(
        "--label-smoothing", parse="float",
        help="label smoothing of the cross-entropy, in [0, 1) (default: the recipe's; study "
        f"{_study().label_smoothing:g})"))
    augmentation: str | None = field(default=None, metadata=flag(
        "--augmentation", choices=tuple(AUGMENTATIONS),
        help="image augmentation: study (Keras affine + flips) or dihedral (90° rotations + "
        "flips)"))
    precision: str | None = field(default=None, metadata=flag(
        "--precision", choices=PRECISIONS,
        help="auto (bf16 autocast for images where the hardware computes bf16 natively: "
        "CUDA, AVX-512 BF16/AMX CPUs; fp32 otherwise and for signals), fp32 or bf16"))

    def training_overrides(self) -> dict[str, object]:
        """Every override by name, None where the recipe's value stands."""
        return {name: getattr(self, name) for name in TRAINING_FIELDS}


@dataclass(frozen=True)
class TrainingRunOptions:
    """What a training run is made of besides its recipe: the task and its data, the model,
    the recipe's name, the seed and the device."""

    task: str = field(default="mnist1d", metadata=flag(
        "--task", help=f"task to run; one of: {_TASKS} (default %(default)s)"))
    data_dir: str | None = field(default=None, metadata=flag(
        "--data-dir", "--data",
        help="data: the image folder (hmt: HMT_train/ and HMT_test/; images: train/ and test/, "
        "optional val/) or, for signals, the .npz file (--data FILE.npz says the same)"))
    model: str | None = field(default=None, metadata=flag(
        "--model",
        help=f"model: {_MODELS} (default: the task's), or your own as module:function or "
        "path/to/file.py:function returning an nn.Module (called with those of num_classes, "
        "in_channels, input_shape it accepts); with run: a trained model file (.onnx, .pt2, "
        ".h5, a pickled .pt with --trust-pickle) or a builder with --weights, explained "
        "without training"))
    recipe: str = field(default="study", metadata=flag(
        "--recipe",
        help=f"training recipe ({', '.join(recipe_names())}; default %(default)s); best: the "
        "task's strong model and settings (mnist1d, hmt)"))
    seed: int = field(default=0, metadata=flag(
        "--seed", parse="int",
        help="seed of training (init, shuffling, augmentation, validation split)"))
    device: str = field(default="auto", metadata=flag(
        "--device", help="auto (CUDA when present), cpu, cuda, cuda:N"))
    image_size: int | tuple[int, int] | None = field(default=None, metadata=flag(
        "--image-size", parse="image_size", metavar="H[,W]",
        help="resize images to H x H, or H x W (default 224, or the recipe's)"))
    resize: str = field(default="stretch", metadata=flag(
        "--resize", choices=RESIZE_MODES,
        help="stretch each file to the size (the study's), or scale it, aspect kept, to cover "
        "the size and cut the centre (ImageNet-style)"))
    skip_bad: bool = field(default=False, metadata=flag(
        "--skip-bad",
        help="skip unreadable images, listing them (otherwise every bad file is named and "
        "nothing runs)"))
    tb_cams_every: int | None = field(default=None, metadata=flag(
        "--tb-cams-every", parse="non_negative_int", metavar="N",
        help="log CAM images of fixed test samples to TensorBoard every N epochs (default: 10 "
        "times per run; 0: off)"))


#: The override fields' names, in declaration order.
TRAINING_FIELDS: tuple[str, ...] = tuple(f.name for f in fields(TrainingOverrides))

__all__ = ["TRAINING_FIELDS", "TrainingOverrides", "TrainingRunOptions"]
