"""Build the English and Chinese notebooks of each chapter from one bilingual source.

A chapter's source is ``notebooks/<name>.md``: a sequence of cells, each opened by a marker
line of its own::

    <!-- en -->      an English Markdown cell
    <!-- zh -->      a Chinese Markdown cell
    <!-- code -->    a code cell, shared by both languages

Every code cell appears in both notebooks, so the two languages run identical code by
construction (``tests/docs/test_notebooks.py`` checks it again on the stored notebooks).
The build writes
``docs/en/chapters/<name>.ipynb`` and ``docs/zh/chapters/<name>.ipynb`` and executes each
top to bottom in its own folder, storing the outputs that nbval re-checks.

Usage::

    python tools/notebooks.py                 # build and execute every chapter
    python tools/notebooks.py 00-small-gpt    # only the named chapters
    python tools/notebooks.py --check         # fail if a stored notebook differs from its source
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import nbformat
from nbclient import NotebookClient

ROOT = Path(__file__).resolve().parent.parent
SOURCES = ROOT / "notebooks"
LANGUAGES = ("en", "zh")
MARKER = re.compile(r"^<!-- (en|zh|code) -->\s*$")


@dataclass(frozen=True)
class SourceCell:
    kind: str  # "en", "zh" or "code"
    text: str


def parse_source(path: Path) -> list[SourceCell]:
    """Split a bilingual source into cells; text before the first marker is not allowed."""
    cells: list[SourceCell] = []
    kind: str | None = None
    lines: list[str] = []

    def flush() -> None:
        if kind is not None:
            text = "\n".join(lines).strip("\n")
            if not text.strip():
                raise ValueError(f"{path}: empty {kind} cell before cell {len(cells) + 1}")
            cells.append(SourceCell(kind, text))

    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        match = MARKER.match(line)
        if match:
            flush()
            kind, lines = match.group(1), []
        elif kind is None and line.strip():
            raise ValueError(f"{path}:{number}: text before the first cell marker")
        else:
            lines.append(line)
    flush()
    return cells


def notebook_for(cells: list[SourceCell], language: str) -> nbformat.NotebookNode:
    """The unexecuted notebook of one language: its Markdown cells plus every code cell."""
    nb = nbformat.v4.new_notebook()
    nb.metadata = {
        "book": {"language": language},  # read by tutorial_code.notebook.notebook_language
        "kernelspec": {"display_name": "Python 3", "language": "python", "name": "python3"},
        "language_info": {"name": "python"},
    }
    for index, cell in enumerate(cells):
        if cell.kind == "code":
            new = nbformat.v4.new_code_cell(cell.text)
        elif cell.kind == language:
            new = nbformat.v4.new_markdown_cell(cell.text)
        else:
            continue
        new.id = f"c{index:03d}"
        nb.cells.append(new)
    return nb


def target_path(name: str, language: str) -> Path:
    return ROOT / "docs" / language / "chapters" / f"{name}.ipynb"


def build(name: str, *, timeout: int = 600) -> dict[str, float]:
    """Write and execute both notebooks of chapter ``name``; return wall times in seconds."""
    cells = parse_source(SOURCES / f"{name}.md")
    times = {}
    for language in LANGUAGES:
        nb = notebook_for(cells, language)
        path = target_path(name, language)
        path.parent.mkdir(parents=True, exist_ok=True)
        start = time.perf_counter()
        os.environ["BOOK_LANGUAGE"] = language  # the kernel inherits it; the folder may be empty
        NotebookClient(
            nb,
            timeout=timeout,
            kernel_name="python3",
            resources={"metadata": {"path": str(path.parent)}},
        ).execute()
        times[language] = time.perf_counter() - start
        for cell in nb.cells:  # keep stored notebooks free of per-run noise
            cell.metadata.pop("execution", None)
        nbformat.write(nb, path)
        print(f"{path.relative_to(ROOT)}: executed in {times[language]:.1f} s")
    return times


def stale(name: str) -> list[str]:
    """Describe every way the stored notebooks of ``name`` differ from its source."""
    cells = parse_source(SOURCES / f"{name}.md")
    problems = []
    for language in LANGUAGES:
        path = target_path(name, language)
        if not path.exists():
            problems.append(f"{path.relative_to(ROOT)} is missing")
            continue
        stored = nbformat.read(path, as_version=4)
        expected = notebook_for(cells, language)
        got = [(c.cell_type, c.source) for c in stored.cells]
        want = [(c.cell_type, c.source) for c in expected.cells]
        if got != want:
            problems.append(f"{path.relative_to(ROOT)} differs from notebooks/{name}.md")
        elif any(c.cell_type == "code" and c.execution_count is None for c in stored.cells):
            problems.append(f"{path.relative_to(ROOT)} has unexecuted code cells")
    return problems


def write_source(path: Path, cells: list[SourceCell]) -> None:
    """Write cells back in the source format (the inverse of :func:`parse_source`)."""
    path.write_text(
        "\n\n".join(f"<!-- {cell.kind} -->\n{cell.text}" for cell in cells) + "\n",
        encoding="utf-8",
    )


#: Notebook code must fit the site's content column (tests/docs checks it).
CODE_WIDTH = 88


def format_code(name: str) -> list[str]:
    """Format the code cells of ``notebooks/<name>.md`` with ``ruff format`` at the page width.

    Returns the lines still longer than :data:`CODE_WIDTH` (long strings and comments, which a
    formatter does not split): those need a hand edit.
    """
    path = SOURCES / f"{name}.md"
    cells = parse_source(path)
    ruff = Path(sys.executable).parent / "ruff"
    formatted = []
    for cell in cells:
        if cell.kind == "code":
            result = subprocess.run(
                [
                    str(ruff),
                    "format",
                    f"--line-length={CODE_WIDTH}",
                    "--stdin-filename=cell.py",
                    "-",
                ],
                input=cell.text,
                capture_output=True,
                text=True,
            )
            if result.returncode == 0:
                cell = SourceCell("code", result.stdout.strip("\n"))
        formatted.append(cell)
    write_source(path, formatted)
    return [
        line
        for cell in formatted
        if cell.kind == "code"
        for line in cell.text.splitlines()
        if len(line) > CODE_WIDTH
    ]


def all_names() -> list[str]:
    return sorted(p.stem for p in SOURCES.glob("*.md") if p.name != "README.md")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("names", nargs="*", help="chapters to build (default: all)")
    parser.add_argument(
        "--check", action="store_true", help="only check that stored notebooks match"
    )
    parser.add_argument(
        "--format",
        action="store_true",
        help=f"format the sources' code cells to {CODE_WIDTH} columns (then rebuild them)",
    )
    args = parser.parse_args(argv)
    names = args.names or all_names()
    unknown = sorted(set(names) - set(all_names()))
    if unknown:
        parser.error(f"no source notebooks/<name>.md for: {', '.join(unknown)}")
    if args.format:
        for name in names:
            for line in format_code(name):
                print(f"notebooks/{name}.md: still longer than {CODE_WIDTH}: {line}")
        return 0
    if args.check:
        problems = [p for name in names for p in stale(name)]
        for problem in problems:
            print(problem, file=sys.stderr)
        return 1 if problems else 0
    for name in names:
        build(name)
    return 0


if __name__ == "__main__":
    sys.exit(main())
