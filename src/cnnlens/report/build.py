"""Render a run folder's artifacts into one self-contained HTML file, written atomically."""

from __future__ import annotations

import datetime as _dt
import logging
import math
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import jinja2
from markupsafe import Markup

from cnnlens import __version__
from cnnlens.errors import CnnlensError
from cnnlens.fileio import atomic_write
from cnnlens.report import cam_sections, explorer, run_sections
from cnnlens.report.images import DEFAULT_MAX_IMAGE_PX, check_max_image_px
from cnnlens.report.model import ERROR, OK, Ctx, Section
from cnnlens.report.options import DEFAULT_EXPLORER_LIMIT
from cnnlens.rundir.folder import RunDir

log = logging.getLogger(__name__)

TEMPLATE = "report.html"

#: Sections in report order; each reads only its own artifacts.
SECTIONS: dict[str, tuple[str, Callable[[Ctx], Section]]] = {
    "data": ("Data", run_sections.data_summary),
    "training": ("Training", run_sections.training),
    "evaluation": ("Evaluation", run_sections.evaluation),
    "cams": ("Class activation maps", cam_sections.cams),
    "faithfulness": ("Faithfulness", cam_sections.faithfulness),
    "explorer": (explorer.TITLE, explorer.section),
    "timings": ("Timings", run_sections.timings),
}

#: Malformed artifacts (wrong types where the section expected others) end up here; the
#: section then says what could not be read instead of the whole report failing.
_SECTION_ERRORS = (CnnlensError, KeyError, TypeError, ValueError, IndexError, AttributeError)


def build_report(
    run_dir: str | Path, *, out: str | Path | None = None,
    max_image_px: int | None = DEFAULT_MAX_IMAGE_PX,
    explorer_limit: int = DEFAULT_EXPLORER_LIMIT,
    config: Mapping[str, Any] | None = None,
) -> Path:
    """Write ``RUN/report.html`` (or ``out``) from the run's artifacts; return its path.

    Figures are embedded as PNG data URIs, downscaled to fit ``max_image_px`` (0 or None
    keeps full size); the explorer shows the first ``explorer_limit`` explained samples (0:
    no explorer). Sections whose stage has not run say so, with the command that
    produces them. The file appears only complete: a failure leaves the old one in place.
    ``config``: the run's config when the caller holds it (else ``config.json`` is read).
    """
    run = RunDir(run_dir)
    cfg = dict(run.use_config(config))  # the sections' own copy
    ctx = Ctx(path=run.path, max_px=check_max_image_px(max_image_px), config=cfg,
              meta=_model_meta(run), explorer_limit=explorer_limit)
    target = Path(out) if out is not None else run.report_path
    if target.is_dir():
        raise CnnlensError(f"--out {target}: is a folder; give the HTML file's path")
    context = collect(ctx)
    template = environment().get_template(TEMPLATE)
    atomic_write(target, lambda fh: _write_chunks(fh, template.generate(**context)))
    return target


def _write_chunks(fh: Any, chunks: Iterator[str]) -> None:
    for chunk in chunks:
        fh.write(chunk.encode("utf-8"))


def _model_meta(run: RunDir) -> dict[str, Any]:
    """``checkpoints/model.json``, or {} when the run has no (readable) model yet."""
    from cnnlens.fileio import read_json

    path = run.checkpoints / "model.json"
    if not path.is_file():
        return {}
    try:
        meta = read_json(path)
    except CnnlensError as exc:
        log.warning("report: %s", exc)
        return {}
    return meta if isinstance(meta, dict) else {}


def collect(ctx: Ctx) -> dict[str, Any]:
    """Everything the template needs, as plain data (also handy for tests)."""
    sections = []
    for sid, (title, build) in SECTIONS.items():
        try:
            sections.append(build(ctx))
        except _SECTION_ERRORS as exc:
            log.warning("report: section %s skipped: %s", title, exc)
            sections.append(Section(sid, title, status=ERROR,
                                    message=f"could not be built: {exc}"))
    scripted = any(s.id == "explorer" and s.status == OK for s in sections)
    task = ctx.config.get("task", "?")
    model = ctx.config.get("model", "?")
    return {
        "title": f"cnnlens report: {task} / {model}",
        "run_name": ctx.path.resolve().name,
        "generated": _dt.datetime.now().isoformat(timespec="seconds"),
        "version": __version__,
        "header": run_sections.header(ctx),
        "sections": sections,
        "csp": Markup(csp(scripted)),  # our constants and a hash: no data
        "script": Markup(explorer.script()) if scripted else None,
        "explorer_css": Markup(explorer.style()),
    }


def csp(scripted: bool) -> str:
    """The page's policy: nothing loads but ``data:`` images; the one script, when the page
    has the explorer, is admitted by its hash (never ``'unsafe-inline'``)."""
    script = f"script-src {explorer.script_hash()}; " if scripted else ""
    return (f"default-src 'none'; img-src data:; style-src 'unsafe-inline'; {script}"
            "base-uri 'none'; form-action 'none'")


def environment() -> jinja2.Environment:
    """Jinja environment with HTML autoescaping on: names from data files are never markup."""
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("cnnlens.report", "templates"),
        autoescape=jinja2.select_autoescape(["html"], default_for_string=True, default=True),
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters.update(num=fmt_num, pct=fmt_pct, secs=fmt_secs, pval=fmt_p)
    return env


def _finite(x: Any) -> float | None:
    if isinstance(x, bool) or not isinstance(x, int | float) or not math.isfinite(x):
        return None
    return float(x)


def fmt_num(x: Any, digits: int = 3) -> str:
    """A number with fixed digits; a dash for missing values."""
    v = _finite(x)
    if v is None:
        return "–"
    return str(int(v)) if digits == 0 else f"{v:.{digits}f}"


def fmt_pct(x: Any, digits: int = 1) -> str:
    """A fraction in [0, 1] as a percentage."""
    v = _finite(x)
    return "–" if v is None else f"{100 * v:.{digits}f} %"


def fmt_secs(x: Any) -> str:
    """Seconds with sensible precision (ms below one second)."""
    v = _finite(x)
    if v is None:
        return "–"
    return f"{1000 * v:.2f} ms" if v < 1 else f"{v:.2f} s"


def fmt_p(x: Any) -> str:
    v = _finite(x)
    return "–" if v is None else f"{v:.3g}"
