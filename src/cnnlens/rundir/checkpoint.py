"""Self-describing checkpoints: safetensors weights plus a JSON sidecar.

The sidecar is written after the weights, so its presence marks a complete checkpoint.
Training state (optimizer, RNG) goes to a ``weights_only``-loadable ``.pt`` file; nothing is
ever unpickled unsafely.
"""

from __future__ import annotations

import pickle
import platform
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from torch import nn

import cnnlens
from cnnlens.errors import CnnlensError
from cnnlens.fileio import atomic_path, read_json, write_error, write_json
from cnnlens.models import build_model
from cnnlens.models.contract import apply_contract


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
        try:
            save_file(state, str(tmp), metadata={"model": str(meta["model"])})
        except SafetensorError as exc:  # the Rust writer's I/O errors (disk full, ...)
            raise write_error(weights, exc) from None
    write_json(directory / f"{name}.json", {**meta, "versions": versions()})
    return weights


def read_checkpoint_meta(directory: str | Path, name: str) -> dict[str, Any]:
    """Read a checkpoint's JSON sidecar."""
    path = Path(directory) / f"{name}.json"
    if not path.exists():
        raise CnnlensError(f"{path}: checkpoint not found (train or import a model first)")
    meta = read_json(path)
    if not isinstance(meta, dict) or not isinstance(meta.get("model"), str):
        raise CnnlensError(f"{path}: not a cnnlens checkpoint sidecar (no 'model' key)")
    return meta


def check_meta_matches(meta: dict[str, Any], expect: dict[str, Any], where: str) -> None:
    """Refuse a checkpoint made for another model, build or class list, saying what differs.

    ``expect`` holds any of ``model``, ``model_kwargs`` and ``class_names`` (e.g. from the
    run's config); a user model named in a sidecar is only built when the run names it too.
    """
    diffs: list[str] = []
    if "model" in expect and meta.get("model") != expect["model"]:
        diffs.append(f"model {meta.get('model')!r} (the run uses {expect['model']!r})")
    if "model_kwargs" in expect and (meta.get("model_kwargs") or {}) != (
        expect["model_kwargs"] or {}
    ):
        diffs.append(f"model options {meta.get('model_kwargs') or {}} (the run uses "
                     f"{expect['model_kwargs'] or {}})")
    if expect.get("class_names") is not None and meta.get("class_names") is not None and list(
        meta["class_names"]
    ) != list(expect["class_names"]):
        diffs.append(f"classes {list(meta['class_names'])} (the run has "
                     f"{list(expect['class_names'])})")
    if diffs:
        raise CnnlensError(f"{where}: checkpoint of another model: " + "; ".join(diffs))


def load_checkpoint(
    directory: str | Path,
    name: str = "model",
    *,
    device: str | torch.device = "cpu",
    expect: dict[str, Any] | None = None,
) -> tuple[nn.Module, dict[str, Any]]:
    """Rebuild the model named in the sidecar and load its safetensors weights.

    With ``expect`` (see :func:`check_meta_matches`) a sidecar for another model is refused
    before anything is built.
    """
    meta = read_checkpoint_meta(directory, name)
    sidecar = Path(directory) / f"{name}.json"
    if expect is not None:
        check_meta_matches(meta, expect, str(sidecar))
    kwargs = meta.get("model_kwargs") or {}
    if not isinstance(kwargs, dict):
        raise CnnlensError(f"{sidecar}: model_kwargs must be a JSON object, got {kwargs!r}")
    try:
        with torch.random.fork_rng(devices=[]):  # the init is overwritten: spare the RNG
            model = build_model(meta["model"], **kwargs)
    except TypeError as exc:
        raise CnnlensError(f"{sidecar}: cannot build {meta['model']!r} with {kwargs} ({exc})"
                           ) from None
    path = Path(directory) / f"{name}.safetensors"
    try:
        state = load_file(str(path), device=str(device))
    except FileNotFoundError:
        raise CnnlensError(f"{path}: checkpoint weights not found") from None
    except (SafetensorError, OSError, ValueError) as exc:
        raise CnnlensError(f"{path}: corrupt checkpoint weights ({exc})") from None
    check_state_fits(model, state, f"{path}: weights do not fit model {meta['model']!r}")
    model.load_state_dict(state)
    return apply_contract(model, meta, str(sidecar)).to(device), meta


def state_difference(model: nn.Module, state: dict[str, torch.Tensor], *, limit: int = 6
                     ) -> list[str]:
    """Layer-by-layer differences between a model and a state dict, readable, at most ``limit``.

    ``load_state_dict`` reports a mismatch as one long tensor-size dump; this names each
    parameter with both shapes, and the missing and unexpected ones.
    """
    own = model.state_dict()
    lines: list[str] = []
    for key, value in own.items():
        if key not in state:
            lines.append(f"{key} {tuple(value.shape)} missing from the file")
        elif tuple(state[key].shape) != tuple(value.shape):
            lines.append(f"{key}: file {tuple(state[key].shape)}, model {tuple(value.shape)}")
    lines += [f"{key} {tuple(state[key].shape)} in the file only" for key in state
              if key not in own]
    if len(lines) > limit:
        lines = [*lines[:limit], f"and {len(lines) - limit} more"]
    return lines


def check_state_fits(model: nn.Module, state: dict[str, torch.Tensor], prefix: str) -> None:
    """Raise one readable error when ``state`` cannot be loaded into ``model``."""
    diff = state_difference(model, state)
    if diff:
        raise CnnlensError(f"{prefix}: " + "; ".join(diff))


def save_train_state(path: str | Path, state: dict[str, Any]) -> None:
    """Save optimizer/scheduler/RNG state atomically, in a ``weights_only``-safe form."""
    with atomic_path(path) as tmp:
        try:
            torch.save(state, tmp)
        except RuntimeError as exc:  # torch's zip writer reports I/O errors this way
            raise write_error(Path(path), exc) from None


def load_train_state(path: str | Path) -> dict[str, Any]:
    """Load training state with ``weights_only=True`` (never an unsafe unpickle)."""
    p = Path(path)
    try:
        state = torch.load(p, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise CnnlensError(f"{p}: training state not found, cannot resume") from None
    except pickle.UnpicklingError as exc:
        raise CnnlensError(
            f"{p}: refused: not a weights-only training state (it would need an unsafe "
            f"unpickle: {str(exc).splitlines()[0][:160]})"
        ) from None
    except Exception as exc:
        raise CnnlensError(f"{p}: corrupt training state ({type(exc).__name__})") from None
    if not isinstance(state, dict):
        raise CnnlensError(f"{p}: not a cnnlens training state")
    return state
