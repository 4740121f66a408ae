"""Number formatting and the Jinja environment of the report."""

from __future__ import annotations

import math

from cnnlens.report.build import environment, fmt_num, fmt_p, fmt_pct, fmt_secs
from cnnlens.report.model import name_of, plain


def test_numbers_and_missing_values() -> None:
    assert fmt_num(0.12345) == "0.123" and fmt_num(3.0, 0) == "3"
    for missing in (None, math.nan, math.inf, "x", True):
        assert fmt_num(missing) == fmt_pct(missing) == fmt_secs(missing) == fmt_p(missing) == "–"
    assert fmt_pct(0.8347, 2) == "83.47 %"
    assert fmt_secs(0.0123) == "12.30 ms" and fmt_secs(75.0) == "75.00 s"
    assert fmt_p(1.234e-7) == "1.23e-07"


def test_plain_and_class_names() -> None:
    assert plain(None) == "–" and plain({"a": [1]}) == '{"a": [1]}'
    assert plain(["conv2d", 3]) == "conv2d, 3" and plain([[1], {}]) == "[[1], {}]"
    assert name_of(["cat", "dog"], 1) == "dog"
    assert name_of(["cat"], 5) == "5" and name_of(["cat"], True) == "True"


def test_environment_escapes_strings_and_templates() -> None:
    env = environment()
    assert env.from_string("{{ x }}").render(x="<b>&") == "&lt;b&gt;&amp;"
    html = env.get_template("report.html")
    assert html.name == "report.html"
