"""What a user may change of a training recipe: the overrides, declared once and free of torch.

Each field left None keeps the recipe's value (:mod:`cnnlens.train.recipes`). The CLI builds
``train``'s and ``run``'s flags from these fields (:mod:`cnnlens.cli.options`), and
:class:`cnnlens.pipeline.runner.RunOptions` inherits them, so ``run(epochs=5)`` and ``cnnlens
run --epochs 5`` are one declaration. The help texts quote the recipes' own values.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields, replace

from cnnlens.data.augmentations import AUGMENTATIONS
from cnnlens.optionspec import flag
from cnnlens.train.recipes import (
    OPTIMIZERS,
    PRECISIONS,
    SCHEDULES,
    Recipe,
    epochs_for,
    get_recipe,
)


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


#: The override fields' names, in declaration order.
TRAINING_FIELDS: tuple[str, ...] = tuple(f.name for f in fields(TrainingOverrides))

__all__ = ["TRAINING_FIELDS", "TrainingOverrides"]
