"""How a model trained elsewhere is read and fed: its options, declared once and free of torch.

``run``, ``evaluate``, ``explain`` and ``faithfulness`` take these with ``--model SOURCE``
(:mod:`cnnlens.cli.options` builds the flags from the fields); ``RunOptions`` inherits them,
so ``run(model=..., weights=..., normalize="imagenet")`` is the same declaration. The
contract itself (:mod:`cnnlens.models.contract`) applies them.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from cnnlens.models.contract import NORMALIZE_HELP
from cnnlens.optionspec import flag


@dataclass(frozen=True)
class TrainedModelOptions:
    """A trained model's weights file and input/output contract (all off by default)."""

    weights: str | None = field(default=None, metadata=flag(
        "--weights", metavar="FILE",
        help="trained weights of --model (a builder or registry name): .safetensors or a "
        ".pt/.pth state dict (also DDP / Lightning checkpoints); the model is explained as "
        "it is, without training"))
    trust_pickle: bool = field(default=False, metadata=flag(
        "--trust-pickle",
        help="allow a model or weights file that needs unpickling (a whole "
        "torch.save(model)); unpickling runs code: only for files you trust"))
    normalize: str | None = field(default=None, metadata=flag(
        "--normalize", metavar="NORM",
        help=f"a trained model's input normalization: {NORMALIZE_HELP}; figures show the "
        "input before it, faithfulness removes pixels before it"))
    output: str | int | None = field(default=None, metadata=flag(
        "--output", metavar="INDEX|KEY",
        help="a trained model whose forward returns a tuple, list or dict: the element "
        "holding the class scores"))
    standardize: bool = field(default=False, metadata=flag(
        "--standardize",
        help="a trained signal model's preprocessing: each channel of each sample to mean 0, "
        "std 1 (figures keep the data's units)"))
    grayscale: bool = field(default=False, metadata=flag(
        "--grayscale",
        help="a trained image model that takes one channel: RGB as luminance (automatic when "
        "the model file declares one input channel)"))
    class_names: str | None = field(default=None, metadata=flag(
        "--class-names", metavar="FILE",
        help="the model's output classes in index order (text, one per line, or a JSON "
        "list); image class folders may then be a subset, matched by name"))


__all__ = ["TrainedModelOptions"]
