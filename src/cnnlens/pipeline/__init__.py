"""The run layer: run folder, checkpoints, Keras import, the stage list and :func:`run`.

Layers, lowest first: :mod:`.folder` and :mod:`.checkpoint` (used by every stage),
:mod:`.keras` and :mod:`.config`, then :mod:`.stages` and :mod:`.runner` (which import the
stages). Names are loaded on first use, so a stage importing ``cnnlens.pipeline.folder``
does not pull in the stages above it.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "RunDir": "folder",
    "RunLockedError": "folder",
    "prepare_run_dir": "folder",
    "load_checkpoint": "checkpoint",
    "save_checkpoint": "checkpoint",
    "make_config": "config",
    "import_keras": "keras",
    "STAGES": "stages",
    "STAGE_NAMES": "stages",
    "Progress": "progress",
    "RunOptions": "runner",
    "RunResult": "runner",
    "run": "runner",
}


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'cnnlens.pipeline' has no attribute {name!r}")
    return getattr(importlib.import_module(f"cnnlens.pipeline.{module}"), name)


def __dir__() -> list[str]:
    return sorted(_EXPORTS)


__all__ = sorted(_EXPORTS)
