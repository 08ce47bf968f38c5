"""Shared pytest set-up: one torch thread per process, and a per-notebook timing table at the
end of every notebook run.

Nothing needs the network (GPT-2's vocabulary ships with the package). nbval turns each code
cell into a test item; this plugin adds up the set-up (kernel start), call and teardown time
of a notebook's items and prints one line per notebook, so ``make test`` shows where its
minutes go. It works with pytest-xdist: reports reach the controlling process.
"""

from __future__ import annotations

import os
from collections import defaultdict

import torch

_SECONDS: dict[str, float] = defaultdict(float)
_CELLS: dict[str, int] = defaultdict(int)


def pytest_configure(config) -> None:  # type: ignore[no-untyped-def]
    # One torch thread per test process: the suite runs on one worker per core, and the
    # book's tiny models are slower with two threads (the parallel regions stall).
    torch.set_num_threads(1)


def pytest_runtest_logreport(report) -> None:  # type: ignore[no-untyped-def]
    path = str(report.fspath)
    if path.endswith(".ipynb"):
        _SECONDS[path] += report.duration
        if report.when == "call":
            _CELLS[path] += 1


def pytest_terminal_summary(terminalreporter) -> None:  # type: ignore[no-untyped-def]
    if not _SECONDS:
        return
    kernels = os.environ.get("ATEN_CPU_CAPABILITY") or "native"
    write = terminalreporter.write_line
    terminalreporter.section(f"notebook timings ({kernels} CPU kernels)")
    width = max(len(os.path.relpath(p)) for p in _SECONDS)
    for path, seconds in sorted(_SECONDS.items()):
        write(f"{os.path.relpath(path):<{width}}  {_CELLS[path]:>4} cells  {seconds:7.1f} s")
    write(f"{'total (summed over workers)':<{width}}  {sum(_CELLS.values()):>4} cells  "
          f"{sum(_SECONDS.values()):7.1f} s")
