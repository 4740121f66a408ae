"""Faithfulness of CAMs: the study's metrics, ROAD, intervals, paired tests, a sanity check and
a verdict across metrics.

Metrics are plain functions returning per-sample values (:mod:`.metrics`, :mod:`.road`);
aggregation is a separate step (:mod:`.stats`, :mod:`.verdict`); :func:`run_faithfulness`
is the run-folder stage.
"""

from __future__ import annotations

from cnnlens.faithfulness.imputation import impute
from cnnlens.faithfulness.metrics import (
    METRICS,
    OUTPUTS,
    MetricResult,
    average_drop_increase,
    deletion,
    drop_increase,
    insertion,
    normalize_maps,
    random_maps,
    top_frac_mask,
)
from cnnlens.faithfulness.road import road
from cnnlens.faithfulness.sanity import cascading_randomization, sanity_check, spearman_rows
from cnnlens.faithfulness.scoring import ImputedScores
from cnnlens.faithfulness.stage import parse_method, run_faithfulness
from cnnlens.faithfulness.stats import bootstrap_ci, holm, paired_test, per_class
from cnnlens.faithfulness.table import format_table, format_tests
from cnnlens.faithfulness.verdict import build_verdict, kendalls_w

__all__ = [
    "METRICS", "OUTPUTS", "ImputedScores", "MetricResult", "average_drop_increase",
    "bootstrap_ci", "build_verdict", "cascading_randomization", "deletion", "drop_increase",
    "format_table", "format_tests", "holm", "impute", "insertion", "kendalls_w",
    "normalize_maps", "paired_test", "parse_method", "per_class", "random_maps", "road",
    "run_faithfulness", "sanity_check", "spearman_rows", "top_frac_mask",
]
