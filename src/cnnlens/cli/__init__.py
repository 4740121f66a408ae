"""The ``cnnlens`` command: a thin layer over the library.

Each subcommand lives in its own module with ``register(subparsers)``; the command sets
``func(args) -> int``. Errors become one line on stderr (traceback only with ``--debug``).
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import logging
import os
import signal
import sys
import threading
from collections.abc import Iterator, Sequence
from types import FrameType
from typing import NoReturn

from cnnlens import __version__
from cnnlens.errors import INTERRUPTED, CnnlensError

# Order here is the order in ``cnnlens --help``.
COMMAND_MODULES = [
    "cnnlens.cli.run",
    "cnnlens.cli.train",
    "cnnlens.cli.evaluate",
    "cnnlens.cli.explain",
    "cnnlens.cli.faithfulness",
    "cnnlens.cli.data",
    "cnnlens.cli.import_keras",
    "cnnlens.cli.report",
]


def _close_progress_bars() -> None:
    """Clear live progress bars so an error or interrupt line starts on a line of its own."""
    from tqdm import tqdm

    for bar in list(getattr(tqdm, "_instances", ())):
        bar.close()


class _Parser(argparse.ArgumentParser):
    """Usage errors as one line naming the option (``--help`` shows the usage)."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="cnnlens",
        description="Train, evaluate and explain CNNs with class activation maps, "
        "and measure how faithful the maps are.",
    )
    parser.add_argument("--version", action="version", version=f"cnnlens {__version__}")
    parser.add_argument("--debug", action="store_true", help="show tracebacks on errors")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMAND_MODULES:  # a command that cannot be imported is an error, not a skip
        importlib.import_module(name).register(sub)
    return parser


@contextlib.contextmanager
def _ctrl_c_flag() -> Iterator[None]:
    """Ctrl-C raises KeyboardInterrupt as usual and also sets ``errors.INTERRUPTED``."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum: int, frame: FrameType | None) -> None:
        INTERRUPTED.set()
        raise KeyboardInterrupt

    previous = signal.getsignal(signal.SIGINT)
    signal.signal(signal.SIGINT, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous if previous is not None
                      else signal.default_int_handler)
        INTERRUPTED.clear()


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command; its exit status (a torchrun worker exits here, see
    :func:`cnnlens.distributed.exit_if_left_group`)."""
    code = _main(argv)
    if "cnnlens.distributed" in sys.modules:  # imported by commands only, never by --help
        from cnnlens.distributed import exit_if_left_group

        exit_if_left_group(code)
    return code


def _main(argv: Sequence[str] | None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # usage error (one line already printed) or --help
        return exc.code if isinstance(exc.code, int) else 2
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    from cnnlens.distributed import env_rank, shutdown

    rank = env_rank()  # under torchrun only rank 0 prints; every rank reports its errors
    name = f"cnnlens {args.command}" + (f" [rank {rank}]" if rank else "")
    try:
        with open(os.devnull, "w") if rank else contextlib.nullcontext(sys.stdout) as out, \
                contextlib.redirect_stdout(out), _ctrl_c_flag():
            return int(args.func(args) or 0)
    except CnnlensError as exc:
        if args.debug:
            raise
        _close_progress_bars()
        print(f"{name}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt as exc:
        _close_progress_bars()
        detail = f" ({exc})" if str(exc) else "; nothing half-written was left"
        print(f"{name}: interrupted{detail}", file=sys.stderr)
        return 130
    except OSError as exc:  # disk full, read-only folder, ...: one line naming the path
        if args.debug:
            raise
        _close_progress_bars()
        where = exc.filename or "a file"
        print(f"{name}: error: {where}: {exc.strerror or exc}", file=sys.stderr)
        return 2
    finally:
        shutdown()


if __name__ == "__main__":
    sys.exit(main())
