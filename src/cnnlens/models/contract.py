"""The input a trained model expects beyond its shape: per-channel normalization.

A model trained elsewhere saw its own preprocessing (ImageNet models: ``(x - mean) / std``
per channel on [0, 1] pixels). Getting it wrong makes every map and score meaningless
without any error. cnnlens keeps its data in the [0, 1] space it loads (so figures show the
input as it is, and faithfulness removes pixels in that space: zero is black) and gives the
model the normalization as a forward pre-hook: every stage that loads the run's model runs
the same preprocessing, and layer names stay the model's own.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from cnnlens.errors import CnnlensError

#: Named normalizations (``--normalize NAME``): per-channel mean and std on [0, 1] pixels.
NORMALIZATIONS: dict[str, tuple[tuple[float, ...], tuple[float, ...]] | None] = {
    "none": None,
    "imagenet": ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225)),
}
NORMALIZE_HELP = ("none, imagenet (mean 0.485,0.456,0.406, std 0.229,0.224,0.225), MEAN,STD "
                  "(one value for every channel) or M1,...,Mc/S1,...,Sc (per channel): the "
                  "model sees (x - mean) / std of the [0, 1] input")


@dataclass(frozen=True)
class Normalization:
    """``(x - mean) / std`` per channel (one value broadcasts to every channel)."""

    mean: tuple[float, ...]
    std: tuple[float, ...]

    def to_dict(self) -> dict[str, Any]:
        return {"mean": list(self.mean), "std": list(self.std)}

    def describe(self) -> str:
        return f"(x - mean) / std, mean {_fmt(self.mean)}, std {_fmt(self.std)}"

    def check_channels(self, channels: int, where: str) -> None:
        if len(self.mean) not in (1, channels):
            raise CnnlensError(f"--normalize has {len(self.mean)} values per statistic; "
                               f"{where} has {channels} channel(s)")


def _fmt(values: tuple[float, ...]) -> str:
    return ",".join(f"{v:g}" for v in values)


def _floats(text: str, what: str) -> tuple[float, ...]:
    try:
        values = tuple(float(v) for v in text.split(","))
    except ValueError:
        raise CnnlensError(f"--normalize {what}: expected numbers separated by commas, got "
                           f"{text!r}") from None
    if not all(math.isfinite(v) for v in values):
        raise CnnlensError(f"--normalize {what}: values must be finite, got {text!r}")
    return values


def parse_normalize(text: str | None) -> Normalization | None:
    """``--normalize`` as given: a name, ``MEAN,STD`` or ``M1,..,Mc/S1,..,Sc``; None: none."""
    if text is None or text.strip().lower() in ("", "none"):
        return None
    name = text.strip().lower()
    if name in NORMALIZATIONS:
        stats = NORMALIZATIONS[name]
        return None if stats is None else Normalization(*stats)
    if not any(c.isdigit() for c in text):
        raise CnnlensError(f"--normalize {text!r}: expected one of {', '.join(NORMALIZATIONS)}, "
                           "MEAN,STD or M1,..,Mc/S1,..,Sc")
    if "/" in text:
        mean_text, _, std_text = text.partition("/")
        mean, std = _floats(mean_text, "mean"), _floats(std_text, "std")
        if len(mean) != len(std):
            raise CnnlensError(f"--normalize {text!r}: {len(mean)} means but {len(std)} stds")
    else:
        values = _floats(text, "MEAN,STD")
        if len(values) != 2:
            raise CnnlensError(f"--normalize {text!r}: expected one of "
                               f"{', '.join(NORMALIZATIONS)}, MEAN,STD or M1,..,Mc/S1,..,Sc")
        mean, std = (values[0],), (values[1],)
    if any(s <= 0 for s in std):
        raise CnnlensError(f"--normalize {text!r}: std must be > 0")
    return Normalization(mean, std)


def normalization_from(meta: dict[str, Any] | None) -> Normalization | None:
    """The normalization a checkpoint sidecar or config records (``{"mean", "std"}``)."""
    if not meta:
        return None
    try:
        return Normalization(tuple(float(v) for v in meta["mean"]),
                             tuple(float(v) for v in meta["std"]))
    except (TypeError, KeyError, ValueError):
        raise CnnlensError(f"normalize must be {{'mean': [...], 'std': [...]}}, got {meta!r}"
                           ) from None


def apply_normalization(model: Any, norm: Normalization | None) -> Any:
    """Give ``model`` the normalization as a forward pre-hook (in place; returns the model).

    The hook makes a new tensor (never edits the caller's input) in the input's dtype and
    device, so gradients still flow to the [0, 1] input.
    """
    if norm is None:
        return model
    import torch

    def normalize(_module: Any, args: tuple[Any, ...]) -> tuple[Any, ...]:
        x, *rest = args
        shape = (1, -1) + (1,) * (x.dim() - 2)
        mean = torch.tensor(norm.mean, dtype=x.dtype, device=x.device).reshape(shape)
        std = torch.tensor(norm.std, dtype=x.dtype, device=x.device).reshape(shape)
        return ((x - mean) / std, *rest)

    model.register_forward_pre_hook(normalize)
    return model


def apply_standardization(model: Any) -> Any:
    """Give ``model`` per-sample standardization (each channel of each sample to mean 0,
    std 1 over its positions) as a forward pre-hook: signal models are often trained on
    z-scored recordings while the data keeps its own units for the figures."""
    def standardize(_module: Any, args: tuple[Any, ...]) -> tuple[Any, ...]:
        x, *rest = args
        dims = tuple(range(2, x.dim()))
        mean = x.mean(dim=dims, keepdim=True)
        std = x.std(dim=dims, keepdim=True, unbiased=False)
        return ((x - mean) / (std + 1e-8), *rest)

    model.register_forward_pre_hook(standardize)
    return model


def apply_grayscale(model: Any) -> Any:
    """Give ``model`` RGB input as one luminance channel (ITU-R 601: 0.299 R + 0.587 G +
    0.114 B), as a forward pre-hook: cnnlens reads every image as RGB (grayscale files are
    replicated), while a model trained on grayscale images takes one channel."""
    def luminance(_module: Any, args: tuple[Any, ...]) -> tuple[Any, ...]:
        x, *rest = args
        if x.shape[1] != 3:
            return (x, *rest)
        w = x.new_tensor([0.299, 0.587, 0.114]).reshape(1, 3, *([1] * (x.dim() - 2)))
        return ((x * w).sum(dim=1, keepdim=True), *rest)

    model.register_forward_pre_hook(luminance)
    return model


def apply_reshape(model: Any, shape: tuple[int, ...]) -> Any:
    """Give ``model`` each sample reshaped to ``shape`` (its declared input, e.g. ``(1, L,
    1)`` for a 1-D signal model written with Conv2d), as a forward pre-hook: the data and
    the maps keep the signal's own axis."""
    def reshape(_module: Any, args: tuple[Any, ...]) -> tuple[Any, ...]:
        x, *rest = args
        return (x.reshape(x.shape[0], *shape), *rest)

    model.register_forward_pre_hook(reshape)
    return model


def apply_contract(model: Any, contract: dict[str, Any], where: str) -> Any:
    """The model as a run recorded it (checkpoint sidecar keys): the scores picked from its
    output (``output``), its final activation removed (``head_removed``), one binary logit
    made two (``binary``), its input standardized per sample (``standardize``), made one
    luminance channel (``grayscale``), reshaped to the model's declared input
    (``input_shape``), normalized (``normalize``). Applied in that order at
    import and whenever the run's model is loaded, so every stage sees the same model."""
    from cnnlens.models.heads import HEADS, remove_head
    from cnnlens.models.outputs import apply_outputs

    which = contract.get("output")
    if which is not None:
        apply_outputs(model, which, False, where)
    removed = contract.get("head_removed")
    if removed:
        try:
            head, shape = str(removed["head"]), tuple(int(d) for d in removed["input_shape"])
        except (TypeError, KeyError, ValueError):
            raise CnnlensError(f"{where}: head_removed must be {{'head', 'input_shape'}}, got "
                               f"{removed!r}") from None
        stripped = remove_head(model.eval(), head, shape) if head in HEADS else None
        if stripped is None:
            raise CnnlensError(f"{where}: the model no longer ends in a removable {head} "
                               "layer; import it again")
        model = stripped
    if contract.get("binary"):
        apply_outputs(model, None, True, where)
    if contract.get("standardize"):
        apply_standardization(model)
    if contract.get("grayscale"):
        apply_grayscale(model)
    if contract.get("input_shape"):
        apply_reshape(model, tuple(int(d) for d in contract["input_shape"]))
    try:
        return apply_normalization(model, normalization_from(contract.get("normalize")))
    except CnnlensError as exc:
        raise CnnlensError(f"{where}: {exc}") from None


__all__ = ["NORMALIZATIONS", "NORMALIZE_HELP", "Normalization", "apply_contract",
           "apply_grayscale", "apply_normalization", "apply_reshape", "apply_standardization",
           "normalization_from",
           "parse_normalize"]
