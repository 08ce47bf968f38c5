"""The stored notebooks: bilingual twins with identical code and identical checked outputs,
honest NBVAL_IGNORE_OUTPUT cells, stated runtimes, readable code, exercises that name real code.
"""

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
LIMIT_S = 45.0
#: Notebook code must fit the site's content column (about 88 monospace characters).
CODE_WIDTH = 88
#: A title is "# N. ...", or an unnumbered interlude or appendix.
TITLE = re.compile(r"(\d+\. |Interlude: |插曲：|Appendix: |附录：)")
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
    assert heads and TITLE.match(heads[0]), (
        "the title must start with the chapter number, 'Interlude: ' or 'Appendix: '"
    )
    language = path.relative_to(DOCS).parts[0]
    unnumbered = [re.sub(r"^\d+\. ", "", head) for head in heads]  # "9. Summary" counts
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


# --------------------------------------------------------------------------------------
# One language runs under native kernels, the other under ATEN_CPU_CAPABILITY=default
# (Makefile): that checks both only if the two store the same checked outputs.
# --------------------------------------------------------------------------------------

TEXT_KEYS = ("text/plain", "text/html", "image/svg+xml")


def checked_outputs(cell: nbformat.NotebookNode) -> list[tuple[str, str]]:
    """What nbval compares in a cell, except images (PNG is not compared).

    Consecutive outputs of one stream are joined, as nbval joins them: the kernel splits a
    cell's printing into outputs by timing, so the split differs from run to run."""
    result: list[tuple[str, str]] = []
    for output in cell.get("outputs", []):
        if output.output_type == "stream":
            if result and result[-1][0] == output.name:
                result[-1] = (output.name, result[-1][1] + output.text)
            else:
                result.append((output.name, output.text))
        elif output.output_type in ("execute_result", "display_data"):
            for key in TEXT_KEYS:
                if key in output.get("data", {}):
                    result.append((key, output.data[key]))
    return result


@pytest.mark.parametrize("path", notebooks("en"), ids=[str(p.relative_to(DOCS)) for p in notebooks("en")])
def test_twins_store_identical_checked_outputs(path: Path) -> None:
    """Every output nbval checks is the same in both languages, so checking English with native
    kernels and Chinese with portable kernels checks both languages under both."""
    en = [c for c in read(path).cells if c.cell_type == "code"]
    zh = [c for c in read(twin(path)).cells if c.cell_type == "code"]
    for index, (a, b) in enumerate(zip(en, zh)):
        if "NBVAL_IGNORE_OUTPUT" in a.source or "NBVAL_SKIP" in a.source:
            continue
        assert checked_outputs(a) == checked_outputs(b), (
            f"{path.relative_to(DOCS)} code cell {index}: the zh twin prints something else; "
            "print language-neutral text (use tr() only for figure labels)"
        )


@pytest.mark.parametrize("path", ALL, ids=IDS)
def test_notebook_metadata_states_its_language(path: Path) -> None:
    """tutorial_code.notebook.notebook_language reads it (figure labels)."""
    language = path.relative_to(DOCS).parts[0]
    assert read(path).metadata.get("book", {}).get("language") == language


@pytest.mark.parametrize("path", ALL, ids=IDS)
def test_first_code_cell_sets_up_the_notebook(path: Path) -> None:
    first = code_sources(path)[0]
    assert "clock = setup_notebook()" in first, (
        "the first code cell must call setup_notebook() (one torch thread, figure style)"
    )
    assert len(first.splitlines()) <= 6, "keep the first code cell short; import where used"


@pytest.mark.parametrize("path", notebooks("en"), ids=[str(p.relative_to(DOCS)) for p in notebooks("en")])
def test_code_lines_fit_the_content_column(path: Path) -> None:
    for index, source in enumerate(code_sources(path)):
        for line in source.splitlines():
            assert len(line) <= CODE_WIDTH, (
                f"{path.relative_to(DOCS)} code cell {index} has a line of {len(line)} > "
                f"{CODE_WIDTH} characters: {line!r}"
            )


# --------------------------------------------------------------------------------------
# Exercises name real code
# --------------------------------------------------------------------------------------

CODE_SPAN = re.compile(r"`([^`\n]+)`")
PACKAGE_NAME = re.compile(r"^tutorial_code(\.[A-Za-z_]\w*)+$")
MODEL_NAME = re.compile(r"^model(\.[A-Za-z_]\w*|\[\d+\])+$")


def exercise_spans(path: Path) -> list[str]:
    """Inline code spans of the English Exercises section."""
    spans, inside = [], False
    for cell in read(path).cells:
        if cell.cell_type != "markdown":
            continue
        for line in cell.source.splitlines():
            if re.match(r"#{1,6} ", line):
                inside = re.sub(r"^[#\s\d.]+", "", line).strip() == "Exercises"
            elif inside:
                spans += CODE_SPAN.findall(line)
    return spans


def resolve_package_name(name: str) -> object:
    import importlib

    parts = name.split(".")
    for cut in range(len(parts), 0, -1):
        try:
            obj = importlib.import_module(".".join(parts[:cut]))
        except ImportError:
            continue
        for attr in parts[cut:]:
            obj = getattr(obj, attr)
        return obj
    raise ImportError(name)


def resolve_model_name(name: str) -> object:
    """Resolve ``model.trf_blocks[0].att.W_query`` on a small book GPT."""
    from tutorial_code.model import GPTConfig, GPTModel

    obj: object = GPTModel(GPTConfig(vocab_size=10, context_length=8, emb_dim=8, n_heads=2, n_layers=2))
    for attr, index in re.findall(r"\.([A-Za-z_]\w*)|\[(\d+)\]", name[len("model") :]):
        obj = getattr(obj, attr) if attr else obj[int(index)]  # type: ignore[index]
    return obj


@pytest.mark.parametrize("path", notebooks("en"), ids=[str(p.relative_to(DOCS)) for p in notebooks("en")])
def test_exercises_name_code_that_exists(path: Path) -> None:
    """Names like `tutorial_code.kv_cache.PreallocatedKVCache` or `model.trf_blocks[0].att.mask`
    written in an exercise must resolve (an exercise about a non-existent attribute misleads)."""
    for span in exercise_spans(path):
        name = span.split("(")[0].strip()
        try:
            if PACKAGE_NAME.match(name):
                resolve_package_name(name)
            elif MODEL_NAME.match(name):
                resolve_model_name(name)
        except (ImportError, AttributeError, IndexError) as err:
            raise AssertionError(f"{path.relative_to(DOCS)}: exercise names `{span}`, which does not exist ({err})") from None


def test_exercise_name_resolution_catches_a_missing_attribute() -> None:
    resolve_model_name("model.trf_blocks[1].att.W_query")
    resolve_package_name("tutorial_code.generation.generate")
    with pytest.raises(AttributeError):
        resolve_model_name("model.trf_blocks[0].att.handle")
    with pytest.raises((ImportError, AttributeError)):
        resolve_package_name("tutorial_code.model.no_such_function")
