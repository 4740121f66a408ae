"""One way to check an option's value, and one way to refuse it.

Options arrive from argparse, from Python keywords and from config files; each of them used
to be checked by hand, in several message styles, and a ``True`` passed where a count was
expected slipped through some checks (``bool`` is an ``int``). Here a constraint says what
it accepts and how to describe it, and :func:`check` refuses everything else with one
message: ``--limit=0 is invalid; accepted: a positive integer``.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from numbers import Integral, Real
from typing import Any, TypeVar

from cnnlens.errors import CnnlensError

T = TypeVar("T")


@dataclass(frozen=True)
class Interval:
    """Integers or real numbers between ``low`` and ``high`` (None: unbounded); ``closed``
    says which ends belong: ``both``, ``left``, ``right`` or ``neither``."""

    kind: type[Integral] | type[Real]
    low: float | None = None
    high: float | None = None
    closed: str = "both"

    def accepts(self, value: Any) -> bool:
        if isinstance(value, bool) or not isinstance(value, self.kind):
            return False
        v = float(value)
        if not math.isfinite(v):
            return False
        left = self.closed in ("both", "left")
        right = self.closed in ("both", "right")
        if self.low is not None and (v < self.low or (v == self.low and not left)):
            return False
        return not (self.high is not None and (v > self.high or (v == self.high and not right)))

    def describe(self) -> str:
        noun = "an integer" if self.kind is Integral else "a number"
        if self.kind is Integral and self.low == 1 and self.high is None:
            return "a positive integer"
        if self.low is not None and self.high is not None:
            lo = "[" if self.closed in ("both", "left") else "("
            hi = "]" if self.closed in ("both", "right") else ")"
            return f"{noun} in {lo}{self.low:g}, {self.high:g}{hi}"
        if self.low is not None:
            op = ">=" if self.closed in ("both", "left") else ">"
            return f"{noun} {op} {self.low:g}"
        if self.high is not None:
            op = "<=" if self.closed in ("both", "right") else "<"
            return f"{noun} {op} {self.high:g}"
        return noun


POSITIVE_INT = Interval(Integral, 1)
NON_NEGATIVE_INT = Interval(Integral, 0)
NON_NEGATIVE = Interval(Real, 0)
POSITIVE = Interval(Real, 0, closed="neither")
FRACTION = Interval(Real, 0, 1, closed="left")  # [0, 1)
OPEN_UNIT = Interval(Real, 0, 1, closed="neither")  # (0, 1)


def check(value: T, name: str, constraint: Interval, *, optional: bool = False) -> T:
    """``value`` if ``constraint`` accepts it (or it is None and ``optional``), else one
    :class:`CnnlensError` naming the option, the value and what is accepted."""
    if value is None and optional:
        return value
    if not constraint.accepts(value):
        extra = " (or none)" if optional else ""
        raise CnnlensError(f"{name}={value!r} is invalid; accepted: "
                           f"{constraint.describe()}{extra}")
    return value


def check_all(values: Iterable[tuple[Any, str, Interval]]) -> None:
    """:func:`check` each ``(value, name, constraint)``, in order."""
    for value, name, constraint in values:
        check(value, name, constraint)


__all__ = ["FRACTION", "NON_NEGATIVE", "NON_NEGATIVE_INT", "OPEN_UNIT", "POSITIVE",
           "POSITIVE_INT", "Interval", "check", "check_all"]
