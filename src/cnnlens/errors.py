"""The one exception type the CLI turns into a one-line message, and the Ctrl-C flag."""

from __future__ import annotations

import difflib
import threading
from collections.abc import Iterable

#: Set by the CLI's SIGINT handler. Python drops a KeyboardInterrupt raised inside a
#: finalizer (it prints "Exception ignored"), so the pipeline also checks this flag between
#: stages: a Ctrl-C that lands there still stops the run.
INTERRUPTED = threading.Event()


def check_interrupted() -> None:
    """Raise KeyboardInterrupt if Ctrl-C was pressed, even if its first raise was lost."""
    if INTERRUPTED.is_set():
        raise KeyboardInterrupt


class CnnlensError(ValueError):
    """A user-facing error: the message names the file, parameter or layer at fault."""


def unknown_choice(kind: str, value: str, valid: Iterable[str]) -> CnnlensError:
    """Build an error for an unknown name that lists the valid ones, closest first."""
    valid = sorted(valid)
    close = difflib.get_close_matches(value, valid, n=3, cutoff=0.5)
    hint = f" (did you mean {', '.join(close)}?)" if close else ""
    return CnnlensError(f"unknown {kind} {value!r}{hint}; valid: {', '.join(valid)}")
