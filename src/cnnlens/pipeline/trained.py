"""A model the user already trained, as a run folder the later stages use without training.

``cnnlens run --model SOURCE [--weights FILE]`` with a model file (``.onnx``, ``.pt2``,
``.h5``, a trusted pickle) or a builder plus its trained weights: the model is loaded
(:func:`cnnlens.models.load.load`), checked against the data (class count, input shape) by
one forward pass on a blank input, and saved as the run's ``checkpoints/model`` with where
it came from. The run's config has no recipe, so the runner skips training and goes on to
evaluate, explain, faithfulness and the report.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import torch
from torch import nn

from cnnlens.data import DataConfig, TaskShape, TaskSpec, describe_task
from cnnlens.errors import CnnlensError
from cnnlens.models import is_model_file, is_user_model, model_kwargs_for
from cnnlens.models.contract import (
    apply_contract,
    apply_grayscale,
    apply_reshape,
    parse_normalize,
)
from cnnlens.models.heads import logits_model, remove_head
from cnnlens.models.load import LoadedModel, load
from cnnlens.models.outputs import apply_outputs, parse_output, select
from cnnlens.models.user import normalize_reference
from cnnlens.pipeline.config import data_dict
from cnnlens.rundir import RunDir, save_checkpoint


def is_trained_source(model: str | None, weights: str | None) -> bool:
    """True when ``--model``/``--weights`` name a trained model rather than one to train."""
    return weights is not None or (model is not None and is_model_file(model))


def trained_run_config(model: str, weights: str | None, *, data: DataConfig,
                       trust_pickle: bool = False, normalize: str | None = None,
                       output: str | int | None = None, standardize: bool = False,
                       grayscale: bool = False, spec: TaskSpec | None = None,
                       ) -> tuple[dict[str, Any], nn.Module, dict[str, Any]]:
    """The run config, the loaded model and its checkpoint sidecar for a trained model.

    ``normalize`` (``--normalize``) is the model's own input normalization, ``standardize``
    (``--standardize``) its per-sample standardization of signals, ``grayscale``
    (``--grayscale``, automatic when the model declares one input channel and the images
    have three) its luminance input, and ``output``
    (``--output``) picks the class scores from a forward that returns a tuple or dict; with
    what was found on loading (a final softmax to remove, one binary logit) they form the
    model's contract, stored with the checkpoint and applied whenever the run's model is
    loaded (:func:`cnnlens.models.contract.apply_contract`). ``spec``: the task's registry
    entry when the caller looked it up already.
    """
    shape = spec.describe(data) if spec is not None else describe_task(data)
    where = data.data_dir or data.task
    if standardize and normalize is not None:
        raise CnnlensError("--standardize and --normalize both preprocess the input; give one")
    if grayscale and (shape.kind != "image" or shape.input_shape[0] != 3):
        raise CnnlensError(f"--grayscale turns RGB images into one channel; the data ({where}) "
                           f"is {shape.kind} of shape {tuple(shape.input_shape)}")
    loaded, name, kwargs = _load(model, weights, shape, trust_pickle)
    gray, reshape = _input_hooks(loaded, shape, grayscale)
    norm = parse_normalize(normalize)
    if norm is not None:
        norm.check_channels(1 if gray else shape.input_shape[0], f"the data ({where})")
    which = parse_output(output)
    binary = check_fits(loaded, shape, data, which, channels=1 if gray else None,
                        reshaped=reshape is not None)
    head, outputs = _head(loaded, tuple(shape.input_shape), which, binary)
    contract: dict[str, Any] = {"output": which, "binary": binary or None,
                                "standardize": standardize or None, "grayscale": gray or None,
                                "input_shape": list(reshape) if reshape else None,
                                "normalize": norm.to_dict() if norm else None}
    if head is not None:
        contract["head_removed"] = {"head": head, "input_shape": list(shape.input_shape)}
    contract = {key: v for key, v in contract.items() if v is not None}
    # the module already has the grayscale and reshape hooks: apply the rest
    module = apply_contract(loaded.module, {k: v for k, v in contract.items()
                                            if k not in ("grayscale", "input_shape")},
                            f"--model {loaded.source}")
    input_text = ("RGB as one luminance channel; " if gray else "") + (
        f"each sample reshaped to {tuple(reshape)}; " if reshape else "") + (
        norm.describe() if norm else "standardized per sample and channel" if standardize
        else "as loaded")
    source = _source(loaded, outputs, which, input_text, head)
    cfg: dict[str, Any] = {"task": data.task, "model": name, "data": data_dict(data),
                           "source": source, "recipe": None}
    if kwargs:
        cfg["model_kwargs"] = kwargs
    if norm is not None:
        cfg["normalize"] = norm.to_dict()
    meta: dict[str, Any] = {"model": name, "model_kwargs": kwargs,
                            "class_names": list(shape.class_names), "epoch": None,
                            "imported_from": source, **contract}
    return cfg, module, meta


def _load(model: str, weights: str | None, shape: TaskShape, trust_pickle: bool
          ) -> tuple[LoadedModel, str, dict[str, Any]]:
    """The loaded model, the name the run rebuilds it by, and the build keywords."""
    if weights is not None:
        ref = normalize_reference(model) if is_user_model(model) else model
        kwargs = model_kwargs_for(ref, shape.input_shape, len(shape.class_names))
        loaded = load(ref, str(Path(weights).expanduser().resolve()), trust_pickle=trust_pickle,
                      builder_kwargs=kwargs)
        return loaded, ref, kwargs
    name = str(Path(model).expanduser().resolve())
    loaded = load(name, trust_pickle=trust_pickle)
    return loaded, name, ({"trust_pickle": True} if loaded.kind == "pickle" else {})


def _input_hooks(loaded: LoadedModel, shape: TaskShape, grayscale: bool
                 ) -> tuple[bool, tuple[int, ...] | None]:
    """Give the model the inputs its file declares: one luminance channel for RGB images
    (``grayscale``, or declared), the sample reshaped to a declared ``(C, L, 1)``."""
    declared = loaded.input_shape
    gray = grayscale or bool(shape.kind == "image" and shape.input_shape[0] == 3
                             and declared and declared[0] == 1)
    if gray:
        apply_grayscale(loaded.module)
    reshape = _reshape(declared, tuple(shape.input_shape))
    if reshape is not None:
        apply_reshape(loaded.module, reshape)
    return gray, reshape


def _source(loaded: LoadedModel, outputs: str, which: str | int | None, input_text: str,
            head: str | None) -> dict[str, Any]:
    """Where the model came from and what was done to it, for the config and the report."""
    source = {"model": loaded.source, "kind": loaded.kind, "weights": loaded.weights,
              "sha256": loaded.sha256, "converter": loaded.converter, "outputs": outputs,
              "scores": f"element {which!r} of the model's output" if which is not None
              else None, "input": input_text,
              "notes": [n for n in loaded.notes if head is None or "kept" not in n]}
    return {key: v for key, v in source.items() if v not in (None, [])}


def _head(loaded: LoadedModel, shape: tuple[int, ...], which: str | int | None,
          binary: bool) -> tuple[str | None, str]:
    """The final activation to remove (None: none) and what the run says of the outputs."""
    probe = loaded.module  # a copy only to hold the output hook (exported graphs copy badly)
    if which is not None:
        probe = apply_outputs(copy.deepcopy(probe), which, False, loaded.source)
    if binary:
        if loaded.final_activation == "sigmoid" and remove_head(probe, "sigmoid", shape):
            return "sigmoid", ("one logit per sample (binary): its final sigmoid removed; "
                               "classes scored as [-z/2, z/2], softmax = [1 - p, p]")
        return None, ("one logit per sample (binary): classes scored as [-z/2, z/2], "
                      "softmax = [1 - sigmoid(z), sigmoid(z)]")
    _model, head, note = logits_model(probe, shape)
    return head, note


def _reshape(declared: tuple[int, ...] | None, data_shape: tuple[int, ...]
             ) -> tuple[int, ...] | None:
    """The model's declared input when it is the data's sample with trailing size-1 axes
    (a 1-D signal model written with Conv2d over ``(N, C, L, 1)``), else None."""
    if not declared or len(declared) <= len(data_shape):
        return None
    head, tail = tuple(declared[:len(data_shape)]), declared[len(data_shape):]
    return tuple(declared) if head == data_shape and all(d == 1 for d in tail) else None


def check_fits(loaded: LoadedModel, shape: TaskShape, data: DataConfig,
               which: str | int | None = None, channels: int | None = None,
               reshaped: bool = False) -> bool:
    """One line naming both sides when the model cannot classify this data: a forward pass
    on a blank input of the data's shape must give one score per class of the data (or one
    logit per sample for two classes: returns True for such a binary model)."""
    k = len(shape.class_names)
    where = data.data_dir or data.task
    declared = loaded.input_shape
    expected = ((channels, *shape.input_shape[1:]) if channels is not None
                else tuple(shape.input_shape))
    if (not reshaped and declared and all(d > 0 for d in declared)
            and tuple(declared) != expected):
        raise CnnlensError(
            f"--model {loaded.source} takes inputs of shape {tuple(declared)} "
            f"(C, *spatial); the data ({where}) gives {expected}"
            + (" (set --image-size)" if len(shape.input_shape) == 3 else ""))
    try:
        with torch.no_grad():
            out = loaded.module(torch.zeros(1, *shape.input_shape))
    except Exception as exc:  # the user's graph: any error means it cannot take these inputs
        raise CnnlensError(
            f"--model {loaded.source} cannot run on the data's inputs of shape "
            f"{tuple(shape.input_shape)} (C, *spatial) from {where}: "
            f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}") from None
    scores = select(out, which, loaded.source)
    if scores.dim() == 2 and scores.shape[1] == 1:
        if k != 2:
            raise CnnlensError(f"--model {loaded.source} outputs one logit per sample (a "
                               f"binary model); the data ({where}) has {k} classes")
        return True
    if scores.dim() != 2:
        picked = f"--output {which!r} of " if which is not None else ""
        raise CnnlensError(f"{picked}--model {loaded.source} gives scores of shape "
                           f"{tuple(scores.shape)}; class scores are (N, classes)")
    if scores.shape[1] != k:
        width = scores.shape[1]
        raise CnnlensError(
            f"--model {loaded.source} outputs {width} class score(s) per sample; the data "
            f"({where}) has {k} classes ({', '.join(shape.class_names[:10])}"
            f"{', ...' if k > 10 else ''})")
    return False


def trained_run(out: str | Path, model: str, weights: str | None = None, *, task: str,
                data_dir: str | None = None, image_size: int | tuple[int, int] | None = None,
                resize: str = "stretch",
                trust_pickle: bool = False, normalize: str | None = None,
                output: str | int | None = None, standardize: bool = False,
                grayscale: bool = False, class_names: str | None = None,
                device: str = "auto", overwrite: bool = False) -> RunDir:
    """A run folder at ``out`` holding a model trained elsewhere (reused when it already holds
    the same one): what ``cnnlens evaluate|faithfulness RUN_DIR --model ...`` start from."""
    from cnnlens.data.loose import read_class_names
    from cnnlens.pipeline.config import data_config
    from cnnlens.pipeline.create import prepare_run_dir

    names = read_class_names(class_names) if class_names else None
    data = data_config(task=task, data_dir=data_dir, image_size=image_size, augment=False,
                       resize=resize, class_names=names)
    cfg, module, meta = trained_run_config(model, weights, data=data, trust_pickle=trust_pickle,
                                           normalize=normalize, output=output,
                                           standardize=standardize, grayscale=grayscale)
    cfg["device"] = device
    run = prepare_run_dir(out, cfg, overwrite=overwrite)
    with run.lock():
        if not run.is_trained():
            save_checkpoint(run.checkpoints, "model", module, meta)
    return run


__all__ = ["check_fits", "is_trained_source", "trained_run", "trained_run_config"]
