"""Paths shared by the test packages."""

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
SITE = ROOT / "site"
LANGUAGES = ("en", "zh")


def notebooks(language: str) -> list[Path]:
    return sorted((DOCS / language).rglob("*.ipynb"))


def markdown_pages(language: str) -> list[Path]:
    return sorted((DOCS / language).rglob("*.md"))


def load_script(relative: str) -> ModuleType:
    """A script of ``experiments/`` or ``benchmarks/`` (folders that are not packages) as a
    module, e.g. ``load_script("experiments/grpo.py")``. It is registered in ``sys.modules``
    under ``script_<folder>_<name>``, because dataclasses look their module up there."""
    path = ROOT / relative
    name = "script_" + "_".join(path.with_suffix("").relative_to(ROOT).parts)
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module
