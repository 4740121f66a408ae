"""What the explain stage computes: its options and their choices, free of torch.

The CLI builds its parser from these (``cnnlens --help`` imports no torch); the engine,
the methods and the stage import the same names, so each is declared here once.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from cnnlens.constraints import NON_NEGATIVE_INT, POSITIVE_INT, check, check_all
from cnnlens.data import SPLITS
from cnnlens.errors import CnnlensError, unknown_choice
from cnnlens.optionspec import flag

#: Every CAM method, in the order help text and reports list them (implementations:
#: :data:`cnnlens.explain.methods.METHODS`, keyed by these names).
METHOD_NAMES: tuple[str, ...] = ("gradcam", "gradcampp", "ablationcam", "xgradcam", "hirescam",
                                 "layercam", "scorecam", "eigencam")
#: The study's three methods: what explain and faithfulness compute when none are named.
DEFAULT_METHODS: tuple[str, ...] = ("gradcam", "gradcampp", "ablationcam")
#: The score a CAM differentiates: the class logit or its softmax probability.
SCORES: tuple[str, ...] = ("logit", "prob")


@dataclass(frozen=True)
class ExplainOptions:
    """What the explain stage computes (``cnnlens explain`` options).

    ``methods``/``layer``/``score`` of None take the model's defaults: the study's three
    methods at the study's layers and score for its models; for a user's model, the last
    conv-like layer with spatial output and the logit.
    """

    methods: tuple[str, ...] | None = field(default=None, metadata=flag(
        "--methods", parse="list", nargs="+", metavar="METHOD",
        help=f"CAM methods (space- or comma-separated) of {', '.join(METHOD_NAMES)} "
        f"(default: {' '.join(DEFAULT_METHODS)})"))
    layer: str | Mapping[str, str] | None = field(default=None, metadata=flag(
        "--layer", parse="layer",
        help="layer to explain at, for all methods (NAME) or per method "
        "(gradcam=NAME,ablationcam=NAME); default: the model's CAM layers, or the last "
        "conv-like layer with spatial output (printed)"))
    score: str | None = field(default=None, metadata=flag(
        "--score", choices=SCORES,
        help="score to explain: the class logit or its softmax probability (default: the "
        "model's; prob for the study's HMT model)"))
    split: str = field(default="test", metadata=flag(
        "--split", choices=SPLITS, help="the split to explain (default: %(default)s)"))
    limit: int | None = field(default=None, metadata=flag(
        "--limit", parse="positive_int", help="explain only the first N samples"))
    batch_size: int | None = field(default=None, metadata=flag(
        "--batch-size", parse="positive_int", help="samples per CAM batch"))
    per_class: int = field(default=3, metadata=flag(
        "--per-class", parse="positive_int",
        help="samples per class gallery (default: %(default)s)"))
    max_failures: int = 8
    figures: bool = field(default=True, metadata=flag(
        "--no-figures", negate=True, help="write the .npz files only"))

    def validate(self) -> None:
        if self.methods is not None:
            resolve_methods(self.methods)
        if self.score is not None and self.score not in SCORES:
            raise unknown_choice("score (--score)", self.score, SCORES)
        if self.split not in SPLITS:
            raise unknown_choice("split (--split)", self.split, SPLITS)
        check(self.limit, "--limit", POSITIVE_INT, optional=True)
        check(self.batch_size, "--batch-size", POSITIVE_INT, optional=True)
        check_all([(self.per_class, "--per-class", POSITIVE_INT),
                   (self.max_failures, "--max-failures", NON_NEGATIVE_INT)])
        if isinstance(self.layer, Mapping):
            for m in self.layer:
                if m not in METHOD_NAMES:
                    raise unknown_choice("CAM method in --layer", m, METHOD_NAMES)

    def request(self) -> dict[str, Any]:
        """The options as JSON (what ``is_done`` compares)."""
        out = asdict(self)
        out["methods"] = list(self.methods) if self.methods is not None else None
        out["layer"] = dict(self.layer) if isinstance(self.layer, Mapping) else self.layer
        return out


def resolve_methods(methods: str | Sequence[str]) -> list[str]:
    """Parse ``"a,b"`` or a sequence into a de-duplicated list of known method names."""
    names = [m.strip() for m in methods.split(",")] if isinstance(methods, str) else list(methods)
    names = [m for m in names if m]
    if not names:
        raise CnnlensError(f"--methods is empty; valid: {', '.join(METHOD_NAMES)}")
    out: list[str] = []
    for name in names:
        if name not in METHOD_NAMES:
            raise unknown_choice("CAM method (--methods)", name, METHOD_NAMES)
        if name not in out:
            out.append(name)
    return out


__all__ = ["DEFAULT_METHODS", "METHOD_NAMES", "SCORES", "ExplainOptions", "resolve_methods"]
