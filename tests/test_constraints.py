"""One check and one message for every option's value (cnnlens.constraints)."""

from __future__ import annotations

from numbers import Integral, Real

import pytest

from cnnlens.constraints import (
    FRACTION,
    NON_NEGATIVE_INT,
    OPEN_UNIT,
    POSITIVE,
    POSITIVE_INT,
    Interval,
    check,
)
from cnnlens.errors import CnnlensError


@pytest.mark.parametrize(("constraint", "good", "bad", "words"), [
    (POSITIVE_INT, [1, 7], [0, -1, 1.5, True, "3", None], "a positive integer"),
    (NON_NEGATIVE_INT, [0, 3], [-1, 2.0, False], "an integer >= 0"),
    (POSITIVE, [1e-9, 3, 2.5], [0, -1.0, float("inf"), float("nan"), True], "a number > 0"),
    (FRACTION, [0, 0.5], [1.0, -0.1], "a number in [0, 1)"),
    (OPEN_UNIT, [0.05], [0.0, 1.0], "a number in (0, 1)"),
    (Interval(Real, 0, 1, closed="right"), [1.0, 0.3], [0.0], "a number in (0, 1]"),
    (Interval(Integral, high=10), [10, -3], [11], "an integer <= 10"),
])
def test_each_constraint_accepts_and_says_what(constraint: Interval, good: list[object],
                                               bad: list[object], words: str) -> None:
    assert constraint.describe() == words
    for v in good:
        assert check(v, "--x", constraint) == v
    for v in bad:
        with pytest.raises(CnnlensError, match=rf"^--x={v!r} is invalid; accepted: "):
            check(v, "--x", constraint)


def test_optional_values_and_the_message() -> None:
    assert check(None, "--limit", POSITIVE_INT, optional=True) is None
    with pytest.raises(CnnlensError) as err:
        check(0, "--limit", POSITIVE_INT, optional=True)
    assert str(err.value) == "--limit=0 is invalid; accepted: a positive integer (or none)"


def test_every_command_refuses_a_bad_count_the_same_way() -> None:
    """The same bad value through the recipe, explain, faithfulness and evaluate options."""
    from cnnlens.evaluate.options import EvaluateOptions
    from cnnlens.explain.options import ExplainOptions
    from cnnlens.faithfulness.options import FaithfulnessOptions
    from cnnlens.train.recipes import get_recipe

    for make in (lambda: get_recipe("study").with_overrides(batch_size=True),
                 lambda: ExplainOptions(batch_size=True).validate(),
                 lambda: FaithfulnessOptions(batch_size=True).validate(),
                 lambda: EvaluateOptions(batch_size=True).validate()):
        with pytest.raises(CnnlensError, match=r"^--batch-size=True is invalid; accepted: "
                           "a positive integer"):
            make()
