"""Helpers for tests: what a test may skip on a developer's machine but never under CI."""

from __future__ import annotations

import importlib
import os
import types
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"
#: Under CI a missing dependency, browser or data set fails the test instead of skipping it:
#: a skipped acceptance test would hide a broken install.
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


def unavailable(reason: str) -> None:
    """Skip (on a developer's machine) or fail (under ``CI=true``) a test that cannot run."""
    if IN_CI:
        pytest.fail(f"{reason} (CI=true: required, not skipped)", pytrace=False)
    pytest.skip(reason)


def require(module: str) -> types.ModuleType:
    """Import ``module`` or mark the test unavailable (fails under CI)."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        unavailable(f"{module} is not installed ({exc}); run scripts/setup.sh test")
        raise  # unreachable: unavailable() raises


def require_path(path: Path) -> Path:
    """``path`` if it exists, else mark the test unavailable (fails under CI)."""
    if not path.exists():
        unavailable(f"{path} is absent")
    return path


#: Class names that attack a page: markup, and mathtext for matplotlib.
XSS = "<img src=x onerror=alert(1)>"
MATH = "$x^2$"
