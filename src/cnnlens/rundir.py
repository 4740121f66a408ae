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
"""

from __future__ import annotations

from dataclasses import fields
from pathlib import Path
from typing import Any

import torch
from torch import nn

from cnnlens.data import DataConfig, TaskData, load_task
from cnnlens.errors import CnnlensError
from cnnlens.fileio import read_json, write_json


class RunDir:
    """Paths and loaders for one run folder."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)

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

    def data_config(self, **overrides: Any) -> DataConfig:
        """The run's :class:`DataConfig`, with optional overrides (e.g. ``data_dir``)."""
        cfg = self.read_config()
        names = {f.name for f in fields(DataConfig)}
        data = {k: v for k, v in cfg.get("data", {}).items() if k in names}
        data["task"] = cfg["task"]
        data.update({k: v for k, v in overrides.items() if v is not None})
        return DataConfig(**data)

    # -- loaders ---------------------------------------------------------------
    def load_data(self, **overrides: Any) -> TaskData:
        return load_task(self.data_config(**overrides))

    def load_model(
        self, name: str = "model", *, device: str | torch.device = "cpu"
    ) -> tuple[nn.Module, dict[str, Any]]:
        """Load a checkpoint of this run in eval mode, with its sidecar metadata."""
        from cnnlens.train.checkpoint import load_checkpoint

        model, meta = load_checkpoint(self.checkpoints, name, device=device)
        model.eval()
        return model, meta

    def is_trained(self) -> bool:
        return (self.checkpoints / "model.json").exists()
