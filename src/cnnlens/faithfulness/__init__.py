"""Faithfulness of CAMs: the study's metrics, ROAD, intervals, paired tests, a sanity check and
a verdict across metrics.

Metrics are plain functions returning per-sample values (:mod:`.metrics`, :mod:`.road`);
aggregation is a separate step (:mod:`.stats`, :mod:`.verdict`); :func:`run_faithfulness`
is the run-folder stage.
"""

from cnnlens.lazy import lazy_exports

_EXPORTS = {
    "ImputedScores": "scoring",
    "METRICS": "metrics",
    "MetricResult": "metrics",
    "OUTPUTS": "metrics",
    "average_drop_increase": "metrics",
    "bootstrap_ci": "stats",
    "build_verdict": "verdict",
    "cascading_randomization": "sanity",
    "deletion": "metrics",
    "drop_increase": "metrics",
    "format_table": "table",
    "format_tests": "table",
    "holm": "stats",
    "impute": "imputation",
    "insertion": "metrics",
    "kendalls_w": "verdict",
    "normalize_maps": "metrics",
    "paired_test": "stats",
    "parse_method": "stage",
    "per_class": "stats",
    "random_maps": "metrics",
    "road": "road",
    "run_faithfulness": "stage",
    "sanity_check": "sanity",
    "spearman_rows": "sanity",
    "top_frac_mask": "metrics",
}
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
__all__ = sorted(_EXPORTS)
