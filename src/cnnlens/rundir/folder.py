"""The run folder: each stage reads the previous stage's artifacts and writes its own.

Layout::

    RUN/config.json          what the run is (task, model, recipe, data)
    RUN/checkpoints/         model.safetensors + model.json (the model later stages use),
                             last.* and last_state.pt (for --resume)
    RUN/tb/                  TensorBoard event files
    RUN/train/history.json   per-epoch metrics
    RUN/eval/                metrics.json, predictions.npz, figures
    RUN/cams/                <method>.npz and figures
    RUN/faithfulness/        results.json / .csv and figures
    RUN/report.html
    RUN/.lock                held (``flock``) by the process writing the folder

A process that writes a run folder holds ``RUN/.lock`` with ``fcntl.flock``: a second
process fails at once with a message naming the holder, and the kernel releases the lock
when its holder dies, so a lock left by a killed process never blocks.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import errno
import hashlib
import json
import os
import socket
import sys
import threading
from collections.abc import Iterator, Mapping
from dataclasses import fields
from pathlib import Path
from typing import Any, ClassVar

import torch
from torch import nn

from cnnlens.data import DataConfig, TaskData, load_task
from cnnlens.errors import CnnlensError
from cnnlens.fileio import read_json, remove_stale_temporaries, write_json
from cnnlens.rundir.checkpoint import load_checkpoint

#: Everything a run writes; --overwrite removes exactly these, never a user's other files.
RUN_ARTIFACTS = ("config.json", "checkpoints", "tb", "train", "eval", "cams", "faithfulness",
                 "report.html")
LOCK_NAME = ".lock"


class RunLockedError(CnnlensError):
    """Another process is writing this run folder."""


class _Held:
    """Locks this process holds, so nested stages of one process share one lock."""

    lock = threading.Lock()
    fds: ClassVar[dict[Path, tuple[int, int]]] = {}  # path -> (fd, depth)


class RunDir:
    """Paths, loaders and the writer's lock of one run folder."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)

    def __repr__(self) -> str:
        return f"RunDir({str(self.path)!r})"

    # -- paths -----------------------------------------------------------------
    @property
    def config_path(self) -> Path:
        return self.path / "config.json"

    @property
    def checkpoints(self) -> Path:
        return self.path / "checkpoints"

    @property
    def tb(self) -> Path:
        return self.path / "tb"

    @property
    def train_dir(self) -> Path:
        return self.path / "train"

    @property
    def eval_dir(self) -> Path:
        return self.path / "eval"

    @property
    def cams_dir(self) -> Path:
        return self.path / "cams"

    @property
    def faithfulness_dir(self) -> Path:
        return self.path / "faithfulness"

    @property
    def report_path(self) -> Path:
        return self.path / "report.html"

    # -- config ----------------------------------------------------------------
    def exists(self) -> bool:
        return self.config_path.exists()

    def read_config(self) -> dict[str, Any]:
        if not self.path.is_dir():
            raise CnnlensError(f"{self.path}: run folder not found")
        if not self.config_path.exists():
            raise CnnlensError(
                f"{self.config_path}: not found; is {self.path} a cnnlens run folder?"
            )
        cfg = read_json(self.config_path)
        if not isinstance(cfg, dict) or "task" not in cfg or "model" not in cfg:
            raise CnnlensError(f"{self.config_path}: not a cnnlens run config")
        return cfg

    def write_config(self, cfg: dict[str, Any]) -> None:
        write_json(self.config_path, cfg)

    def use_config(self, given: Mapping[str, Any] | None = None) -> Mapping[str, Any]:
        """``given`` when the caller holds the run's config already (the pipeline reads or
        writes it once and hands it down), else ``config.json`` read now (a stage run alone)."""
        return self.read_config() if given is None else given

    def data_config(self, *, config: Mapping[str, Any] | None = None,
                    **overrides: Any) -> DataConfig:
        """The run's :class:`DataConfig` (from ``config`` when given), with optional
        overrides (e.g. ``data_dir``)."""
        cfg = self.use_config(config)
        names = {f.name for f in fields(DataConfig)}
        data = {k: v for k, v in cfg.get("data", {}).items() if k in names}
        data["task"] = cfg["task"]
        data.update({k: v for k, v in overrides.items() if v is not None})
        if data.get("data_dir") is not None:
            data["data_dir"] = str(Path(data["data_dir"]).expanduser().resolve())
        return DataConfig(**data)

    # -- loaders ---------------------------------------------------------------
    def load_data(self, *, config: Mapping[str, Any] | None = None,
                  **overrides: Any) -> TaskData:
        return load_task(self.data_config(config=config, **overrides))

    def expected_model(self, config: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """What the run's config (``config`` when given) says the checkpoint must be (model
        and build options)."""
        cfg = self.use_config(config)
        return {"model": cfg["model"], "model_kwargs": cfg.get("model_kwargs") or {}}

    def load_model(
        self, name: str = "model", *, device: str | torch.device = "cpu",
        config: Mapping[str, Any] | None = None,
    ) -> tuple[nn.Module, dict[str, Any]]:
        """Load a checkpoint of this run in eval mode, with its sidecar metadata.

        A checkpoint made for another model than the run's config (``config`` when given)
        names is refused.
        """
        model, meta = load_checkpoint(self.checkpoints, name, device=device,
                                      expect=self.expected_model(config))
        model.eval()
        return model, meta

    def is_trained(self) -> bool:
        return (self.checkpoints / "model.json").exists()

    def model_digest(self) -> str:
        """SHA-256 of the model weights: stages record it to notice a retrained model."""
        path = self.checkpoints / "model.safetensors"
        try:
            return hashlib.sha256(path.read_bytes()).hexdigest()[:16]
        except OSError:
            return ""

    def current_output(self, path: Path, **expect: Any) -> dict[str, Any] | None:
        """The JSON a stage wrote at ``path`` when it answers ``expect`` (e.g. the stage's
        request) for the current model weights, else None: every stage's skip rule."""
        if not path.is_file():
            return None
        try:
            done = read_json(path)
        except CnnlensError:
            return None
        if not isinstance(done, dict) or done.get("model_digest") != self.model_digest() != "":
            return None
        return done if all(done.get(k) == v for k, v in expect.items()) else None

    # -- locking ---------------------------------------------------------------
    @contextlib.contextmanager
    def lock(self, command: str | None = None) -> Iterator[None]:
        """Hold ``RUN/.lock`` while writing; re-entrant within one process.

        Raises :class:`RunLockedError` naming the folder and the holder when another process
        holds it. Of the processes of a ``torchrun`` job only rank 0 writes, so only rank 0
        takes the lock; the others never contend for it.
        """
        import fcntl

        from cnnlens.distributed import env_rank

        if env_rank() != 0:
            yield
            return
        key = self.path.resolve()
        with _Held.lock:
            held = _Held.fds.get(key)
            if held is not None:
                _Held.fds[key] = (held[0], held[1] + 1)
        if held is None:
            if not self.path.is_dir():
                raise CnnlensError(f"{self.path}: run folder not found")
            path = self.path / LOCK_NAME
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError as exc:
                os.close(fd)
                if exc.errno not in (errno.EWOULDBLOCK, errno.EACCES, errno.EAGAIN):
                    raise CnnlensError(f"{path}: cannot lock the run folder ({exc})") from None
                raise RunLockedError(
                    f"{self.path}: in use by another cnnlens process ({_holder(path)}); "
                    "wait for it to finish or stop it"
                ) from None
            info = {"pid": os.getpid(), "host": socket.gethostname(),
                    "command": command or " ".join(["cnnlens", *sys.argv[1:]])[:200],
                    "since": _dt.datetime.now().isoformat(timespec="seconds")}
            with contextlib.suppress(OSError):
                os.ftruncate(fd, 0)
                os.pwrite(fd, json.dumps(info).encode(), 0)
            with _Held.lock:
                _Held.fds[key] = (fd, 1)
            remove_stale_temporaries(self.path)  # a killed writer's leftovers: ours now
        try:
            yield
        finally:
            with _Held.lock:
                fd, depth = _Held.fds[key]
                if depth > 1:
                    _Held.fds[key] = (fd, depth - 1)
                else:
                    del _Held.fds[key]
                    os.close(fd)  # releases the flock; the file stays (harmless, reused)


def _holder(path: Path) -> str:
    try:
        info = json.loads(path.read_text() or "{}")
    except (OSError, ValueError):
        return "holder unknown"
    return (f"pid {info.get('pid', '?')} on {info.get('host', '?')}, "
            f"`{info.get('command', '?')}` since {info.get('since', '?')}")


def check_class_names(data_names: list[str], model_names: list[str] | None, where: str) -> None:
    """Refuse data whose classes differ from the model's: labels would silently permute."""
    if model_names is None:
        return
    data_list, model_list = [str(c) for c in data_names], [str(c) for c in model_names]
    if data_list == model_list:
        return
    only_data = [c for c in data_list if c not in model_list]
    only_model = [c for c in model_list if c not in data_list]
    detail = []
    if only_data:
        detail.append(f"only in the data: {', '.join(only_data)}")
    if only_model:
        detail.append(f"only in the model: {', '.join(only_model)}")
    if not detail:
        detail.append("same names in another order")
    raise CnnlensError(
        f"{where}: the data's classes differ from the model's ({'; '.join(detail)}); "
        f"data: {', '.join(data_list)}; model: {', '.join(model_list)}"
    )


def load_checked_data(
    run: RunDir, meta: dict[str, Any], *, split: str, data_dir: str | None = None,
    data: TaskData | None = None, config: Mapping[str, Any] | None = None,
) -> TaskData:
    """The run's data (or ``data``), refused when its classes are not the model's or when
    files of ``split`` cannot be read (all of them named). ``config``: the run's config when
    the caller holds it (else ``config.json`` is read)."""
    if data is None:
        data = run.load_data(config=config, data_dir=data_dir, augment=False)
    cfg = run.data_config(config=config, data_dir=data_dir)
    where = cfg.data_dir or cfg.task
    check_class_names(data.class_names, meta.get("class_names"), f"{where}")
    data.check_readable((split,))
    return data


__all__ = ["LOCK_NAME", "RUN_ARTIFACTS", "RunDir", "RunLockedError", "check_class_names",
           "load_checked_data"]
