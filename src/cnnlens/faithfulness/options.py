"""What the faithfulness stage computes: its options, their choices and their checks,
free of torch.

The CLI builds its parser from these (``cnnlens --help`` imports neither torch nor scipy);
the metric, ROAD, imputation and sanity modules import the same names, so each is declared
here once.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from numbers import Real
from typing import Any

from cnnlens.constraints import (
    NON_NEGATIVE,
    OPEN_UNIT,
    POSITIVE_INT,
    Interval,
    check,
    check_all,
)
from cnnlens.data import SPLITS
from cnnlens.errors import CnnlensError, unknown_choice
from cnnlens.explain.options import DEFAULT_METHODS, SCORES, ExplainOptions
from cnnlens.optionspec import flag
from cnnlens.train.recipes import PRECISIONS

#: Metric families, in the order outputs list them (implementations:
#: :data:`cnnlens.faithfulness.metrics.METRICS`, keyed by these names).
METRIC_NAMES: tuple[str, ...] = ("drop_increase", "confidence", "deletion", "insertion", "road")
#: What removed positions take: zeros, the data's mean, ROAD's noisy linear imputation (or a
#: number, given as such).
BASELINES: tuple[str, ...] = ("zero", "mean", "road")
#: ROAD's removal percentages (MoRF and LeRF each).
PERCENTAGES: tuple[float, ...] = (10.0, 30.0, 50.0, 70.0, 90.0)
#: ROAD's noise scale (standard deviation added to each imputed position).
NOISE = 0.01
#: The sanity check's parameter draws and its score for a constant map.
DRAWS: tuple[str, ...] = ("normal", "reset")
CONSTANT: tuple[str, ...] = ("zero", "nan")
DEFAULT_STEPS = 20
#: The per-input score of loose inputs (no labels): deletion/insertion curves of this many
#: chunks; 2 scores one interior point (half the positions removed / inserted), the most a
#: CPU affords for hundreds of 224 px inputs and four maps each.
LABEL_FREE_STEPS = 2
#: ... whose removed positions take each sample's per-channel mean: with zeros, a 224 px HMT
#: tile half blacked out scores ~0 for every map (the curve measures the black blob), so a
#: two-chunk curve could not tell maps apart.
LABEL_FREE_BASELINE = "mean"
DEFAULT_N_BOOT = 2000
#: Signals get every metric (MNIST-1D: seconds).
DEFAULT_METRICS: tuple[str, ...] = METRIC_NAMES
#: Image tasks get what fits the pipeline's budget (``cnnlens run --task hmt`` end to end in
#: about 4 min on 2 CPU cores, so ~2 min for this stage): every metric costs one forward
#: pass per map (3 methods + random) and image per pass, and the VGG-7 scores ~35 tiles/s
#: at 224 px on an idle 2-core CPU, i.e. ~1 min per pass over the 496 HMT tiles and 4 maps.
#: Table I (1 pass) + the unmasked scores + the 3-seed sanity check (~30 s) fill the
#: budget; confidence (1 pass), deletion/insertion (steps + 1 passes each) and ROAD
#: (2 × percentages passes plus a 10-50 ms multigrid solve per imputed tile; measured 17 min
#: for 3 methods and the random map) are options whose projected time the stage prints.
IMAGE_METRICS: tuple[str, ...] = ("drop_increase",)
#: Samples of the sanity check (signals, images): each seed recomputes the maps of every
#: method once per parameterised layer; 3 seeds × 16 tiles × 5 layers × 3 methods ≈ 20 s on
#: the VGG-7 at 224 px (2 cores, idle), 3 × 32 signals on MNIST-1D well under a second.
SANITY_SAMPLES: tuple[int, int] = (32, 16)
DEFAULT_FRACS: dict[str, tuple[float, ...]] = {"hmt": (0.9,), "mnist1d": (0.15, 0.3)}
RANDOM = "random"


def method_spec(method: str, layer: str | Mapping[str, str] | None, score: str | None) -> str:
    """``name[@layer][:score]``: an explain method, layer and score as a faithfulness method."""
    at = layer.get(method) if isinstance(layer, Mapping) else layer
    return method + (f"@{at}" if at else "") + (f":{score}" if score else "")


def _tuples(fields: dict[str, Any]) -> dict[str, Any]:
    """Sequence-valued options as tuples (options objects are frozen and hashable), whole
    percentages as floats (so ``[10, 50]`` and ``[10.0, 50.0]`` are the same request)."""
    out = {k: tuple(v) if isinstance(v, list | tuple) else v for k, v in fields.items()}
    if isinstance(out.get("percentages"), tuple):
        out["percentages"] = tuple(float(p) if isinstance(p, int) and not isinstance(p, bool)
                                   else p for p in out["percentages"])
    return out


def check_frac(frac: float) -> float:
    """``frac`` is the kept fraction of positions: (0, 1]."""
    return float(check(frac, "frac", Interval(Real, 0, 1, closed="right")))


def check_baseline(baseline: str | float) -> str | float:
    """``zero``, ``mean``, ``road`` or a finite number (the value removed positions take)."""
    if isinstance(baseline, int | float) and not isinstance(baseline, bool):
        if not math.isfinite(baseline):
            raise CnnlensError(f"baseline={baseline!r} is invalid; accepted: a finite number")
        return float(baseline)
    if baseline not in BASELINES:
        raise CnnlensError(f"baseline={baseline!r} is invalid; accepted: "
                           f"{', '.join(BASELINES)} or a number")
    return baseline


def check_percentages(percentages: Sequence[float]) -> tuple[float, ...]:
    """Removal percentages: at least one, each in (0, 100), no repeats; returned sorted."""
    try:
        vals = [float(p) for p in percentages]
    except (TypeError, ValueError):
        raise CnnlensError(f"percentages={percentages!r} is invalid; accepted: numbers in "
                           "(0, 100)") from None
    if not vals or any(isinstance(p, bool) or not 0.0 < p < 100.0 for p in vals) or len(
            set(vals)) != len(vals):
        raise CnnlensError(f"percentages={list(percentages)!r} is invalid; accepted: one or more "
                           "distinct numbers in (0, 100)")
    return tuple(sorted(vals))


def check_noise(noise: float) -> float:
    """The noise scale is a finite number >= 0 (0: the plain linear imputation)."""
    return float(check(noise, "noise", NON_NEGATIVE))


@dataclass(frozen=True)
class MethodSpec:
    """A method to score: ``name[@layer][:score]``, e.g. ``gradcam@max_pooling2d_1:prob``."""

    label: str
    method: str
    layer: str | None = None
    score: str | None = None


def parse_method(spec: str) -> MethodSpec:
    """Parse ``name[@layer][:score]``; the whole string is the method's label in the outputs."""
    text = spec.strip()
    rest, score = text, None
    if ":" in text:
        rest, score = text.rsplit(":", 1)
        if score not in SCORES:
            raise unknown_choice(f"score in --methods {text!r}", score, SCORES)
    name, _, layer = rest.partition("@")
    if not name or name == RANDOM:
        raise CnnlensError(f"--methods {text!r}: expected name[@layer][:score]; "
                           f"the {RANDOM!r} baseline is always included")
    return MethodSpec(label=text, method=name, layer=layer or None, score=score)


def _check_options(fracs: Sequence[float], metrics: Sequence[str], limit: int | None,
                   steps: int, baseline: str | float, batch_size: int | None) -> None:
    for f in fracs:
        check_frac(f)
    for m in metrics:
        if m not in METRIC_NAMES:
            raise unknown_choice("metric (--metrics)", m, METRIC_NAMES)
    check(limit, "--limit", POSITIVE_INT, optional=True)
    check(steps, "--steps", POSITIVE_INT)
    if isinstance(baseline, str) and baseline not in BASELINES:
        raise unknown_choice("baseline (--baseline)", baseline, BASELINES)
    check_baseline(baseline)
    check(batch_size, "--batch-size", POSITIVE_INT, optional=True)


def default_metrics(kind: str) -> tuple[str, ...]:
    """The metric set a task kind gets when none is named."""
    return IMAGE_METRICS if kind == "image" else DEFAULT_METRICS


@dataclass(frozen=True)
class FaithfulnessOptions:
    """What the faithfulness stage computes (``cnnlens faithfulness`` options).

    ``methods`` are ``name[@layer][:score]``; None takes the explain stage's defaults (the
    model's layers and score). ``fracs``/``metrics`` of None take the task's defaults. The
    random-map seed and the bootstrap seed are this stage's own ``seed``.
    """

    methods: tuple[str, ...] | None = field(default=None, metadata=flag(
        "--methods", parse="list", nargs="+", metavar="METHOD",
        help="CAM methods as name[@layer][:score], e.g. gradcam@max_pooling2d_1:prob "
        f"(default: {' '.join(DEFAULT_METHODS)}); the random baseline is always added"))
    fracs: tuple[float, ...] | None = field(default=None, metadata=flag(
        "--frac", parse="float", nargs="+", metavar="F",
        help="kept fraction(s) for the drop/increase rate, in (0, 1] (default: "
        + "; ".join(f"{' '.join(f'{v:g}' for v in fr)} for {task}"
                    for task, fr in DEFAULT_FRACS.items()) + ")"))
    metrics: tuple[str, ...] | None = field(default=None, metadata=flag(
        "--metrics", parse="list", nargs="+", metavar="METRIC",
        help=f"metrics to compute ({', '.join(METRIC_NAMES)}; default: all for signals, "
        f"{' '.join(IMAGE_METRICS)} for images; the output prints the projected time of the "
        "others)"))
    split: str = field(default="test", metadata=flag(
        "--split", choices=SPLITS, help="the split to score (default: %(default)s)"))
    limit: int | None = field(default=None, metadata=flag(
        "--limit", parse="positive_int", help="score only the first N samples"))
    steps: int = field(default=DEFAULT_STEPS, metadata=flag(
        "--steps", parse="positive_int",
        help="deletion/insertion steps (default: %(default)s)"))
    baseline: str | float = field(default="zero", metadata=flag(
        "--baseline", parse="number_or_name",
        help=f"what removed positions become in drop_increase and deletion/insertion "
        f"({', '.join(BASELINES)} or a number; road = noisy linear imputation from the "
        "neighbours; default: %(default)s, as the study)"))
    percentages: tuple[float, ...] = field(default=PERCENTAGES, metadata=flag(
        "--percentages", parse="float", nargs="+", metavar="P",
        help="ROAD removal percentages, in (0, 100) (default: "
        f"{' '.join(f'{v:g}' for v in PERCENTAGES)})"))
    noise: float = field(default=NOISE, metadata=flag(
        "--noise", parse="float",
        help="std of the Gaussian noise ROAD adds to imputed values (default: %(default)s)"))
    n_boot: int = field(default=DEFAULT_N_BOOT, metadata=flag(
        "--n-boot", parse="positive_int", help="bootstrap resamples (default: %(default)s)"))
    alpha: float = 0.05
    seed: int = field(default=0, metadata=flag(
        "--faithfulness-seed", "--seed", parse="int",
        help="seed of the random maps and bootstrap (default: %(default)s)"))
    sanity: bool = field(default=True, metadata=flag(
        "--no-sanity", negate=True, help="skip the model-randomization check"))
    sanity_samples: int | None = field(default=None, metadata=flag(
        "--sanity-samples", parse="positive_int",
        help="samples used by the sanity check (default: "
        f"{SANITY_SAMPLES[0]} signals, {SANITY_SAMPLES[1]} images)"))
    sanity_seeds: int = field(default=3, metadata=flag(
        "--sanity-seeds", parse="positive_int",
        help="random draws of the sanity check; the verdict reads their interval "
        "(default: %(default)s)"))
    sanity_draw: str = field(default="normal", metadata=flag(
        "--sanity-draw", choices=DRAWS,
        help="how layers are re-drawn: normal = N(0, std of the trained tensor^2), reset = "
        "reset_parameters() as Quantus (default: %(default)s)"))
    sanity_constant: str = field(default="zero", metadata=flag(
        "--sanity-constant", choices=CONSTANT,
        help="Spearman of a map that turns constant: zero, or nan (left out, as "
        "Quantus/scipy) (default: %(default)s)"))
    random_cells: tuple[int, ...] | None = field(default=None, metadata=flag(
        "--random-cells", parse="int", nargs="+", metavar="N",
        help="grid of the random baseline maps, one size per input dimension (default: the "
        "first method's CAM-layer grid)"))
    use_saved: bool = field(default=True, metadata=flag(
        "--recompute", negate=True, help="compute the maps even when cams/ holds them"))
    figures: bool = field(default=True, metadata=flag(
        "--no-figures", negate=True, help="skip the PNG figures"))
    batch_size: int | None = field(default=None, metadata=flag(
        "--batch-size", parse="positive_int", help="samples per scoring batch"))
    precision: str = field(default="fp32", metadata=flag(
        "--precision", choices=PRECISIONS,
        help="precision of the metrics' forward passes (the maps and the sanity check stay "
        "fp32): bf16 autocast about halves their time where the hardware computes bf16 "
        "natively, and moves probabilities by about 1e-2; auto: bf16 for images on such "
        "hardware, else fp32 (default: %(default)s)"))

    def validate(self) -> None:
        if self.methods is not None:
            specs = [parse_method(m) for m in self.methods]
            if len({s.label for s in specs}) != len(specs):
                raise CnnlensError(f"--methods lists a method twice: {', '.join(self.methods)}")
        _check_options(self.fracs or (), self.metrics or (), self.limit, self.steps,
                       self.baseline, self.batch_size)
        check_all([(self.n_boot, "--n-boot", POSITIVE_INT),
                   (self.sanity_seeds, "--sanity-seeds", POSITIVE_INT),
                   (self.alpha, "--alpha", OPEN_UNIT)])
        check(self.sanity_samples, "--sanity-samples", POSITIVE_INT, optional=True)
        if self.sanity_draw not in DRAWS:
            raise unknown_choice("randomization draw (--sanity-draw)", self.sanity_draw, DRAWS)
        if self.sanity_constant not in CONSTANT:
            raise unknown_choice("constant-map score (--sanity-constant)",
                                 self.sanity_constant, CONSTANT)
        check_percentages(self.percentages)
        check_noise(self.noise)
        if self.split not in SPLITS:
            raise unknown_choice("split (--split)", self.split, SPLITS)
        if self.precision not in PRECISIONS:
            raise unknown_choice("--precision", self.precision, PRECISIONS)

    def following(self, explain: ExplainOptions) -> FaithfulnessOptions:
        """These options with what is unset taken from the explain stage's: the same methods
        at the same layer and score, and the same samples. What a run scores is what it
        explained, whether it was started from the CLI or from Python."""
        methods = self.methods
        if methods is None and (explain.methods or explain.layer is not None or explain.score):
            names = explain.methods or DEFAULT_METHODS
            methods = tuple(method_spec(m, explain.layer, explain.score) for m in names)
        limit = self.limit if self.limit is not None else explain.limit
        return replace(self, methods=methods, limit=limit)

    @classmethod
    def of(cls, options: FaithfulnessOptions | None, fields: dict[str, Any]
           ) -> FaithfulnessOptions:
        """``options`` with keyword ``fields`` applied (sequences become tuples), validated:
        how library calls that take either an options object or keywords build theirs."""
        if options is not None and fields:
            options = replace(options, **_tuples(fields))
        opts = options if options is not None else cls(**_tuples(fields))
        opts.validate()
        return opts

    def request(self) -> dict[str, Any]:
        """The options as JSON, minus those that do not change the numbers."""
        out = asdict(self)
        for key in ("figures", "batch_size", "use_saved"):
            out.pop(key)
        if out["precision"] == "fp32":  # results written before the option stay current
            out.pop("precision")
        for key in ("methods", "fracs", "metrics", "random_cells", "percentages"):
            if out[key] is not None:
                out[key] = list(out[key])
        return out


__all__ = ["BASELINES", "CONSTANT", "DEFAULT_FRACS", "DEFAULT_METHODS", "DEFAULT_METRICS",
           "DEFAULT_N_BOOT", "DEFAULT_STEPS", "DRAWS", "IMAGE_METRICS", "LABEL_FREE_BASELINE",
           "LABEL_FREE_STEPS", "METRIC_NAMES", "NOISE", "PERCENTAGES", "RANDOM",
           "SANITY_SAMPLES", "SCORES", "FaithfulnessOptions", "MethodSpec", "check_baseline",
           "check_frac", "check_noise", "check_percentages", "default_metrics", "method_spec",
           "parse_method"]
