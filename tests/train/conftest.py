"""A tiny MNIST-1D task so training tests take seconds."""

from __future__ import annotations

import pytest
import torch
from torch.utils.data import TensorDataset

from cnnlens.data import DataConfig, TaskData, load_task


@pytest.fixture(scope="session")
def tiny_task() -> TaskData:
    full = load_task(DataConfig("mnist1d"))
    xs, ys = full.train.tensors  # type: ignore[attr-defined]
    xt, yt = full.test.tensors  # type: ignore[attr-defined]
    return TaskData(
        class_names=full.class_names,
        train=TensorDataset(xs[:320], ys[:320]),
        val=TensorDataset(xs[320:400], ys[320:400]),
        test=TensorDataset(xt[:100], yt[:100]),
        kind="signal",
    )


@pytest.fixture()
def empty_val(tiny_task: TaskData) -> TaskData:
    return TaskData(tiny_task.class_names, tiny_task.train,
                    TensorDataset(torch.zeros(0, 1, 40), torch.zeros(0, dtype=torch.long)),
                    tiny_task.test, "signal")
