"""The ``cnnlens`` command: a thin layer over the library.

Each subcommand lives in its own module with ``register(subparsers)``; the command sets
``func(args) -> int``. Errors become one line on stderr (traceback only with ``--debug``).
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
from collections.abc import Sequence

from cnnlens import __version__
from cnnlens.errors import CnnlensError

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


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="cnnlens",
        description="Train, evaluate and explain CNNs with class activation maps, "
        "and measure how faithful the maps are.",
    )
    parser.add_argument("--version", action="version", version=f"cnnlens {__version__}")
    parser.add_argument("--debug", action="store_true", help="show tracebacks on errors")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMAND_MODULES:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name == name:  # a stage not built yet
                continue
            raise
        module.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    try:
        return int(args.func(args) or 0)
    except CnnlensError as exc:
        if args.debug:
            raise
        print(f"cnnlens {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"cnnlens {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
