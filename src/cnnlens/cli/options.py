"""Command-line options built from a stage's options dataclass, and parsed back into it.

The dataclass is the one declaration (:mod:`cnnlens.optionspec`): this module only turns
each declared field into an argparse argument whose default is the field's own, and the
parsed values back into the dataclass. A field without a declared flag stays off the
command line (and keeps its default).
"""

from __future__ import annotations

import argparse
from collections.abc import Callable, Collection, Mapping
from dataclasses import MISSING, Field, fields
from typing import Any, TypeVar

from cnnlens.cli._common import (
    image_size,
    non_negative_int,
    number_or_name,
    parse_layer,
    positive_int,
)
from cnnlens.cli._common import split_list as _split_list
from cnnlens.optionspec import Flag

T = TypeVar("T")

_PARSE: dict[str, Callable[[str], Any]] = {
    "str": str, "int": int, "float": float, "positive_int": positive_int,
    "non_negative_int": non_negative_int, "number_or_name": number_or_name,
    "layer": str, "list": str, "switch": str, "image_size": image_size,
}


def _declared(cls: type, only: Collection[str] | None) -> list[tuple[Field[Any], Flag]]:
    out = []
    for f in fields(cls):
        spec = f.metadata.get("cli")
        if isinstance(spec, Flag) and (only is None or f.name in only):
            out.append((f, spec))
    return out


def add_options(parser: Any, cls: type, *, only: Collection[str] | None = None,
                flags: Mapping[str, tuple[str, ...]] | None = None, prefix: str = "") -> None:
    """Add ``cls``'s declared options to ``parser`` (an ArgumentParser or a group);
    ``only`` picks fields, ``flags`` renames a field's flags where a command needs it, and
    ``prefix`` keeps their parsed names apart from another stage's in the same command."""
    for f, spec in _declared(cls, only):
        names = (flags or {}).get(f.name, spec.flags)
        dest = prefix + f.name
        if spec.parse == "switch" or isinstance(f.default, bool):
            action = "store_false" if spec.negate else "store_true"
            parser.add_argument(*names, dest=dest, action=action, default=f.default,
                                help=spec.help)
            continue
        default = f.default if f.default is not MISSING else None
        kwargs: dict[str, Any] = {"dest": dest, "default": default, "help": spec.help,
                                  "type": _PARSE[spec.parse]}
        if spec.nargs:
            kwargs["nargs"] = spec.nargs
            if isinstance(default, tuple):
                kwargs["default"] = list(default)
        kwargs["metavar"] = spec.metavar or (None if spec.choices else f.name.upper())
        if spec.choices:
            kwargs["choices"] = list(spec.choices)
        parser.add_argument(*names, **kwargs)


def options_from_args(cls: type[T], args: argparse.Namespace, *,
                      only: Collection[str] | None = None, prefix: str = "",
                      **extra: Any) -> T:
    """``cls`` with every declared option ``args`` holds (read as the field declares) and
    ``extra`` fields; the rest keep their defaults."""
    values: dict[str, Any] = {}
    for f, spec in _declared(cls, only):
        if not hasattr(args, prefix + f.name):
            continue
        v = getattr(args, prefix + f.name)
        if spec.parse == "list" and v is not None:
            v = _split_list(v)
            v = tuple(v) if v else None
        elif spec.parse == "layer" and v is not None:
            v = parse_layer(v)
        elif isinstance(v, list):
            v = tuple(v)
        values[f.name] = v
    return cls(**values, **extra)


__all__ = ["add_options", "options_from_args"]
