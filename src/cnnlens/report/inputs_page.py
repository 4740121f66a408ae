"""The offline HTML page of ``cnnlens explain --inputs``: every input's overlays side by side.

Same rules as the run report (DESIGN §7): jinja2 with autoescaping (file and class names are
data, never markup), figures as ``data:`` URIs, written atomically. The Content-Security-
Policy is stricter still: the page's one stylesheet is allowed by its sha256 hash, as is the
explorer's script, so the policy needs no ``'unsafe-inline'`` at all.
"""

from __future__ import annotations

import base64
import datetime as _dt
import io
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import numpy as np
from markupsafe import Markup
from PIL import Image

from cnnlens import __version__
from cnnlens.fileio import atomic_write
from cnnlens.report import explorer
from cnnlens.report.build import environment
from cnnlens.report.explorer import sha256_source

TEMPLATE = "inputs.html"
#: Overlays are photo-like: WebP at this quality keeps 500 inputs x 4 pictures near 20 MB.
WEBP_QUALITY = 80

CSS = """
body { font-family: system-ui, -apple-system, "Segoe UI", Roboto, Helvetica, Arial, sans-serif;
       margin: 0 auto; max-width: 1400px; padding: 1em 2em 3em; color: #1d1d1f; line-height: 1.4; }
h2 { border-bottom: 2px solid #ccd; padding-bottom: 0.2em; margin-top: 1.6em; }
table { border-collapse: collapse; margin: 0.6em 0 1em; font-size: 0.92em; }
th, td { border: 1px solid #bbc; padding: 0.25em 0.6em; text-align: left; vertical-align: top; }
th { background: #eef0f5; }
td.n { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
.note { background: #fff7e0; border-left: 4px solid #e0b000; padding: 0.5em 0.8em; }
.input { border-top: 1px solid #dde; padding: 0.6em 0; }
.input h3 { font-size: 1em; margin: 0.2em 0; word-break: break-all; }
.preds { color: #444; font-size: 0.9em; margin: 0.2em 0 0.4em; }
.row { display: flex; flex-wrap: wrap; gap: 0.6em; }
figure { margin: 0; text-align: center; font-size: 0.8em; color: #555; }
img { border: 1px solid #dde; max-width: 100%; height: auto; }
code { font-family: ui-monospace, SFMono-Regular, Menlo, Consolas, monospace; font-size: 0.9em; }
"""


def csp(css: str = CSS, script: str | None = None) -> str:
    """The page's policy: nothing may load but ``data:`` images, this stylesheet and, when
    the page has the explorer, its script; both admitted by their sha256 hashes."""
    scripts = f"script-src {sha256_source(script)}; " if script is not None else ""
    return (f"default-src 'none'; img-src data:; style-src {sha256_source(css)}; {scripts}"
            "base-uri 'none'; form-action 'none'")


def webp_uri(rgb: np.ndarray) -> str:
    """``(H, W, 3)`` uint8 as a lossy WebP ``data:`` URI."""
    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, format="WEBP", quality=WEBP_QUALITY, method=0)
    return "data:image/webp;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def png_uri(png: bytes) -> str:
    """PNG bytes (line plots: small and sharp as PNG) as a ``data:`` URI."""
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")


def write_inputs_page(path: str | Path, context: Mapping[str, Any]) -> Path:
    """Render :data:`TEMPLATE` with ``context`` to ``path``; the file appears only complete.

    ``context`` holds ``title``, ``header`` (key/value rows), ``methods``, ``summary``,
    ``choices``, ``bad``, ``skipped``, ``inputs`` and ``explorer`` (see the template); the
    policy, the stylesheet, the script and the generation time are added here.
    """
    target = Path(path)
    template = environment().get_template(TEMPLATE)
    scripted = bool((context.get("explorer") or {}).get("payload"))
    css = CSS + explorer.style()
    code = explorer.script() if scripted else None
    full = {**context, "css": Markup(css), "csp": Markup(csp(css, code)),
            "script": Markup(code) if code else None, "version": __version__,
            "generated": _dt.datetime.now().isoformat(timespec="seconds")}
    atomic_write(target, lambda fh: _write_chunks(fh, template.generate(**full)))
    return target


def _write_chunks(fh: Any, chunks: Iterator[str]) -> None:
    for chunk in chunks:
        fh.write(chunk.encode("utf-8"))


__all__ = ["CSS", "TEMPLATE", "csp", "png_uri", "webp_uri", "write_inputs_page"]
