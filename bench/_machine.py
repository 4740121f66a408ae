"""The machine a bench ran on, printed above every table: CPU generations differ here.

Speed and accuracy figures move with the vector unit (AVX2 vs AVX-512 with native bf16), so
every recorded figure names the CPU flags it was measured on.
"""

from __future__ import annotations

import os
import platform
from pathlib import Path

FLAGS = ("avx2", "avx512f", "avx512_bf16", "amx_bf16")


def cpu_flags() -> list[str]:
    """Of :data:`FLAGS`, those /proc/cpuinfo lists (empty where it cannot be read)."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return []
    line = next((ln for ln in text.splitlines() if ln.startswith("flags")), "")
    have = set(line.split(":", 1)[-1].split())
    return [f for f in FLAGS if f in have]


def cpu_model() -> str:
    try:
        for ln in Path("/proc/cpuinfo").read_text().splitlines():
            if ln.startswith("model name"):
                return ln.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def machine_line() -> str:
    """One line: CPU model, flags, torch's vector capability, threads, load average."""
    import torch

    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    return (f"machine: {cpu_model()}; flags {' '.join(cpu_flags()) or 'none of ' + str(FLAGS)}; "
            f"torch {torch.__version__} {torch.backends.cpu.get_cpu_capability()}, "
            f"{torch.get_num_threads()} threads, {os.cpu_count()} cores, load {load:.2f}")


__all__ = ["cpu_flags", "cpu_model", "machine_line"]
