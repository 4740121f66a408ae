"""What the evaluate stage computes: its options, declared once and free of torch (the CLI
builds ``cnnlens evaluate``'s arguments from them)."""

from __future__ import annotations

from dataclasses import dataclass, field

from cnnlens.constraints import POSITIVE_INT, check
from cnnlens.data import SPLITS
from cnnlens.errors import unknown_choice
from cnnlens.optionspec import flag

#: Test-time augmentations (``--tta``): ``dihedral`` averages the class probabilities over
#: the 8 symmetries of the square (images whose labels do not depend on orientation).
TTAS = ("none", "dihedral")


@dataclass(frozen=True)
class EvaluateOptions:
    """What the evaluate stage computes (``cnnlens evaluate`` options)."""

    split: str = field(default="test", metadata=flag(
        "--split", choices=SPLITS, help="the split to evaluate (default: %(default)s)"))
    batch_size: int = field(default=256, metadata=flag(
        "--batch-size", parse="positive_int",
        help="samples per forward pass (default: %(default)s)"))
    tta: str = field(default="none", metadata=flag(
        "--tta", choices=TTAS,
        help="test-time augmentation: dihedral averages the probabilities over the 8 "
             "rotations and flips of each image (square images; the CAMs still explain the "
             "single, untransformed view) (default: %(default)s)"))

    def validate(self) -> None:
        if self.split not in SPLITS:
            raise unknown_choice("split (--split)", self.split, SPLITS)
        check(self.batch_size, "--batch-size", POSITIVE_INT)
        if self.tta not in TTAS:
            raise unknown_choice("--tta", self.tta, TTAS)


__all__ = ["TTAS", "EvaluateOptions"]
