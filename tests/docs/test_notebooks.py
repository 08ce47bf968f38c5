"""The stored notebooks: bilingual twins, honest NBVAL_IGNORE_OUTPUT cells, stated runtimes."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import nbformat
import pytest

from tests.paths import DOCS, LANGUAGES, ROOT, notebooks
from tools import notebooks as builder

ALL = [p for lang in LANGUAGES for p in notebooks(lang)]
IDS = [str(p.relative_to(DOCS)) for p in ALL]
RUNTIME = re.compile(r"ran in (\d+(?:\.\d+)?) s")
LIMIT_S = 60.0
SECTIONS = {
    "en": ["Summary", "Exercises", "References"],
    "zh": ["小结", "练习", "参考文献"],
}


def read(path: Path) -> nbformat.NotebookNode:
    return nbformat.read(path, as_version=4)


def code_sources(path: Path) -> list[str]:
    return [c.source for c in read(path).cells if c.cell_type == "code"]


def twin(path: Path) -> Path:
    rel = path.relative_to(DOCS)
    other = "zh" if rel.parts[0] == "en" else "en"
    return DOCS / other / Path(*rel.parts[1:])


def test_there_are_notebooks() -> None:
    assert notebooks("en"), "no notebooks found under docs/en"


@pytest.mark.parametrize("path", ALL, ids=IDS)
def test_every_notebook_has_a_twin_with_identical_code(path: Path) -> None:
    other = twin(path)
    assert other.exists(), f"{path.relative_to(DOCS)} has no twin {other.relative_to(DOCS)}"
    assert code_sources(path) == code_sources(other), (
        f"code cells of {path.relative_to(DOCS)} and {other.relative_to(DOCS)} differ"
    )


def _has_assert(source: str) -> bool:
    tree = ast.parse("\n".join(line for line in source.splitlines() if not line.startswith(("%", "!"))))
    return any(isinstance(node, ast.Assert) for node in ast.walk(tree))


@pytest.mark.parametrize("path", ALL, ids=IDS)
def test_ignored_outputs_assert_the_robust_fact(path: Path) -> None:
    for index, cell in enumerate(read(path).cells):
        if cell.cell_type == "code" and "NBVAL_IGNORE_OUTPUT" in cell.source:
            assert _has_assert(cell.source), (
                f"{path.relative_to(DOCS)} cell {index} is marked NBVAL_IGNORE_OUTPUT "
                "but asserts nothing; assert the fact the reader should take away"
            )


@pytest.mark.parametrize("path", ALL, ids=IDS)
def test_notebook_states_a_runtime_under_the_limit(path: Path) -> None:
    last = [c for c in read(path).cells if c.cell_type == "code"][-1]
    assert "NBVAL_IGNORE_OUTPUT" in last.source and "assert runtime <" in last.source
    text = "".join(o.get("text", "") for o in last.outputs if o.output_type == "stream")
    match = RUNTIME.search(text)
    assert match, f"the last cell of {path.relative_to(DOCS)} does not print 'ran in N s'"
    assert float(match.group(1)) <= LIMIT_S


@pytest.mark.parametrize("path", ALL, ids=IDS)
def test_executed_top_to_bottom_without_errors(path: Path) -> None:
    counts = []
    for cell in read(path).cells:
        if cell.cell_type != "code":
            continue
        counts.append(cell.execution_count)
        for output in cell.outputs:
            assert output.output_type != "error", f"{path.relative_to(DOCS)} stores an error"
            assert output.get("name") != "stderr", (
                f"{path.relative_to(DOCS)} stores stderr output: {output.get('text', '')[:200]}"
            )
    assert counts == list(range(1, len(counts) + 1)), f"{path.relative_to(DOCS)}: counts {counts}"


def _headings(path: Path) -> list[str]:
    heads = []
    for cell in read(path).cells:
        if cell.cell_type == "markdown":
            in_fence = False
            for line in cell.source.splitlines():
                if line.startswith("```"):
                    in_fence = not in_fence
                elif not in_fence and re.match(r"#{1,6} ", line):
                    heads.append(line.lstrip("#").strip())
    return heads


@pytest.mark.parametrize("path", ALL, ids=IDS)
def test_headings_are_unique_and_chapter_sections_exist(path: Path) -> None:
    heads = _headings(path)
    assert len(heads) == len(set(heads)), f"duplicate headings in {path.relative_to(DOCS)}"
    assert heads and re.match(r"\d+\. ", heads[0]), "the title must start with the chapter number"
    language = path.relative_to(DOCS).parts[0]
    unnumbered = {re.sub(r"^\d+\. ", "", head) for head in heads}  # "11. Summary" or "Summary"
    for section in SECTIONS[language]:
        assert section in unnumbered, f"{path.relative_to(DOCS)} has no '{section}' section"


@pytest.mark.parametrize("path", notebooks("en"), ids=[str(p.relative_to(DOCS)) for p in notebooks("en")])
def test_twins_have_the_same_section_structure(path: Path) -> None:
    """Both languages number the same sections at the same levels (e.g. '2.1' as '###')."""

    def outline(p: Path) -> list[tuple[int, str]]:
        result = []
        for cell in read(p).cells:
            if cell.cell_type == "markdown":
                for line in cell.source.splitlines():
                    match = re.match(r"(#{1,6}) (\d+(?:\.\d+)*\.?)?", line)
                    if match:
                        result.append((len(match.group(1)), match.group(2) or ""))
        return result

    assert outline(path) == outline(twin(path)), f"{path.relative_to(DOCS)} and its twin differ in sections"


@pytest.mark.parametrize("name", builder.all_names())
def test_stored_notebooks_match_their_source(name: str) -> None:
    assert builder.stale(name) == []


def test_every_notebook_has_a_source() -> None:
    names = set(builder.all_names())
    for path in ALL:
        assert path.stem in names, f"{path.relative_to(ROOT)} has no source notebooks/{path.stem}.md"
