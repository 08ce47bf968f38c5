"""Small helpers every chapter notebook uses: a stopwatch, a one-line machine summary, and
printing the source of the book's functions without their docstrings."""

from __future__ import annotations

import ast
import inspect
import os
import platform
import textwrap
import time
from pathlib import Path

import torch

__all__ = ["Stopwatch", "cpu_model", "machine_summary", "show_source"]


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


def show_source(*objs: object) -> None:
    """Print the source of functions, methods or classes without their docstrings.

    The chapters show the code they teach this way: the code as ``tutorial_code`` runs it,
    with the docstrings (which repeat the prose around it) left out. Methods are dedented;
    several objects are separated by a blank line.
    """
    if not objs:
        raise TypeError("show_source needs at least one function, method or class")
    for n, obj in enumerate(objs):
        if not (inspect.isfunction(obj) or inspect.ismethod(obj) or inspect.isclass(obj)):
            raise TypeError(f"objs must be functions, methods or classes, got {type(obj).__name__}")
        source = textwrap.dedent(inspect.getsource(obj))
        skip: set[int] = set()
        for node in ast.walk(ast.parse(source)):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                if ast.get_docstring(node) is not None:
                    first = node.body[0]
                    skip.update(range(first.lineno - 1, first.end_lineno or first.lineno))
        if n:
            print()
        print("\n".join(line for i, line in enumerate(source.splitlines()) if i not in skip))
