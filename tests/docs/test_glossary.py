"""The glossary fixes each term's translation; the Chinese pages must follow it.

A Chinese page introduces a term as 中文（English）. Every such introduction must use a pair
listed in the glossary, and a page introduces each term at most once. The English and
Chinese glossaries must list the same pairs.
"""

from __future__ import annotations

import re
from pathlib import Path

import nbformat
import pytest

from tests.paths import DOCS, markdown_pages, notebooks

# 中文（English, optional more）: a CJK run, then full-width parentheses whose first part is
# an English term (letters, spaces, hyphens, dots and slashes only).
INTRO = re.compile(r"([\u4e00-\u9fff]+)（([A-Za-z][A-Za-z .\-/]*?)(?:[，,][^）]*)?）")


def glossary(language: str) -> dict[str, str]:
    """Map each English alternative (lower-case) to its Chinese term."""
    text = (DOCS / language / "glossary.md").read_text(encoding="utf-8")
    pairs: dict[str, str] = {}
    for line in text.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) != 3 or set(cells[0]) <= {"-", " "} or cells[0] in ("English", "中文"):
            continue
        english, chinese = (cells[0], cells[1]) if language == "en" else (cells[1], cells[0])
        for alternative in english.split(" / "):
            key = alternative.strip().lower()
            assert key not in pairs, f"{language} glossary lists '{alternative}' twice"
            pairs[key] = chinese
    return pairs


def chinese_texts() -> list[tuple[str, str]]:
    texts = [(str(p.relative_to(DOCS)), p.read_text(encoding="utf-8")) for p in markdown_pages("zh")]
    for path in notebooks("zh"):
        nb = nbformat.read(path, as_version=4)
        body = "\n\n".join(c.source for c in nb.cells if c.cell_type == "markdown")
        texts.append((str(path.relative_to(DOCS)), body))
    return [(name, text) for name, text in texts if not name.endswith("glossary.md")]


def test_both_glossaries_list_the_same_pairs() -> None:
    assert glossary("en") == glossary("zh")
    assert len(glossary("en")) >= 10


@pytest.mark.parametrize(("name", "text"), chinese_texts(), ids=[n for n, _ in chinese_texts()])
def test_chinese_pages_introduce_terms_as_the_glossary_fixes(name: str, text: str) -> None:
    terms = glossary("zh")
    seen: set[str] = set()
    for match in INTRO.finditer(text):
        run, english = match.group(1), match.group(2).strip().lower()
        assert english in terms, f"{name}: '{match.group(0)}' introduces a term missing from the glossary"
        assert run.endswith(terms[english]), (
            f"{name}: '{match.group(0)}' but the glossary translates '{english}' as '{terms[english]}'"
        )
        assert english not in seen, f"{name}: '{english}' is introduced more than once"
        seen.add(english)


def test_intro_pattern() -> None:
    found = [(m.group(1), m.group(2)) for m in INTRO.finditer("先做层归一化（LayerNorm）再用前馈网络（feed-forward network，MLP）。（Radford 等，2019）")]
    assert found == [("先做层归一化", "LayerNorm"), ("再用前馈网络", "feed-forward network")]
