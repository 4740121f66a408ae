"""Sharding, gathering and batch splitting across ranks, checked without starting processes.

Every rank can compute every rank's share, so the bookkeeping is tested here by playing all
ranks in one process; tests/cli/test_cli_torchrun.py runs the real thing under torchrun.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch.utils.data import TensorDataset

from cnnlens.distributed import Ranks, current, env_rank
from cnnlens.errors import CnnlensError
from cnnlens.train.ddp import rank_batches, step_loss


def _play(n: int, world: int) -> np.ndarray:
    """Compute ``f(i) = 10 i`` on each rank's share and gather the way Shard.gather does."""
    shards = [Ranks(rank=r, world=world).shard(n) for r in range(world)]
    assert len({s.indices.size for s in shards}) == 1  # equal shares: plain all_gather works
    assert shards[0].indices.size == math.ceil(n / world)
    flat = np.concatenate([10 * s.indices for s in shards])
    return shards[0].restore(flat)


@pytest.mark.parametrize("world", [2, 3, 4])
@pytest.mark.parametrize("n", [1, 2, 5, 8, 9, 12])
def test_gathered_results_count_each_sample_once_in_order(n: int, world: int) -> None:
    out = _play(n, world)
    assert out.shape == (n,)
    assert np.array_equal(out, 10 * np.arange(n))


def test_nine_samples_on_two_ranks_count_nine() -> None:
    a, b = Ranks(0, 2).shard(9), Ranks(1, 2).shard(9)
    assert a.indices.size == b.indices.size == 5  # one padding duplicate
    assert sorted(set(a.indices) | set(b.indices)) == list(range(9))
    assert _play(9, 2).size == 9


def test_one_process_is_the_identity() -> None:
    ranks = Ranks()
    assert not ranks.active and ranks.is_main
    shard = ranks.shard(7)
    assert np.array_equal(shard.indices, np.arange(7))
    x = np.arange(14.0).reshape(7, 2)
    assert shard.gather(x) is not None and np.array_equal(shard.gather(x), x)
    assert ranks.all_sum([1.5, 2]) == [1.5, 2.0]
    assert ranks.broadcast({"a": 1}) == {"a": 1}
    assert ranks.on_main(lambda: 3) == 3
    assert torch.equal(ranks.part(4), torch.arange(4))
    with pytest.raises(CnnlensError, match="boom"):
        ranks.on_main(lambda: (_ for _ in ()).throw(CnnlensError("boom")))


def test_no_process_group_means_one_process(monkeypatch: pytest.MonkeyPatch) -> None:
    assert current() == Ranks()
    assert env_rank() == 0
    monkeypatch.setenv("RANK", "1")  # a stray RANK without a WORLD_SIZE: still rank 0
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    assert env_rank() == 0
    monkeypatch.setenv("WORLD_SIZE", "2")  # what torchrun sets, before the group is joined
    assert env_rank() == 1


@pytest.mark.parametrize(("n", "batch", "world"), [(49, 16, 2), (9, 4, 2), (10, 4, 3), (3, 8, 4)])
def test_rank_batches_split_every_global_batch(n: int, batch: int, world: int) -> None:
    """Each step, the ranks' shares together are exactly one process's batch; every rank
    takes every step (an empty share when the last batch is smaller than the world)."""
    ds = TensorDataset(torch.arange(n).float()[:, None], torch.arange(n))
    order = torch.randperm(n, generator=torch.Generator().manual_seed(0))
    one = [y.tolist() for _, y in rank_batches(ds, order, batch, Ranks())]
    per_rank = [[y.tolist() for _, y in rank_batches(ds, order, batch, Ranks(r, world))]
                for r in range(world)]
    assert all(len(steps) == len(one) == math.ceil(n / batch) for steps in per_rank)
    for step, expected in enumerate(one):
        together = sorted(i for steps in per_rank for i in steps[step])
        assert together == sorted(expected)
    if n % batch and n % batch < world:
        assert per_rank[-1][-1] == []  # an empty share, still a step


def test_step_loss_of_one_process_is_the_plain_mean() -> None:
    logits = torch.tensor([[2.0, 0.0], [0.0, 1.0], [3.0, 0.0]], requires_grad=True)
    y = torch.tensor([0, 0, 0])
    step = step_loss(logits, y, Ranks(), stop=False)
    expected = torch.nn.functional.cross_entropy(logits, y)
    assert torch.equal(step.loss, expected)
    assert step.n == 3 and step.correct == 2 and not step.stop
    assert step.mean_loss == pytest.approx(expected.item())


EXIT_SCRIPT = """
import sys
import cnnlens.distributed as d
d._left_group = {left}
print("written", end="")
sys.stderr.write("said")
d.exit_if_left_group(3)
print(" and returned", end="")
"""


@pytest.mark.parametrize("left", [True, False])
def test_a_worker_that_left_its_group_exits_at_once_with_its_streams_flushed(
        left: bool) -> None:
    """After the group is gone, a torchrun worker ends with its own status and everything it
    printed, before interpreter teardown can meet a gloo thread still releasing tensors; a
    process that never joined a group returns and exits normally."""
    import subprocess
    import sys

    proc = subprocess.run([sys.executable, "-c", EXIT_SCRIPT.format(left=left)],
                          capture_output=True, text=True, timeout=120)
    assert (proc.returncode, proc.stdout, proc.stderr) == (
        (3, "written", "said") if left else (0, "written and returned", "said"))
