"""Self-describing checkpoints: safetensors weights plus a JSON sidecar.

The sidecar is written after the weights, so its presence marks a complete checkpoint.
Training state (optimizer, RNG) goes to a ``weights_only``-loadable ``.pt`` file; nothing is
ever unpickled unsafely.
"""

from __future__ import annotations

import platform
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from torch import nn

import cnnlens
from cnnlens.errors import CnnlensError
from cnnlens.fileio import atomic_path, read_json, write_json
from cnnlens.models import build_model


def versions() -> dict[str, str]:
    """Library versions recorded in every checkpoint, for reproducibility."""
    import numpy

    return {
        "cnnlens": cnnlens.__version__,
        "torch": torch.__version__,
        "numpy": numpy.__version__,
        "python": platform.python_version(),
    }


def save_checkpoint(
    directory: str | Path, name: str, model: nn.Module, meta: dict[str, Any]
) -> Path:
    """Write ``<name>.safetensors`` then ``<name>.json``; ``meta`` must hold ``model``."""
    if "model" not in meta:
        raise ValueError("checkpoint meta must name the model ('model' key)")
    directory = Path(directory)
    weights = directory / f"{name}.safetensors"
    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    with atomic_path(weights) as tmp:
        save_file(state, str(tmp), metadata={"model": str(meta["model"])})
    write_json(directory / f"{name}.json", {**meta, "versions": versions()})
    return weights


def read_checkpoint_meta(directory: str | Path, name: str) -> dict[str, Any]:
    """Read a checkpoint's JSON sidecar."""
    path = Path(directory) / f"{name}.json"
    if not path.exists():
        raise CnnlensError(f"{path}: checkpoint not found (train or import a model first)")
    meta = read_json(path)
    if not isinstance(meta, dict) or "model" not in meta:
        raise CnnlensError(f"{path}: not a cnnlens checkpoint sidecar (no 'model' key)")
    return meta


def load_checkpoint(
    directory: str | Path, name: str = "model", *, device: str | torch.device = "cpu"
) -> tuple[nn.Module, dict[str, Any]]:
    """Rebuild the model named in the sidecar and load its safetensors weights."""
    meta = read_checkpoint_meta(directory, name)
    model = build_model(meta["model"], **meta.get("model_kwargs", {}))
    path = Path(directory) / f"{name}.safetensors"
    try:
        state = load_file(str(path), device=str(device))
    except FileNotFoundError:
        raise CnnlensError(f"{path}: checkpoint weights not found") from None
    except (SafetensorError, OSError, ValueError) as exc:
        raise CnnlensError(f"{path}: corrupt checkpoint weights ({exc})") from None
    try:
        model.load_state_dict(state)
    except RuntimeError as exc:
        first = str(exc).strip().splitlines()[0]
        raise CnnlensError(
            f"{path}: weights do not fit model {meta['model']!r} ({first})"
        ) from None
    return model.to(device), meta


def save_train_state(path: str | Path, state: dict[str, Any]) -> None:
    """Save optimizer/scheduler/RNG state atomically, in a ``weights_only``-safe form."""
    with atomic_path(path) as tmp:
        torch.save(state, tmp)


def load_train_state(path: str | Path) -> dict[str, Any]:
    """Load training state with ``weights_only=True`` (never an unsafe unpickle)."""
    p = Path(path)
    try:
        state = torch.load(p, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise CnnlensError(f"{p}: training state not found, cannot resume") from None
    except Exception as exc:
        raise CnnlensError(f"{p}: corrupt training state ({type(exc).__name__})") from None
    if not isinstance(state, dict):
        raise CnnlensError(f"{p}: not a cnnlens training state")
    return state
