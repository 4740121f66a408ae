"""Device selection: ``auto`` picks CUDA when present."""

from __future__ import annotations

import torch

from cnnlens.errors import CnnlensError


def resolve_device(name: str = "auto") -> torch.device:
    """Turn ``auto``, ``cpu``, ``cuda`` or ``cuda:N`` into a usable device."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(name)
    except RuntimeError:
        raise CnnlensError(
            f"--device {name!r} is not a device; use auto, cpu, cuda or cuda:N"
        ) from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise CnnlensError(
            f"--device {name!r}: CUDA is not available on this machine; use cpu or auto"
        )
    return dev
