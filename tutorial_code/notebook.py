"""Helpers every chapter notebook uses (and nothing else in the package imports).

* :func:`setup_notebook` is the first call of every chapter: one torch thread (so printed
  digits do not depend on how many cores a reader has), the figure style and a font with
  Chinese glyphs, and a :class:`Stopwatch` for the runtime the last cell prints;
* :func:`notebook_language` and :func:`tr`: the notebook's language comes from the notebook's
  own metadata (``metadata.book.language``, written by ``tools/notebooks.py``), so the code
  cells of the English and Chinese notebooks are identical and only figure labels differ;
* :func:`show_source` prints the package's real code without docstrings;
* :func:`machine_summary` and :func:`cpu_model` state the hardware beside a measurement.
"""

from __future__ import annotations

import ast
import functools
import inspect
import json
import os
import platform
import textwrap
import time
from pathlib import Path

import torch

__all__ = [
    "LANGUAGES",
    "Stopwatch",
    "cjk_font_path",
    "cpu_model",
    "machine_summary",
    "notebook_language",
    "setup_notebook",
    "show_source",
    "tr",
    "use_book_style",
]

#: The book's languages; the first is the default.
LANGUAGES = ("en", "zh")

#: Font families with Chinese glyphs, tried in order after the font file mplfonts ships.
CJK_FAMILIES = (
    "Noto Sans CJK SC",
    "Source Han Sans SC",
    "PingFang SC",
    "Microsoft YaHei",
    "WenQuanYi Micro Hei",
    "Heiti SC",
)


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


def _language_of(notebook: Path) -> str | None:
    try:
        meta = json.loads(notebook.read_text(encoding="utf-8")).get("metadata", {})
    except (OSError, ValueError):
        return None
    language = meta.get("book", {}).get("language")
    return language if language in LANGUAGES else None


@functools.cache
def notebook_language() -> str:
    """The language of the running notebook, ``"en"`` or ``"zh"``.

    Read, in order, from: the environment variable ``BOOK_LANGUAGE``; the metadata
    (``metadata.book.language``) of the notebook Jupyter names in ``JPY_SESSION_NAME``; the
    metadata of the notebooks in the working directory, which is the notebook's own folder
    under Jupyter, nbval and the book's builder, if they all agree; otherwise ``"en"``.
    """
    forced = os.environ.get("BOOK_LANGUAGE")
    if forced:
        if forced not in LANGUAGES:
            raise ValueError(f"BOOK_LANGUAGE must be one of {LANGUAGES}, got {forced!r}")
        return forced
    session = os.environ.get("JPY_SESSION_NAME", "")
    if session.endswith(".ipynb"):
        language = _language_of(Path(session))
        if language:
            return language
    found = {_language_of(p) for p in Path.cwd().glob("*.ipynb")} - {None}
    if len(found) == 1:
        return found.pop()
    return LANGUAGES[0]


def tr(en: str, zh: str) -> str:
    """``en`` or ``zh``, whichever is the running notebook's language (figure labels)."""
    return zh if notebook_language() == "zh" else en


def cjk_font_path() -> Path | None:
    """A font file with Chinese glyphs: the Noto Sans CJK SC file of the ``mplfonts``
    package (a pinned requirement), else one of :data:`CJK_FAMILIES` installed on the system,
    else ``None``."""
    try:
        import mplfonts
    except ImportError:
        pass
    else:
        path = Path(mplfonts.__file__).parent / "fonts" / "NotoSansCJKsc-Regular.otf"
        if path.is_file():
            return path
    from matplotlib import font_manager

    for entry in font_manager.fontManager.ttflist:
        if entry.name in CJK_FAMILIES:
            return Path(entry.fname)
    return None


def use_book_style() -> None:
    """Matplotlib defaults for the book's figures, with a Chinese-capable fallback font.

    Latin text is drawn with DejaVu Sans (matplotlib's default) and any glyph it lacks falls
    back to the CJK font (matplotlib's per-glyph font fallback), so Chinese labels render
    without missing-glyph boxes in both languages.
    """
    import matplotlib as mpl
    from matplotlib import font_manager

    families = ["DejaVu Sans"]
    path = cjk_font_path()
    if path is not None:
        font_manager.fontManager.addfont(str(path))
        families.append(font_manager.FontProperties(fname=str(path)).get_name())
    mpl.rcParams.update(
        {
            "font.family": families,
            "figure.dpi": 100,
            "axes.grid": True,
            "grid.alpha": 0.3,
            "axes.spines.top": False,
            "axes.spines.right": False,
        }
    )


def setup_notebook(*, threads: int = 1) -> Stopwatch:
    """Start a chapter: set torch's thread count, the figure style; return a stopwatch.

    One thread by default: PyTorch splits reductions across threads, and the order of a
    floating-point sum changes its last digits, so a fixed thread count makes the printed
    numbers the same on every machine with the same instruction set (and the book's test run
    executes two notebooks at a time, one per core).
    """
    torch.set_num_threads(threads)
    use_book_style()
    return Stopwatch()
