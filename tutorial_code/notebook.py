"""Small helpers every chapter notebook uses: a stopwatch and a one-line machine summary."""

from __future__ import annotations

import os
import platform
import time
from pathlib import Path

import torch

__all__ = ["Stopwatch", "cpu_model", "machine_summary"]


class Stopwatch:
    """Wall-clock time since construction (``time.perf_counter``)."""

    def __init__(self) -> None:
        self.start = time.perf_counter()

    def seconds(self) -> float:
        return time.perf_counter() - self.start


def cpu_model() -> str:
    """The CPU's marketing name from /proc/cpuinfo (Linux), else ``platform.processor()``."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine_summary() -> str:
    """E.g. ``'x86_64, 2 CPU cores, torch 2.13.0+cpu (AVX2 kernels)'``."""
    return (
        f"{platform.machine()}, {os.cpu_count()} CPU cores, torch {torch.__version__} "
        f"({torch.backends.cpu.get_cpu_capability()} kernels)"
    )
