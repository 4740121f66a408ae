"""Torch files that hold a whole model: pickled modules, and TorchScript archives (refused).

``torch.save(model)`` pickles the module, so reading it back imports and runs whatever the
pickle names: cnnlens loads it only when the user says they trust the file. TorchScript
archives load as ``ScriptModule``, whose submodules do not run Python forward hooks, so
CAMs could not see any layer; they are refused with the two ways to a hookable model.
"""

from __future__ import annotations

import pickle
import re
import zipfile
from collections.abc import Mapping
from pathlib import Path

import torch
from torch import nn

from cnnlens.errors import CnnlensError
from cnnlens.models.imported import Imported

#: A checkpoint dict may carry the pickled module itself under one of these keys.
MODULE_KEYS = ("model", "module", "net")


def _archive_members(path: Path) -> list[str]:
    """Member names below the archive's top folder; empty for a file that is not a zip."""
    try:
        with zipfile.ZipFile(path) as archive:
            names = archive.namelist()
    except (zipfile.BadZipFile, OSError):
        return []
    return [name.split("/", 1)[1] for name in names if "/" in name]


def is_torchscript(path: Path) -> bool:
    """True for a ``torch.jit.save`` archive (it holds ``constants.pkl`` and ``code/``)."""
    members = _archive_members(path)
    return "constants.pkl" in members or any(m.startswith("code/") for m in members)


def is_exported_program(path: Path) -> bool:
    """True for a ``torch.export.save`` archive, whatever its extension."""
    members = _archive_members(path)
    return "archive_format" in members and any(m.startswith("models/") for m in members)


def torchscript_error(path: Path, option: str) -> CnnlensError:
    """The refusal of a TorchScript file, with the two ways to a model cnnlens can hook."""
    return CnnlensError(
        f"{option} {path}: a TorchScript archive (torch.jit.save); forward hooks cannot be "
        "attached to a loaded ScriptModule's layers, so CAMs cannot be computed. Either save "
        "the state dict (torch.save(model.state_dict(), FILE)) and pass the builder with "
        "--weights FILE, or export the model to ONNX (torch.onnx.export) or to .pt2 "
        "(torch.export.save(torch.export.export(model, (x,)), 'model.pt2'))"
    )


def unpickling_global(exc: BaseException) -> str | None:
    """The class or function a ``weights_only`` load refused, or None for other errors."""
    match = re.search(r"GLOBAL ([\w.]+)", str(exc))
    if match:
        return match.group(1)
    return "a Python object" if "Unsupported" in str(exc) else None


def read_model_file(path: Path, *, trust_pickle: bool) -> Imported:
    """A whole ``nn.Module`` pickled in ``path``; state dicts and untrusted pickles refused."""
    if is_torchscript(path):
        raise torchscript_error(path, "model file")
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        name = unpickling_global(exc)
        if name is None:
            raise CnnlensError(f"model file {path}: not a readable torch file: {exc}") from exc
        if not trust_pickle:
            raise CnnlensError(
                f"model file {path}: a pickled model ({name}); unpickling runs arbitrary "
                "code, so cnnlens refuses it by default. If you trust the file, pass "
                "--trust-pickle (trust_pickle=True); otherwise save model.state_dict() and "
                "pass the builder with --weights FILE"
            ) from None
        return _trusted_module(path)
    except (RuntimeError, OSError, EOFError) as exc:
        raise CnnlensError(f"model file {path}: not a readable torch file: {exc}") from exc
    raise CnnlensError(
        f"model file {path}: holds {_describe(obj)}, not a model; pass the builder that "
        f"makes the model (module:function or file.py:function) with --weights {path}"
    )


def _describe(obj: object) -> str:
    if isinstance(obj, Mapping):
        return "weights only (a dict of tensors / a checkpoint)"
    return f"a {type(obj).__name__}"


def _trusted_module(path: Path) -> Imported:
    try:
        obj = torch.load(path, map_location="cpu", weights_only=False)
    except ModuleNotFoundError as exc:
        raise CnnlensError(
            f"model file {path}: the pickle needs module {exc.name!r}, which defines the "
            "model's class; put its folder on PYTHONPATH, or save model.state_dict() and "
            "pass the builder with --weights"
        ) from exc
    except Exception as exc:
        raise CnnlensError(
            f"model file {path}: unpickling raised {type(exc).__name__}: {exc}"
        ) from exc
    notes = [f"unpickled {type(obj).__name__} from {path.name} (trusted by the user)"]
    if isinstance(obj, Mapping):
        key = next((k for k in MODULE_KEYS if isinstance(obj.get(k), nn.Module)), None)
        if key is None:
            raise CnnlensError(
                f"model file {path}: holds {_describe(obj)}, not a model; pass the builder "
                f"with --weights {path}"
            )
        notes = [f"took the pickled {type(obj[key]).__name__} under {key!r} of the checkpoint"]
        obj = obj[key]
    if isinstance(obj, torch.jit.ScriptModule):
        raise torchscript_error(path, "model file")
    if not isinstance(obj, nn.Module):
        raise CnnlensError(
            f"model file {path}: unpickled a {type(obj).__name__}, expected a torch.nn.Module"
        )
    return Imported(module=obj, notes=notes)


__all__ = ["is_exported_program", "is_torchscript", "read_model_file", "torchscript_error",
           "unpickling_global"]
