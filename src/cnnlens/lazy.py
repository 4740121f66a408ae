"""Package ``__init__`` files that load their modules on first use.

A package's public names are re-exported from its ``__init__``, but importing them eagerly
would make ``cnnlens --help`` import torch, scipy and matplotlib just to list option choices
that live in small torch-free modules of the same packages. ``lazy_exports`` gives an
``__init__`` the module-level ``__getattr__`` and ``__dir__`` (PEP 562) that import the
owning submodule when a name is first asked for.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from typing import Any


def lazy_exports(package: str, exports: Mapping[str, str]
                 ) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """``(__getattr__, __dir__)`` for ``package`` whose ``exports`` map a name to the
    submodule (relative to the package) that defines it."""

    def __getattr__(name: str) -> Any:
        module = exports.get(name)
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        return getattr(importlib.import_module(f"{package}.{module}"), name)

    def __dir__() -> list[str]:
        return sorted(exports)

    return __getattr__, __dir__


__all__ = ["lazy_exports"]
