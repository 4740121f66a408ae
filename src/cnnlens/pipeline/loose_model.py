"""A trained model made ready for loose inputs: loaded, head removed, normalized, checked.

The same pieces ``cnnlens run --model FILE`` uses (:mod:`cnnlens.pipeline.trained`): the
loader, :func:`~cnnlens.models.heads.logits_model` and the ``--normalize`` pre-hook; what
differs is that there is no data set to fit: the input size comes from ``--image-size``,
the model's declared input or the 224 px default, and the class count from the model's own
output (checked against ``--class-names`` when given).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from cnnlens.errors import CnnlensError
from cnnlens.models import is_user_model, model_kwargs_for
from cnnlens.models.contract import apply_normalization, parse_normalize
from cnnlens.models.heads import logits_model
from cnnlens.models.load import LoadedModel, load
from cnnlens.models.state_dict import read_weights, unwrap_state_dict
from cnnlens.models.user import normalize_reference

DEFAULT_IMAGE_SIZE = 224


@dataclass(frozen=True)
class ReadyModel:
    """The module to explain (logits out, normalization inside) and where it came from."""

    module: nn.Module
    loaded: LoadedModel
    outputs: str  # how the model's outputs are read (logits, or a removed softmax)
    normalize: str  # the input normalization the model applies, in words


def load_model(source: str, weights: str | None, *, trust_pickle: bool = False,
               builder_shape: tuple[int, ...] | None = None,
               num_classes: int | None = None) -> LoadedModel:
    """Load ``source`` (a model file, or a builder with ``weights``).

    A builder gets those of ``num_classes`` (read from the weights' last matrix, else the
    given count), ``in_channels`` and ``input_shape`` (``builder_shape``) that it accepts:
    the weights decide the width, so a ``--class-names`` of another length is reported by
    :func:`class_count` with both numbers rather than as a weight mismatch.
    """
    if weights is None:
        return load(str(Path(source).expanduser()), trust_pickle=trust_pickle)
    ref = normalize_reference(source) if is_user_model(source) else source
    path = Path(weights).expanduser().resolve()
    k = _classes_in_weights(path, trust_pickle) or num_classes
    kwargs = {}
    if builder_shape is not None:
        kwargs = model_kwargs_for(ref, builder_shape, k or 1)
        if k is None:
            kwargs.pop("num_classes", None)
    elif k is not None and is_user_model(ref):
        kwargs = {"num_classes": k}
    return load(ref, str(path), trust_pickle=trust_pickle, builder_kwargs=kwargs or None)


def _classes_in_weights(path: Path, trust_pickle: bool) -> int | None:
    """Output width of the last 2-D weight in a state dict (a classifier's head), if any."""
    if not path.is_file():
        return None  # the loader names the missing file
    try:
        state = unwrap_state_dict(read_weights(path, trust_pickle=trust_pickle)[0], path, [])
    except CnnlensError:
        return None  # the loader reports the same problem, in its words
    mats = [t for k, t in state.items() if k.endswith("weight") and t.dim() == 2]
    return int(mats[-1].shape[0]) if mats else None


def image_size_for(loaded: LoadedModel, image_size: int | None) -> int:
    """``--image-size``, else the model's declared square input size, else 224.

    A declared size that differs from ``--image-size``, or is not a 3-channel square, is an
    error naming both: images are decoded to RGB squares.
    """
    declared = loaded.input_shape
    if declared is None or len(declared) != 3:
        return image_size or DEFAULT_IMAGE_SIZE
    channels, height, width = declared
    if channels != 3 or height != width:
        raise CnnlensError(f"--model {loaded.source} takes inputs of shape {tuple(declared)} "
                           "(C, H, W); images are decoded to RGB squares (3, S, S)")
    if image_size is not None and image_size != height:
        raise CnnlensError(f"--model {loaded.source} takes {height}x{width} images; "
                           f"--image-size {image_size} would give {image_size}x{image_size}")
    return int(height)


def input_channels(loaded: LoadedModel) -> int | None:
    """Channels the model takes: declared, else the first convolution's input channels."""
    if loaded.input_shape:
        return int(loaded.input_shape[0])
    for m in loaded.module.modules():
        if isinstance(m, nn.Conv1d | nn.Conv2d | nn.Conv3d):
            return int(m.in_channels)
    return None


def ready_model(loaded: LoadedModel, input_shape: tuple[int, ...],
                normalize: str | None) -> ReadyModel:
    """Remove a final softmax (so maps explain logits) and add ``--normalize``."""
    norm = parse_normalize(normalize)
    if norm is not None:
        norm.check_channels(input_shape[0], "the inputs")
    module, _, outputs = logits_model(loaded.module, tuple(input_shape))
    apply_normalization(module, norm)
    return ReadyModel(module, loaded, outputs,
                      norm.describe() if norm else "as loaded, [0, 1]")


def class_count(model: ReadyModel, sample: torch.Tensor, class_names: list[str] | None,
                names_from: str = "--class-names") -> int:
    """Classes the model scores, from one forward pass on ``sample`` ``(C, *spatial)``.

    Fails with one line when the model cannot take the input or gives no per-class scores,
    or when ``class_names`` lists another number of classes (both numbers named).
    """
    source = model.loaded.source
    try:
        with torch.no_grad():
            out = model.module(sample[None].to(_device(model.module)))
    except Exception as exc:  # the user's graph: any error means it cannot take these inputs
        first = str(exc).splitlines()[0] if str(exc) else ""
        raise CnnlensError(f"--model {source} cannot run on inputs of shape "
                           f"{tuple(sample.shape)} (C, *spatial): {type(exc).__name__}: "
                           f"{first}") from None
    if not isinstance(out, torch.Tensor) or out.dim() != 2:
        what = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
        raise CnnlensError(f"--model {source} returns {what}, not one row of class scores "
                           "per input")
    k = int(out.shape[1])
    if class_names is not None and len(class_names) != k:
        raise CnnlensError(f"{names_from} lists {len(class_names)} classes but --model "
                           f"{source} outputs {k} class scores")
    return k


def _device(module: nn.Module) -> torch.device:
    p = next(module.parameters(), None)
    return p.device if p is not None else torch.device("cpu")


__all__ = ["DEFAULT_IMAGE_SIZE", "ReadyModel", "class_count", "image_size_for",
           "input_channels", "load_model", "ready_model"]
