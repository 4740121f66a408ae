"""--normalize: parsed once, applied to the model as a pre-hook, the data left in [0, 1]."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from cnnlens.errors import CnnlensError
from cnnlens.models.contract import (
    Normalization,
    apply_normalization,
    normalization_from,
    parse_normalize,
)


def test_names_and_values_parse() -> None:
    assert parse_normalize(None) is None and parse_normalize("none") is None
    imagenet = parse_normalize("imagenet")
    assert imagenet == Normalization((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))
    assert parse_normalize("0.5,0.25") == Normalization((0.5,), (0.25,))
    assert parse_normalize("0.1,0.2,0.3/1,2,3") == Normalization((0.1, 0.2, 0.3), (1, 2, 3))
    assert normalization_from(imagenet.to_dict()) == imagenet


@pytest.mark.parametrize(("text", "match"), [
    ("imagenett", "expected one of none, imagenet"), ("0.5,0", "std must be > 0"),
    ("1,2/3", "2 means but 1 stds"), ("1,b", "numbers separated by commas"),
    ("nan,1", "finite"),
])
def test_bad_values_name_the_option(text: str, match: str) -> None:
    with pytest.raises(CnnlensError, match=match) as err:
        parse_normalize(text)
    assert "--normalize" in str(err.value)


def test_channel_count_is_checked() -> None:
    with pytest.raises(CnnlensError, match="3 values per statistic; the data has 1"):
        parse_normalize("imagenet").check_channels(1, "the data")  # type: ignore[union-attr]
    parse_normalize("0.5,0.5").check_channels(1, "x")  # type: ignore[union-attr]


def test_the_model_sees_normalized_inputs_and_gradients_reach_the_pixels() -> None:
    seen: list[torch.Tensor] = []
    model = nn.Sequential(nn.Conv2d(3, 2, 1))
    model[0].register_forward_pre_hook(lambda _m, a: seen.append(a[0].detach().clone()))
    norm = parse_normalize("imagenet")
    apply_normalization(model, norm)
    x = torch.rand(2, 3, 4, 4, requires_grad=True)
    model(x).sum().backward()
    mean = torch.tensor(norm.mean).reshape(1, 3, 1, 1)  # type: ignore[union-attr]
    std = torch.tensor(norm.std).reshape(1, 3, 1, 1)  # type: ignore[union-attr]
    assert torch.allclose(seen[0], (x.detach() - mean) / std)
    assert x.grad is not None and float(x.grad.abs().sum()) > 0
    assert x.min() >= 0  # the caller's tensor is untouched
