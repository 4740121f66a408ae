"""Table I, with intervals: methods × metrics as markdown, plus the paired-test verdicts."""

from __future__ import annotations

from typing import Any

from cnnlens.faithfulness.metrics import OUTPUTS


def _label(key: str) -> str:
    base, _, frac = key.partition("@")
    spec = OUTPUTS.get(base)
    name = spec.label if spec else base
    return f"{name}, frac {frac}" if frac else name


def _cell(s: dict[str, float], digits: int) -> str:
    return f"{s['mean']:.{digits}f} [{s['low']:.{digits}f}, {s['high']:.{digits}f}]"


def format_table(results: dict[str, Any], *, alpha: float = 0.05) -> str:
    """Markdown table of mean [95 % CI] per method and metric.

    A ``*`` marks a method that differs from the random baseline beyond noise (paired test,
    Holm-corrected across all tests of that metric); ``↑``/``↓`` say which way is better.
    """
    summary: dict[str, dict[str, dict[str, float]]] = results["summary"]
    keys: list[str] = results["metric_keys"]
    methods = list(summary)
    vs_random = {(t["a"], t["metric"]): t for t in results.get("tests", []) if t["b"] == "random"}
    head = ["method"]
    for k in keys:
        spec = OUTPUTS.get(k.partition("@")[0])
        arrow = "" if spec is None else (" ↑" if spec.higher_is_better else " ↓")
        head.append(_label(k) + arrow)
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for m in methods:
        row = [m]
        for k in keys:
            s = summary[m].get(k)
            if s is None:
                row.append("–")
                continue
            digits = 3 if OUTPUTS.get(k.partition("@")[0], OUTPUTS["drop"]).scale == 1 else 2
            t = vs_random.get((m, k))
            star = "*" if t is not None and t.get("p_value_holm", 1.0) < alpha else ""
            row.append(_cell(s, digits) + star)
        lines.append("| " + " | ".join(row) + " |")
    n = next((s["n"] for per in summary.values() for s in per.values()), 0)
    lines.append("")
    lines.append(f"n = {n} samples; mean [95 % bootstrap CI]; * = differs from random "
                 f"(paired test, Holm-corrected, alpha {alpha}).")
    return "\n".join(lines)


def format_tests(results: dict[str, Any], *, alpha: float = 0.05) -> str:
    """One line per method pair and metric: the verdict and its corrected p-value."""
    out = []
    for t in results.get("tests", []):
        out.append(f"{t['metric']}: {t['a']} vs {t['b']}: {t['verdict']} "
                   f"(diff {t['mean_diff_scaled']:+.3g}, {t['test']}, "
                   f"p {t['p_value']:.3g}, Holm {t['p_value_holm']:.3g})")
    return "\n".join(out)


__all__ = ["format_table", "format_tests"]
