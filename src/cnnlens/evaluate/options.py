"""What the evaluate stage computes: its options, declared once and free of torch (the CLI
builds ``cnnlens evaluate``'s arguments from them)."""

from __future__ import annotations

from dataclasses import dataclass, field

from cnnlens.constraints import POSITIVE_INT, check
from cnnlens.data import SPLITS
from cnnlens.errors import unknown_choice
from cnnlens.optionspec import flag


@dataclass(frozen=True)
class EvaluateOptions:
    """What the evaluate stage computes (``cnnlens evaluate`` options)."""

    split: str = field(default="test", metadata=flag(
        "--split", choices=SPLITS, help="the split to evaluate (default: %(default)s)"))
    batch_size: int = field(default=256, metadata=flag(
        "--batch-size", parse="positive_int",
        help="samples per forward pass (default: %(default)s)"))

    def validate(self) -> None:
        if self.split not in SPLITS:
            raise unknown_choice("split (--split)", self.split, SPLITS)
        check(self.batch_size, "--batch-size", POSITIVE_INT)


__all__ = ["EvaluateOptions"]
