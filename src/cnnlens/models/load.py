"""Load a model the user already trained elsewhere, so cnnlens can explain it without training.

One entry point, :func:`load`, takes what a user has: a builder plus a weights file, a
pickled module, a ``.pt2`` export, an ONNX file or a Keras HDF5 file. Every format ends in
the same contract: an ``nn.Module`` in eval mode, float32, on the CPU, whose layers are
named submodules that forward hooks can be attached to, plus what the file said about its
input and head (DESIGN §10). The final activation is reported, never stripped: whether
CAMs use logits or probabilities is the explaining stage's choice, not the loader's.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.metadata
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from cnnlens.errors import CnnlensError
from cnnlens.models import MODELS, build_model
from cnnlens.models.exported import load_exported
from cnnlens.models.imported import FINAL_ACTIVATIONS, Imported
from cnnlens.models.onnx_import import load_onnx
from cnnlens.models.state_dict import (
    WEIGHT_SUFFIXES,
    load_into,
    read_weights,
    unwrap_state_dict,
)
from cnnlens.models.torch_files import is_exported_program, read_model_file
from cnnlens.models.user import KERAS_SUFFIXES, TORCH_MODEL_SUFFIXES, is_user_model

_HDF5_MAGIC = b"\x89HDF\r\n\x1a\n"
ACCEPTED = (
    ".pt2 (torch.export.save), .onnx, .h5/.keras (Keras HDF5), a pickled model "
    f"({'/'.join(TORCH_MODEL_SUFFIXES)}, with --trust-pickle), or a builder "
    f"(module:function / file.py:function) with --weights FILE ({', '.join(WEIGHT_SUFFIXES)})"
)


@dataclass(frozen=True)
class LoadedModel:
    """A trained model ready to explain, and what its file declared about it."""

    module: nn.Module  # eval mode, float32, CPU, layers reachable by name
    source: str  # what the user passed: a builder reference or a model file
    kind: str  # "builder+weights" | "pickle" | "pt2" | "onnx" | "keras-h5"
    weights: str | None  # the weights file, when separate from the source
    sha256: str  # of the model file, or of the weights file for builder+weights
    converter: str | None  # the tool and version that turned the file into torch
    input_shape: tuple[int, ...] | None  # (C, *spatial), when the file declares it
    num_classes: int | None  # output width, when known without running the model
    final_activation: str | None  # "softmax" | "sigmoid" | "log_softmax" | None
    notes: tuple[str, ...]  # what was unwrapped, stripped, detected or converted


def load(
    source: str | Path,
    weights: str | Path | None = None,
    *,
    trust_pickle: bool = False,
    builder_kwargs: Mapping[str, Any] | None = None,
) -> LoadedModel:
    """Load a trained model from ``source`` (a model file, or a builder with ``weights``).

    ``trust_pickle`` allows unpickling arbitrary objects (a whole pickled module, or a
    checkpoint holding more than tensors): only for files you trust. ``builder_kwargs``
    are passed to the builder (e.g. ``num_classes``). Every failure is a
    :class:`~cnnlens.errors.CnnlensError` naming the file or option at fault.
    """
    text = str(source)
    path = Path(text).expanduser()
    if weights is not None:
        return _from_builder(text, path, Path(weights).expanduser(), trust_pickle,
                             dict(builder_kwargs or {}))
    if builder_kwargs:
        raise CnnlensError(f"builder options were given, but {text} is not a builder with "
                           "--weights")
    if not path.exists() and (is_user_model(text) or text in MODELS):
        raise CnnlensError(
            f"--model {text} is a builder, which makes an untrained model: pass --weights FILE "
            "with its trained state dict to explain a trained model"
        )
    kind, loader = _file_loader(path, trust_pickle)
    imported = loader(path)
    return _finish(imported, source=text, kind=kind, weights=None, digest=sha256_file(path))


def _check_file(path: Path, what: str) -> None:
    if path.is_dir():
        raise CnnlensError(f"{what} {path} is a directory; expected a file: {ACCEPTED}")
    if not path.is_file():
        raise CnnlensError(f"{what} {path} not found; accepted: {ACCEPTED}")


def _file_loader(path: Path, trust_pickle: bool) -> tuple[str, Callable[[Path], Imported]]:
    """The kind of a model file and its loader, by extension (and content where ambiguous)."""
    _check_file(path, "model file")
    suffix = path.suffix.lower()
    if suffix == ".pt2" or (suffix in TORCH_MODEL_SUFFIXES and is_exported_program(path)):
        return "pt2", load_exported
    if suffix == ".onnx":
        return "onnx", load_onnx
    if suffix in KERAS_SUFFIXES:
        return "keras-h5", _load_keras
    if suffix in TORCH_MODEL_SUFFIXES:
        return "pickle", lambda p: read_model_file(p, trust_pickle=trust_pickle)
    if suffix in (".safetensors",):
        raise CnnlensError(
            f"model file {path}: safetensors hold weights only; pass the builder that makes "
            f"the model (module:function or file.py:function) with --weights {path}"
        )
    raise CnnlensError(
        f"model file {path}: unknown type {suffix or '(no extension)'!r}; accepted: {ACCEPTED}"
    )


def _from_builder(ref: str, ref_path: Path, weights: Path, trust_pickle: bool,
                  kwargs: dict[str, Any]) -> LoadedModel:
    if ref_path.is_file() or not (is_user_model(ref) or ref in MODELS):
        raise CnnlensError(
            f"--weights {weights} needs a builder as the model (module:function or "
            f"file.py:function); {ref} is not one. A model file that holds its own weights "
            "(.pt2, .onnx, .h5, a pickled model) needs no --weights"
        )
    _check_file(weights, "--weights")
    notes: list[str] = []
    state = unwrap_state_dict(read_weights(weights, trust_pickle=trust_pickle)[0], weights,
                              notes)
    model = build_model(ref, **kwargs)
    load_into(model, state, weights, ref, notes)
    notes.insert(0, f"built {ref} and loaded {len(state)} tensors from {weights.name}")
    return _finish(Imported(module=model, notes=notes), source=ref, kind="builder+weights",
                   weights=str(weights), digest=sha256_file(weights))


def _load_keras(path: Path) -> Imported:
    """Route a Keras HDF5 file to the Keras converter (imported lazily: h5py is heavy)."""
    with path.open("rb") as fh:
        if fh.read(len(_HDF5_MAGIC)) != _HDF5_MAGIC:
            raise CnnlensError(
                f"model file {path}: not an HDF5 file; a Keras 3 .keras zip archive cannot be "
                "read: save the model with model.save('model.h5') (Keras HDF5 format)"
            )
    try:
        convert = importlib.import_module("cnnlens.models.keras_h5").load_keras_module
    except (ImportError, AttributeError) as exc:
        raise CnnlensError(
            f"model file {path}: this cnnlens has no general Keras .h5 converter yet "
            f"(cnnlens.models.keras_h5.load_keras_module: {exc})"
        ) from None
    module, info = convert(path)
    shape = info.get("input_shape")
    return Imported(
        module=module,
        converter=f"h5py {_version('h5py')}",
        # a fully convolutional model leaves its spatial sizes open (None): not declared
        input_shape=(tuple(int(d) for d in shape)
                     if shape and all(d is not None for d in shape) else None),
        num_classes=info.get("num_classes"),
        final_activation=info.get("final_activation"),
        head_read=True,
        notes=[str(n) for n in info.get("notes", ())],
    )


def _version(package: str) -> str:
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return "?"


def sha256_file(path: Path) -> str:
    """Hex sha256 of a file, read in chunks (model files can be large)."""
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _finish(imported: Imported, *, source: str, kind: str, weights: str | None,
            digest: str) -> LoadedModel:
    """Eval mode, float32, CPU for every format; then the head and output width."""
    module, notes = imported.module, list(imported.notes)
    dtypes = {str(t.dtype).removeprefix("torch.") for t in _tensors(module)
              if t.is_floating_point() and t.dtype != torch.float32}
    module = module.float().cpu()
    if dtypes:
        notes.append(f"converted {', '.join(sorted(dtypes))} parameters to float32")
    try:
        module.eval()
    except NotImplementedError:  # ep.module() of a flat exported program has no eval()
        notes.append("the module has no eval mode; it runs as it was exported")
    final = imported.final_activation
    if not imported.head_read:
        final = _last_activation(module)
    if final is not None:
        notes.append(f"the model ends in {final} (kept: it outputs {_OUTPUTS[final]})")
    num_classes = imported.num_classes
    if num_classes is None:
        num_classes = _last_linear_width(module)
    return LoadedModel(
        module=module, source=source, kind=kind, weights=weights, sha256=digest,
        converter=imported.converter, input_shape=imported.input_shape,
        num_classes=num_classes, final_activation=final, notes=tuple(notes),
    )


_OUTPUTS = {"softmax": "probabilities", "sigmoid": "per-class probabilities",
            "log_softmax": "log-probabilities"}


def _tensors(module: nn.Module) -> list[torch.Tensor]:
    return [*module.parameters(), *module.buffers()]


def _leaves(module: nn.Module) -> list[nn.Module]:
    return [m for m in module.modules() if not list(m.children())]


def _last_activation(module: nn.Module) -> str | None:
    """The final activation module of a torch model: its last registered leaf module.

    Running the model would show the true last layer, but a torch module does not declare
    its input shape; classifiers register their head last, as they apply it.
    """
    leaves = _leaves(module)
    return FINAL_ACTIVATIONS.get(type(leaves[-1]).__name__) if leaves else None


def _last_linear_width(module: nn.Module) -> int | None:
    """Output width of the last registered Linear, when it is the last weighted layer."""
    weighted = [m for m in _leaves(module) if any(True for _ in m.parameters(recurse=False))]
    if weighted and isinstance(weighted[-1], nn.Linear):
        return int(weighted[-1].out_features)
    return None


__all__ = ["ACCEPTED", "LoadedModel", "load", "sha256_file"]
