"""Trained weights for a model built from code: read, unwrap and strictly load a state dict.

Checkpoints reach users wrapped in many ways (a training loop's ``model_state_dict``, a
Lightning ``state_dict`` with ``model.`` keys, DistributedDataParallel's ``module.``
keys). The wrappers are removed only when that makes the keys fit the model, and loading
is strict: a partly loaded model would explain random weights without any warning, so a
mismatch is reported key by key instead.
"""

from __future__ import annotations

import pickle
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from torch import nn

from cnnlens.errors import CnnlensError
from cnnlens.models.torch_files import is_torchscript, torchscript_error, unpickling_global

SAFETENSORS_SUFFIXES = (".safetensors",)
TORCH_SUFFIXES = (".pt", ".pth", ".bin", ".ckpt")
WEIGHT_SUFFIXES = SAFETENSORS_SUFFIXES + TORCH_SUFFIXES
#: Where training code commonly nests the state dict inside a checkpoint dict.
WRAPPER_KEYS = ("state_dict", "model_state_dict", "model")
#: Key prefixes added by wrappers: DistributedDataParallel / DataParallel, Lightning.
PREFIXES = ("module.", "model.")
#: Mismatch lines shown before "... and N more".
MAX_LINES = 12


def read_weights(path: Path, *, trust_pickle: bool = False) -> tuple[Any, str]:
    """The raw object stored in a weights file and how it was read (for notes)."""
    suffix = path.suffix.lower()
    if suffix in SAFETENSORS_SUFFIXES:
        from safetensors import SafetensorError
        from safetensors.torch import load_file

        try:
            return load_file(str(path), device="cpu"), "safetensors"
        except (SafetensorError, OSError) as exc:
            raise CnnlensError(f"--weights {path}: not a readable safetensors file: {exc}") from exc
    if suffix not in TORCH_SUFFIXES:
        raise CnnlensError(
            f"--weights {path}: unknown weights file type {suffix or '(no extension)'!r}; "
            f"accepted: {', '.join(WEIGHT_SUFFIXES)} (a state dict)"
        )
    if is_torchscript(path):
        raise torchscript_error(path, "--weights")
    try:
        return torch.load(path, map_location="cpu", weights_only=True), "torch.load"
    except pickle.UnpicklingError as exc:
        name = unpickling_global(exc)
        if name is None:
            raise CnnlensError(f"--weights {path}: not a readable torch file: {exc}") from exc
        if not trust_pickle:
            raise CnnlensError(
                f"--weights {path}: the file pickles {name}, not only tensors; unpickling "
                "runs arbitrary code, so cnnlens refuses it unless you trust the file "
                "(--trust-pickle / trust_pickle=True), or save model.state_dict() instead"
            ) from None
    except (RuntimeError, OSError, EOFError) as exc:
        raise CnnlensError(f"--weights {path}: not a readable torch file: {exc}") from exc
    try:
        return torch.load(path, map_location="cpu", weights_only=False), "torch.load (trusted)"
    except Exception as exc:
        raise CnnlensError(
            f"--weights {path}: unpickling raised {type(exc).__name__}: {exc}"
        ) from exc


def _is_tensor_dict(obj: Any) -> bool:
    return isinstance(obj, Mapping) and bool(obj) and all(
        isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in obj.items()
    )


def unwrap_state_dict(obj: Any, path: Path, notes: list[str]) -> dict[str, torch.Tensor]:
    """The state dict inside ``obj``: itself, a whole module's, or one under a wrapper key."""
    if isinstance(obj, nn.Module):
        notes.append(f"took the state dict of the pickled {type(obj).__name__} in {path.name}")
        return dict(obj.state_dict())
    if _is_tensor_dict(obj):
        return dict(obj)
    if not isinstance(obj, Mapping):
        raise CnnlensError(
            f"--weights {path}: holds a {type(obj).__name__}, expected a state dict "
            "(a dict of tensors, e.g. torch.save(model.state_dict(), FILE))"
        )
    for key in WRAPPER_KEYS:
        inner = obj.get(key)
        if isinstance(inner, nn.Module) or _is_tensor_dict(inner):
            others = sorted(str(k) for k in obj if k != key)
            notes.append(
                f"took the state dict under {key!r} of the checkpoint"
                + (f" (ignored: {', '.join(others[:8])})" if others else "")
            )
            return unwrap_state_dict(inner, path, notes)
    keys = ", ".join(sorted(str(k) for k in obj)[:10]) or "none"
    raise CnnlensError(
        f"--weights {path}: a dict with keys {keys}, but neither a state dict (tensors) nor "
        f"one under {', '.join(repr(k) for k in WRAPPER_KEYS)}"
    )


def _strip(keys: dict[str, torch.Tensor], prefix: str) -> dict[str, torch.Tensor]:
    return {k.removeprefix(prefix): v for k, v in keys.items()}


def fit_prefixes(
    state: dict[str, torch.Tensor], model_keys: set[str], notes: list[str]
) -> dict[str, torch.Tensor]:
    """Strip wrapper prefixes (``module.``, ``model.``, both) only if more keys then fit."""
    best, best_fit, best_prefixes = state, len(model_keys & state.keys()), ""
    todo = [(state, "")]
    while todo:  # every order of prefixes that some key actually carries
        current, stripped = todo.pop()
        for prefix in PREFIXES:
            if prefix in stripped or not any(k.startswith(prefix) for k in current):
                continue
            candidate = _strip(current, prefix)
            todo.append((candidate, stripped + prefix))
            fit = len(model_keys & candidate.keys())
            if fit > best_fit:
                best, best_fit, best_prefixes = candidate, fit, stripped + prefix
    if best_prefixes:
        notes.append(f"stripped the key prefix {best_prefixes!r} (a training wrapper's)")
    return best


def _shape(shape: torch.Size) -> str:
    return "(" + ", ".join(str(d) for d in shape) + ")"


def mismatch_lines(
    state: Mapping[str, torch.Tensor], expected: Mapping[str, torch.Tensor]
) -> tuple[str, list[str]]:
    """A one-line summary and per-key lines of how a state dict fails to fit a model."""
    missing = [k for k in expected if k not in state]
    unexpected = [k for k in state if k not in expected]
    shapes = [k for k in expected if k in state and state[k].shape != expected[k].shape]
    lines = [f"shape {k}: file {_shape(state[k].shape)} vs model {_shape(expected[k].shape)}"
             for k in shapes]
    lines += [f"missing {k} {_shape(expected[k].shape)}" for k in missing]
    lines += [f"unexpected {k} {_shape(state[k].shape)}" for k in unexpected]
    parts = [(len(shapes), "shape mismatch(es)"), (len(missing), "missing key(s)"),
             (len(unexpected), "unexpected key(s)")]
    summary = ", ".join(f"{n} {what}" for n, what in parts if n)
    return summary, lines


def load_into(model: nn.Module, state: dict[str, torch.Tensor], path: Path, ref: str,
              notes: list[str]) -> None:
    """Strictly load ``state`` into ``model``; a mismatch raises listing it key by key."""
    expected = model.state_dict()
    state = fit_prefixes(state, set(expected), notes)
    summary, lines = mismatch_lines(state, expected)
    if lines:
        shown = lines[:MAX_LINES]
        if len(lines) > MAX_LINES:
            shown.append(f"... and {len(lines) - MAX_LINES} more")
        raise CnnlensError(
            f"--weights {path} does not fit --model {ref}: {summary}\n  " + "\n  ".join(shown)
        )
    model.load_state_dict(state, strict=True)


__all__ = ["WEIGHT_SUFFIXES", "fit_prefixes", "load_into", "mismatch_lines", "read_weights",
           "unwrap_state_dict"]
