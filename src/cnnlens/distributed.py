"""Several processes on PyTorch's own engine: ``torchrun`` starts them, this module joins them.

``torchrun`` (torch.distributed.elastic) launches the processes and sets ``RANK``,
``WORLD_SIZE``, ``LOCAL_RANK``, ``MASTER_ADDR`` and ``MASTER_PORT``; :func:`setup` joins the
process group from those variables (gloo for CPU, nccl for CUDA) the first time a stage
needs it. Without them every helper here is the identity for one process, so a plain run
pays nothing and takes exactly the code path it always took.

The rules every stage follows (see the README, "Running on several processes"):

* rank 0 alone writes the run folder and holds its lock; :meth:`Ranks.on_main` runs the
  writing part there and hands its result (or its error) to every rank;
* per-sample work (evaluate, explain, faithfulness) is sharded with
  :class:`~torch.utils.data.DistributedSampler`, which pads the shares to equal length with
  duplicates so that plain tensor ``all_gather`` works (also on NCCL); :meth:`Shard.gather`
  drops the duplicates and puts the results back in the one-process order;
* sums (validation loss, accuracy) are taken over unpadded shares and all-reduced.
"""

from __future__ import annotations

import atexit
import contextlib
import logging
import os
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar, cast

import numpy as np
import torch
import torch.distributed as dist
from torch.utils.data import Dataset, DistributedSampler

from cnnlens.errors import CnnlensError

T = TypeVar("T")


def env_rank() -> int:
    """This process's rank: the process group's once joined, else torchrun's ``RANK``.

    ``RANK`` counts only with a ``WORLD_SIZE`` above 1, so a stray variable in a plain
    shell never makes a lone process skip its writes.
    """
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank()
    if launched_world_size() < 2:
        return 0
    try:
        return int(os.environ.get("RANK", "0"))
    except ValueError:
        return 0


def launched_world_size() -> int:
    """How many processes torchrun (or another launcher) started: ``WORLD_SIZE`` or 1."""
    try:
        return max(1, int(os.environ.get("WORLD_SIZE", "1")))
    except ValueError:
        return 1


@dataclass(frozen=True)
class Ranks:
    """Who this process is among the processes of one job; ``world == 1`` is a plain run."""

    rank: int = 0
    world: int = 1
    local_rank: int = 0
    backend: str | None = None

    @property
    def active(self) -> bool:
        """True when several processes share the work."""
        return self.world > 1

    @property
    def is_main(self) -> bool:
        """Rank 0: the one process that writes files and reports progress."""
        return self.rank == 0

    @property
    def comm_device(self) -> torch.device:
        """Where collective tensors must live: the current GPU for nccl, else the CPU."""
        if self.backend == "nccl":
            return torch.device("cuda", torch.cuda.current_device())
        return torch.device("cpu")

    # -- sharding --------------------------------------------------------------------------
    def shard(self, n: int) -> Shard:
        """This rank's share of ``n`` samples (padded, see :class:`Shard`)."""
        return Shard.of(n, self)

    def part(self, n: int) -> torch.Tensor:
        """An unpadded share of ``range(n)`` (``rank::world``), for results that are summed."""
        return torch.arange(n)[self.rank :: self.world]

    # -- collectives -------------------------------------------------------------------------
    def all_sum(self, values: Sequence[float]) -> list[float]:
        """Element-wise sums over ranks (float64)."""
        if not self.active:
            return [float(v) for v in values]
        t = torch.tensor([float(v) for v in values], dtype=torch.float64,
                         device=self.comm_device)
        dist.all_reduce(t)
        return [float(v) for v in t.cpu()]

    def broadcast(self, obj: T) -> T:
        """Rank 0's ``obj`` on every rank (also a barrier)."""
        if not self.active:
            return obj
        box: list[Any] = [obj if self.is_main else None]
        dist.broadcast_object_list(box, src=0)
        return cast(T, box[0])

    def barrier(self) -> None:
        if self.active:
            dist.barrier()

    def on_main(self, fn: Callable[[], T]) -> T:
        """Run ``fn`` on rank 0 only and return its result on every rank.

        An error there reaches every rank: rank 0 re-raises its own exception, the others
        raise the same one-line :class:`CnnlensError` (or ``KeyboardInterrupt``), so no
        process waits for a partner that has given up.
        """
        if not self.active:
            return fn()
        return self.settle(fn if self.is_main else lambda: cast(T, None))

    def settle(self, fn: Callable[[], T]) -> T:
        """Run ``fn`` on every rank and return rank 0's result (or raise its error) on all.

        For work whose shared part (collectives) runs everywhere and whose last part, the
        writing, only rank 0 does: the other ranks return early from ``fn``.
        """
        if not self.active:
            return fn()
        outcome: tuple[str, Any] = ("", None)
        error: BaseException | None = None
        try:
            value = fn()
            if self.is_main:
                outcome = ("ok", value)
        except KeyboardInterrupt as exc:
            if not self.is_main:
                raise
            error, outcome = exc, ("interrupt", str(exc))
        except BaseException as exc:
            if not self.is_main:
                raise
            error, outcome = exc, ("error", f"{exc}" if isinstance(exc, CnnlensError)
                                   else f"rank 0 failed: {type(exc).__name__}: {exc}")
        outcome = self.broadcast(outcome)
        if error is not None:
            raise error
        kind, value = outcome
        if kind == "interrupt":
            raise KeyboardInterrupt(value)
        if kind == "error":
            raise CnnlensError(value)
        return cast(T, value)


@dataclass(frozen=True)
class Shard:
    """This rank's samples of ``range(n)`` and how to gather per-sample results in order.

    The shares are :class:`~torch.utils.data.DistributedSampler`'s (``shuffle=False``): each
    rank gets ``ceil(n / world)`` samples, the last ones padded with duplicates of the
    first. Every rank can compute every rank's share, so gathering needs no index exchange.
    """

    indices: np.ndarray  # dataset positions this rank computes, padded
    n: int
    ranks: Ranks
    _first: np.ndarray = field(repr=False)  # for each sample, its first copy in the gather

    @classmethod
    def of(cls, n: int, ranks: Ranks) -> Shard:
        if not ranks.active:
            everything = np.arange(n, dtype=np.int64)
            return cls(everything, n, ranks, everything)
        shares = [_sampler_share(n, ranks.world, r) for r in range(ranks.world)]
        flat = np.concatenate(shares)
        unique, first = np.unique(flat, return_index=True)
        if unique.size != n or (n and (unique[0] != 0 or unique[-1] != n - 1)):
            raise RuntimeError(f"sharding {n} samples over {ranks.world} ranks lost samples")
        return cls(shares[ranks.rank], n, ranks, first)

    def gather(self, local: np.ndarray | torch.Tensor) -> np.ndarray:
        """All ranks' rows of a per-sample array, duplicates dropped, in sample order."""
        arr = local.detach().cpu().numpy() if isinstance(local, torch.Tensor) else local
        arr = np.ascontiguousarray(arr)
        if not self.ranks.active:
            return arr
        if arr.shape[0] != self.indices.size:
            raise ValueError(f"expected one row per sample of this shard ({self.indices.size}),"
                             f" got {arr.shape[0]}")
        dtype = arr.dtype
        send = torch.from_numpy(arr.view(np.uint8) if dtype == np.bool_ else arr)
        send = send.to(self.ranks.comm_device)
        parts = [torch.empty_like(send) for _ in range(self.ranks.world)]
        dist.all_gather(parts, send)
        flat = torch.cat(parts).cpu().numpy()
        return self.restore(flat.view(np.bool_) if dtype == np.bool_ else flat)

    def restore(self, flat: np.ndarray) -> np.ndarray:
        """Rows of every rank's share, rank after rank, back to one row per sample in order."""
        return flat[self._first]


def _sampler_share(n: int, world: int, rank: int) -> np.ndarray:
    sampler: DistributedSampler[int] = DistributedSampler(
        cast(Dataset[int], range(n)), num_replicas=world, rank=rank, shuffle=False,
        drop_last=False)
    return np.fromiter(iter(sampler), dtype=np.int64, count=len(sampler))


_created_group = False
_left_group = False  # set once shutdown() destroyed the group created here


def current() -> Ranks:
    """The :class:`Ranks` of the process group already joined (one process if none)."""
    if not (dist.is_available() and dist.is_initialized()):
        return Ranks()
    try:
        local = int(os.environ.get("LOCAL_RANK", "0"))
    except ValueError:
        local = 0
    return Ranks(rank=dist.get_rank(), world=dist.get_world_size(), local_rank=local,
                 backend=str(dist.get_backend()))


def setup(device: torch.device) -> tuple[Ranks, torch.device]:
    """Join torchrun's process group (if launched so) and pick this rank's device.

    The backend is nccl when ``device`` is CUDA and gloo otherwise; a group the caller
    created is used as it is. Each rank of a CUDA job takes the GPU of its ``LOCAL_RANK``
    unless ``device`` names one. Returns the ranks and the device to use.
    """
    global _created_group
    if launched_world_size() > 1 and not dist.is_initialized():
        if not dist.is_available():
            raise CnnlensError("this PyTorch build has no torch.distributed; run one process")
        missing = [v for v in ("MASTER_ADDR", "MASTER_PORT", "RANK") if v not in os.environ]
        if missing:
            raise CnnlensError(f"WORLD_SIZE is set but {', '.join(missing)} are not: start "
                               "several processes with torchrun")
        backend = "nccl" if device.type == "cuda" else "gloo"
        if device.type == "cuda":
            torch.cuda.set_device(_rank_device(device))
        store = _attempt_store()
        if store is None:
            dist.init_process_group(backend=backend)
        else:
            dist.init_process_group(backend=backend, store=store, rank=int(os.environ["RANK"]),
                                    world_size=launched_world_size())
        _created_group = True
        atexit.register(shutdown)
    ranks = current()
    if ranks.active and device.type == "cuda":
        device = _rank_device(device)
        torch.cuda.set_device(device)
    return ranks, device


def _attempt_store() -> dist.Store | None:
    """torchrun's shared store, with keys kept apart per restart (single node only).

    By default torchrun's workers share the agent's rendezvous store, which outlives a
    restart: the restarted processes then read the peers' addresses the killed ones left
    there and fail to connect (pytorch/pytorch#135712). On one node every worker has the
    same ``TORCHELASTIC_RESTART_COUNT``, so a prefix per restart keeps attempts apart.
    Across nodes the counts can differ; there, start torchrun with
    ``TORCH_DISABLE_SHARE_RDZV_TCP_STORE=1`` (a fresh store per rendezvous), and this returns
    None (the plain ``env://`` rendezvous).
    """
    if os.environ.get("TORCHELASTIC_USE_AGENT_STORE") != "True":
        return None
    if os.environ.get("LOCAL_WORLD_SIZE") != os.environ.get("WORLD_SIZE"):
        return None
    from torch.distributed.constants import default_pg_timeout

    client = dist.TCPStore(os.environ["MASTER_ADDR"], int(os.environ["MASTER_PORT"]),
                           launched_world_size(), is_master=False, timeout=default_pg_timeout)
    attempt = os.environ.get("TORCHELASTIC_RESTART_COUNT", "0")
    return dist.PrefixStore(f"cnnlens/attempt_{attempt}", client)


def _rank_device(device: torch.device) -> torch.device:
    if device.index is not None:
        return device
    return torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))


def shutdown() -> None:
    """Leave the process group this module created (safe to call twice)."""
    global _created_group, _left_group
    if _created_group and dist.is_initialized():
        dist.destroy_process_group()
        _left_group = True
    _created_group = False


def exit_if_left_group(code: int) -> None:
    """End this process now, with ``code``, if it left a process group it had created.

    Gloo's worker threads outlive ``destroy_process_group``: a thread that finishes a
    collective releases its tensors a moment after the caller's ``wait()`` returned, and
    releasing a tensor made in Python takes the GIL. When that moment falls into the
    interpreter's teardown, the thread is killed while unwinding and the whole process
    aborts (``terminate called without an active exception``, SIGABRT), so torchrun
    reports a finished job as failed. Every output is written and closed by now, so the
    worker flushes its streams and skips the teardown. Processes that never joined a group
    return and exit as usual.
    """
    if not _left_group:
        return
    logging.shutdown()
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(OSError, ValueError):  # closed or broken: nothing to say
            stream.flush()
    os._exit(code)


__all__ = ["Ranks", "Shard", "current", "env_rank", "exit_if_left_group", "launched_world_size",
           "setup", "shutdown"]
