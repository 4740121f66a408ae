"""Faithfulness of CAMs: the study's metrics, intervals, paired tests and a sanity check.

Metrics are plain functions returning per-sample values (:mod:`.metrics`); aggregation is a
separate step (:mod:`.stats`); :func:`run_faithfulness` is the run-folder stage.
"""

from __future__ import annotations

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
from cnnlens.faithfulness.sanity import cascading_randomization, spearman_rows
from cnnlens.faithfulness.stage import parse_method, run_faithfulness
from cnnlens.faithfulness.stats import bootstrap_ci, holm, paired_test, per_class
from cnnlens.faithfulness.table import format_table, format_tests

__all__ = [
    "METRICS", "OUTPUTS", "MetricResult", "average_drop_increase", "bootstrap_ci",
    "cascading_randomization", "deletion", "drop_increase", "format_table", "format_tests",
    "holm", "insertion", "normalize_maps", "paired_test", "parse_method", "per_class",
    "random_maps", "run_faithfulness", "spearman_rows", "top_frac_mask",
]
