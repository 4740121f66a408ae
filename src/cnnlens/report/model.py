"""What the template renders: sections built from a run's artifacts, never from live data."""

from __future__ import annotations

import json
import math
import shlex
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cnnlens.errors import CnnlensError
from cnnlens.fileio import read_json
from cnnlens.report.images import Figure, embed

OK, NOT_RUN, IMPORTED, ERROR = "ok", "not run", "imported", "error"


@dataclass
class Section:
    """One report section; ``status`` other than ``ok`` is shown as a note with ``command``."""

    id: str
    title: str
    status: str = OK
    command: str | None = None
    message: str | None = None
    data: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Ctx:
    """What every section builder needs: the run folder, its config and the size limits."""

    path: Path
    max_px: int | None
    config: dict[str, Any]
    meta: dict[str, Any]  # checkpoints/model.json, {} when absent
    explorer_limit: int | None = None  # samples in the explorer (None: all, 0: none)

    def figure(self, rel: str, caption: str, *, photo: bool = False) -> Figure:
        """Embed ``rel``; ``photo`` figures (image tiles, CAM overlays) may be lossy WebP."""
        return embed(self.path, rel, caption, self.max_px, lossy=photo)

    def command(self, *words: str) -> str:
        """A shell command for this run, path quoted so it can be pasted as is."""
        return " ".join(["cnnlens", *words[:-1], shlex.quote(words[-1])])

    @property
    def task(self) -> str:
        return str(self.config.get("task", ""))

    def read(self, rel: str) -> Any:
        """Parsed JSON at ``rel``, or ``None`` when the file does not exist."""
        path = self.path / rel
        return read_json(path) if path.is_file() else None

    def read_dict(self, rel: str) -> dict[str, Any] | None:
        obj = self.read(rel)
        if obj is not None and not isinstance(obj, dict):
            raise CnnlensError(f"{self.path / rel}: expected a JSON object")
        return obj


def not_run(sid: str, title: str, command: str, what: str) -> Section:
    return Section(sid, title, status=NOT_RUN, command=command, message=f"{what} not found")


def number(value: Any) -> float | None:
    """A finite float, or ``None`` for missing / non-numeric / NaN (shown as a dash)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    v = float(value)
    return v if math.isfinite(v) else None


def plain(value: Any) -> str:
    """A JSON value as one line of text (dicts and lists as compact JSON)."""
    if value is None:
        return "–"
    if isinstance(value, list) and all(isinstance(v, str | int | float) for v in value):
        return ", ".join(str(v) for v in value)
    if isinstance(value, dict | list):
        return json.dumps(value, default=str)
    return str(value)


def name_of(class_names: list[str], index: Any) -> str:
    """Class name for an index, falling back to the index itself."""
    if isinstance(index, int) and not isinstance(index, bool) and 0 <= index < len(class_names):
        return class_names[index]
    return plain(index)


def as_dict(value: Any) -> dict[str, Any]:
    """``value`` if it is a JSON object, else {} (artifacts may be partial or older)."""
    return value if isinstance(value, dict) else {}


def as_list(value: Any) -> list[Any]:
    """``value`` if it is a JSON array, else []."""
    return value if isinstance(value, list) else []
