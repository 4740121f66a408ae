"""The one exception type the CLI turns into a one-line message."""

from __future__ import annotations

import difflib
from collections.abc import Iterable


class CnnlensError(ValueError):
    """A user-facing error: the message names the file, parameter or layer at fault."""


def unknown_choice(kind: str, value: str, valid: Iterable[str]) -> CnnlensError:
    """Build an error for an unknown name that lists the valid ones, closest first."""
    valid = sorted(valid)
    close = difflib.get_close_matches(value, valid, n=3, cutoff=0.5)
    hint = f" (did you mean {', '.join(close)}?)" if close else ""
    return CnnlensError(f"unknown {kind} {value!r}{hint}; valid: {', '.join(valid)}")
