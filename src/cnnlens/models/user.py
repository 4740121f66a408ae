"""A user's own model: ``module:function`` or ``path/to/file.py:function`` returning a Module.

The reference is stored in the run's config and checkpoint sidecar, so loading such a run
imports that module again, exactly as ``torch.hub`` or a training script would: only load
run folders whose model code you trust. Registered models never import user code.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from cnnlens.errors import CnnlensError

#: Files that hold a whole trained model (architecture and weights), by extension: what
#: ``--model FILE`` loads through :func:`cnnlens.models.load.load`.
KERAS_SUFFIXES = (".h5", ".hdf5", ".keras")
TORCH_MODEL_SUFFIXES = (".pt", ".pth", ".bin", ".ckpt", ".pkl")
MODEL_FILE_SUFFIXES = (".onnx", ".pt2", *KERAS_SUFFIXES, *TORCH_MODEL_SUFFIXES)


def is_model_file(name: str) -> bool:
    """True for a reference to a trained model file (``model.onnx``, ``net.pt2``, ...)."""
    return not is_user_model(name) and Path(name).suffix.lower() in MODEL_FILE_SUFFIXES


def is_user_model(name: str) -> bool:
    """True for ``module:function`` / ``file.py:function`` references (no registry name has
    a colon)."""
    return ":" in name


def split_reference(ref: str) -> tuple[str, str]:
    """``(module or file, function)``; a Windows drive letter is not taken as the separator."""
    target, sep, func = ref.rpartition(":")
    if not sep or not target or not func or not func.isidentifier():
        raise CnnlensError(
            f"--model {ref!r}: expected module:function or path/to/file.py:function"
        )
    return target, func


def normalize_reference(ref: str) -> str:
    """Make a file reference absolute, so the run folder works from any directory."""
    target, func = split_reference(ref)
    if target.endswith(".py"):
        return f"{Path(target).expanduser().resolve()}:{func}"
    return ref


def _load_module(target: str, ref: str) -> Any:
    if target.endswith(".py"):
        path = Path(target).expanduser()
        if not path.is_file():
            raise CnnlensError(f"--model {ref}: file {path} not found")
        name = "cnnlens_user_" + hashlib.sha256(str(path.resolve()).encode()).hexdigest()[:12]
        if name in sys.modules:
            return sys.modules[name]
        spec = importlib.util.spec_from_file_location(name, path)
        if spec is None or spec.loader is None:
            raise CnnlensError(f"--model {ref}: cannot import {path}")
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        try:
            spec.loader.exec_module(module)
        except Exception as exc:
            del sys.modules[name]
            raise CnnlensError(
                f"--model {ref}: importing {path} raised {type(exc).__name__}: {exc}"
            ) from exc
        return module
    try:
        return importlib.import_module(target)
    except ModuleNotFoundError as exc:
        if exc.name and target.startswith(exc.name):
            raise CnnlensError(
                f"--model {ref}: module {target!r} not found (is it on PYTHONPATH? a file "
                "path must end in .py)"
            ) from None
        raise CnnlensError(f"--model {ref}: importing {target} failed: {exc}") from exc
    except Exception as exc:
        raise CnnlensError(
            f"--model {ref}: importing {target} raised {type(exc).__name__}: {exc}"
        ) from exc


def load_user_builder(ref: str) -> Callable[..., Any]:
    """The builder function a reference names; errors name the reference and what is wrong."""
    target, func = split_reference(ref)
    module = _load_module(target, ref)
    builder = getattr(module, func, None)
    if builder is None:
        public = sorted(n for n in vars(module) if callable(getattr(module, n))
                        and not n.startswith("_"))
        raise CnnlensError(
            f"--model {ref}: {target} has no function {func!r}; callables there: "
            f"{', '.join(public[:20]) or 'none'}"
        )
    if not callable(builder):
        raise CnnlensError(f"--model {ref}: {func!r} is not callable")
    return builder


__all__ = ["KERAS_SUFFIXES", "MODEL_FILE_SUFFIXES", "TORCH_MODEL_SUFFIXES", "is_model_file",
           "is_user_model", "load_user_builder", "normalize_reference", "split_reference"]
