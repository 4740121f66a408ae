"""The self-contained HTML report of a run: every stage's results in one offline file."""

from cnnlens.lazy import lazy_exports

_EXPORTS = {
    "DEFAULT_MAX_IMAGE_PX": "images",
    "SECTIONS": "build",
    "build_report": "build",
    "collect": "build",
}
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
__all__ = sorted(_EXPORTS)
