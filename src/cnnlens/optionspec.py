"""How an options field appears on the command line, declared on the field itself.

Each stage's options dataclass is the one declaration of its options: the default is the
field's, and the flag, help text and parsing ride along in the field's metadata
(``field(default=..., metadata=flag("--limit", help=..., parse="positive_int"))``). The CLI
builds its arguments from these (:mod:`cnnlens.cli.options`) and turns parsed arguments back
into the dataclass, so a default or a help text cannot differ between places. Torch-free.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

#: How a flag's text becomes the field's value (the CLI maps each name to a function).
PARSERS = ("str", "int", "float", "positive_int", "non_negative_int", "number_or_name",
           "layer", "list", "switch", "image_size")


@dataclass(frozen=True)
class Flag:
    """An option on the command line: its flags, help, and how its text is read.

    ``parse="list"`` accepts ``a b``, ``a,b`` or both (for ``nargs="+"`` fields); ``negate``
    shows a boolean that defaults to True as ``--no-...`` (the flag turns it off);
    ``parse="switch"`` is a flag without a value for a field whose default is None (not
    given: None; given: True, or False with ``negate``).
    """

    flags: tuple[str, ...]
    help: str
    parse: str = "str"
    nargs: str | None = None
    metavar: str | None = None
    choices: tuple[str, ...] | None = None
    negate: bool = False

    def __post_init__(self) -> None:
        if self.parse not in PARSERS:  # a declaration mistake, caught at import
            raise ValueError(f"unknown parse {self.parse!r}; one of {PARSERS}")


def flag(*flags: str, help: str, **kw: Any) -> dict[str, Flag]:
    """Field metadata declaring the field's command-line option."""
    return {"cli": Flag(tuple(flags), help, **kw)}


__all__ = ["PARSERS", "Flag", "flag"]
