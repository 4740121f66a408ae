"""A model the user already trained, as a run folder the later stages use without training.

``cnnlens run --model SOURCE [--weights FILE]`` with a model file (``.onnx``, ``.pt2``,
``.h5``, a trusted pickle) or a builder plus its trained weights: the model is loaded
(:func:`cnnlens.models.load.load`), checked against the data (class count, input shape) by
one forward pass on a blank input, and saved as the run's ``checkpoints/model`` with where
it came from. The run's config has no recipe, so the runner skips training and goes on to
evaluate, explain, faithfulness and the report.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import nn

from cnnlens.data import DataConfig, TaskShape, describe_task
from cnnlens.errors import CnnlensError
from cnnlens.models import is_model_file, is_user_model, model_kwargs_for
from cnnlens.models.contract import apply_normalization, parse_normalize
from cnnlens.models.heads import logits_model
from cnnlens.models.load import LoadedModel, load
from cnnlens.models.user import normalize_reference


def is_trained_source(model: str | None, weights: str | None) -> bool:
    """True when ``--model``/``--weights`` name a trained model rather than one to train."""
    return weights is not None or (model is not None and is_model_file(model))


def trained_run_config(model: str, weights: str | None, *, data: DataConfig,
                       trust_pickle: bool = False, normalize: str | None = None,
                       ) -> tuple[dict[str, Any], nn.Module, dict[str, Any]]:
    """The run config, the loaded model and its checkpoint sidecar for a trained model.

    ``normalize`` (``--normalize``) is the model's own input normalization: stored with the
    checkpoint and applied whenever the run's model is loaded.
    """
    shape = describe_task(data)
    norm = parse_normalize(normalize)
    if norm is not None:
        norm.check_channels(shape.input_shape[0], f"the data ({data.data_dir or data.task})")
    k = len(shape.class_names)
    if weights is not None:
        ref = normalize_reference(model) if is_user_model(model) else model
        kwargs = model_kwargs_for(ref, shape.input_shape, k)
        loaded = load(ref, str(Path(weights).expanduser().resolve()), trust_pickle=trust_pickle,
                      builder_kwargs=kwargs)
        name = ref
    else:
        name = str(Path(model).expanduser().resolve())
        loaded = load(name, trust_pickle=trust_pickle)
        kwargs = {"trust_pickle": True} if loaded.kind == "pickle" else {}
    check_fits(loaded, shape, data)
    module, head, outputs = logits_model(loaded.module, tuple(shape.input_shape))
    source = {"model": loaded.source, "kind": loaded.kind, "weights": loaded.weights,
              "sha256": loaded.sha256, "converter": loaded.converter,
              "outputs": outputs, "input": norm.describe() if norm else "as loaded, [0, 1]",
              "notes": [n for n in loaded.notes if head is None or "kept" not in n]}
    source = {key: v for key, v in source.items() if v not in (None, [])}
    data_dict = {key: v for key, v in vars(data).items() if key != "task"}
    cfg: dict[str, Any] = {"task": data.task, "model": name, "data": data_dict,
                           "source": source, "recipe": None}
    if kwargs:
        cfg["model_kwargs"] = kwargs
    meta: dict[str, Any] = {"model": name, "model_kwargs": kwargs,
                            "class_names": list(shape.class_names), "epoch": None,
                            "imported_from": source}
    if head is not None:  # removed again each time the run's model is loaded
        meta["head_removed"] = {"head": head, "input_shape": list(shape.input_shape)}
    if norm is not None:
        meta["normalize"] = norm.to_dict()
        cfg["normalize"] = norm.to_dict()
        apply_normalization(module, norm)
    return cfg, module, meta


def check_fits(loaded: LoadedModel, shape: TaskShape, data: DataConfig) -> None:
    """One line naming both sides when the model cannot classify this data: a forward pass
    on a blank input of the data's shape must give one score per class of the data."""
    k = len(shape.class_names)
    where = data.data_dir or data.task
    declared = loaded.input_shape
    if declared and all(d > 0 for d in declared) and tuple(declared) != tuple(shape.input_shape):
        raise CnnlensError(
            f"--model {loaded.source} takes inputs of shape {tuple(declared)} "
            f"(C, *spatial); the data ({where}) has {tuple(shape.input_shape)}"
            + (" (set --image-size)" if len(shape.input_shape) == 3 else ""))
    try:
        with torch.no_grad():
            out = loaded.module(torch.zeros(1, *shape.input_shape))
    except Exception as exc:  # the user's graph: any error means it cannot take these inputs
        raise CnnlensError(
            f"--model {loaded.source} cannot run on the data's inputs of shape "
            f"{tuple(shape.input_shape)} (C, *spatial) from {where}: "
            f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}") from None
    if not isinstance(out, torch.Tensor):
        raise CnnlensError(
            f"--model {loaded.source} returns a {type(out).__name__}, not one tensor of class "
            "scores; wrap it so forward returns the scores")
    if out.dim() != 2 or out.shape[1] != k:
        width = out.shape[1] if out.dim() == 2 else tuple(out.shape)
        raise CnnlensError(
            f"--model {loaded.source} outputs {width} class score(s) per sample; the data "
            f"({where}) has {k} classes ({', '.join(shape.class_names[:10])}"
            f"{', ...' if k > 10 else ''})")


__all__ = ["check_fits", "is_trained_source", "trained_run_config"]
