"""TrainState: everything training needs to continue, saved and restored whole."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
from torch import nn

from cnnlens.errors import CnnlensError
from cnnlens.train.state import TrainState


def _state(seed: int) -> TrainState:
    torch.manual_seed(seed)
    model = nn.Linear(3, 2)
    return TrainState(model, torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9),
                      torch.Generator().manual_seed(seed))


def test_save_then_restore_gives_back_every_part(tmp_path: Path) -> None:
    a = _state(0)
    a.model(torch.ones(4, 3)).sum().backward()
    a.optimizer.step()  # momentum buffers to carry
    torch.randperm(10, generator=a.shuffle)
    a.record({"epoch": 0, "val_loss": 0.5}, 0, has_val=True, patience=3)
    a.record({"epoch": 1, "val_loss": 0.7}, 1, has_val=True, patience=3)
    a.save(tmp_path / "s.pt", epoch=1)
    rng_after_save = torch.get_rng_state()
    b = _state(1)
    torch.manual_seed(123)
    start, partial = b.restore(tmp_path / "s.pt", epochs=10)
    assert (start, partial) == (2, None)
    assert torch.equal(torch.get_rng_state(), rng_after_save)
    for pa, pb in zip(a.model.parameters(), b.model.parameters(), strict=True):
        assert torch.equal(pa, pb)
    assert torch.equal(a.shuffle.get_state(), b.shuffle.get_state())
    assert b.optimizer.state_dict()["state"].keys() == a.optimizer.state_dict()["state"].keys()
    assert b.history == a.history and b.best == {"val_loss": 0.5, "epoch": 0}
    assert b.bad_epochs == 1 and not b.stopped_early


def test_early_stopping_and_partial_epochs(tmp_path: Path) -> None:
    s = _state(0)
    assert s.record({"val_loss": 1.0}, 0, True, patience=1)
    assert not s.record({"val_loss": 2.0}, 1, True, patience=1) and s.stopped_early
    s.save(tmp_path / "stop.pt", epoch=1)
    assert _state(0).restore(tmp_path / "stop.pt", epochs=9) == (9, None)  # nothing to do
    s.stopped_early = False
    s.save(tmp_path / "part.pt", epoch=1, partial={"epoch": 2, "batches": 3})
    assert _state(0).restore(tmp_path / "part.pt", epochs=9) == (2, {"epoch": 2, "batches": 3})
    no_val = _state(0)
    no_val.record({"loss": 1.0}, 0, False, patience=None)
    assert no_val.bad_epochs == 0 and no_val.best["val_loss"] == math.inf


def test_a_state_for_another_model_names_the_file(tmp_path: Path) -> None:
    _state(0).save(tmp_path / "s.pt", epoch=0)
    other = TrainState(nn.Linear(5, 2), torch.optim.SGD(nn.Linear(5, 2).parameters(), lr=1),
                       torch.Generator())
    with pytest.raises(CnnlensError, match=r"s\.pt: training state does not fit this run"):
        other.restore(tmp_path / "s.pt", epochs=3)
