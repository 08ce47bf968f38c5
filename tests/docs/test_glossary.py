"""The glossary fixes each term's translation; the Chinese pages must follow it.

A Chinese page introduces a term as 中文（English）. Every such introduction must use a pair
from ``glossary/*.yml`` (English form or alias), and a page introduces each term at most once.
"""

from __future__ import annotations

import re
from pathlib import Path

import nbformat
import pytest
import yaml

from tests.paths import DOCS, LANGUAGES, markdown_pages, notebooks
from tools.glossary import GLOSSARY as GLOSSARY_DIR
from tools.glossary import MARKER, Term, load_terms, render_table, source_page

# 中文（English, optional more）: a CJK run, then full-width parentheses whose first part is
# an English term (letters, spaces, hyphens, dots and slashes only).
INTRO = re.compile(r"([\u4e00-\u9fff]+)（([A-Za-z][A-Za-z .\-/]*?)(?:[，,][^）]*)?）")


def by_english() -> dict[str, Term]:
    return {form.lower(): term for term in load_terms() for form in term.english_forms()}


def chinese_texts() -> list[tuple[str, str]]:
    texts = [(str(p.relative_to(DOCS)), p.read_text(encoding="utf-8")) for p in markdown_pages("zh")]
    for path in notebooks("zh"):
        nb = nbformat.read(path, as_version=4)
        body = "\n\n".join(c.source for c in nb.cells if c.cell_type == "markdown")
        texts.append((str(path.relative_to(DOCS)), body))
    return [(name, text) for name, text in texts if not name.endswith("glossary.md")]


def test_glossary_loads_and_each_file_belongs_to_a_page() -> None:
    terms = load_terms()
    for path in sorted(GLOSSARY_DIR.glob("*.yml")):  # no entry is silently dropped
        entries = yaml.safe_load(path.read_text(encoding="utf-8"))
        assert entries, f"{path.name} has no terms"
        assert len(entries) == sum(t.source == path.stem for t in terms), path.name
    for term in terms:
        for language in LANGUAGES:
            page = DOCS / language / source_page(term.source)
            assert page.exists(), f"glossary/{term.source}.yml belongs to no page {page}"


@pytest.mark.parametrize("language", LANGUAGES)
def test_glossary_pages_render_the_table(language: str) -> None:
    text = (DOCS / language / "glossary.md").read_text(encoding="utf-8")
    assert MARKER in text
    table = render_table(load_terms(), language)
    assert table.count("\n") == len(load_terms()) + 1
    assert ("| 因果自注意力 | causal self-attention |" in table) == (language == "zh")


@pytest.mark.parametrize(("name", "text"), chinese_texts(), ids=[n for n, _ in chinese_texts()])
def test_chinese_pages_introduce_terms_as_the_glossary_fixes(name: str, text: str) -> None:
    terms = by_english()
    seen: set[str] = set()
    for match in INTRO.finditer(text):
        run, english = match.group(1), match.group(2).strip().lower()
        assert english in terms, f"{name}: '{match.group(0)}' introduces a term missing from glossary/*.yml"
        zh = terms[english].zh
        assert run.endswith(zh), f"{name}: '{match.group(0)}' but the glossary translates '{english}' as '{zh}'"
        assert terms[english].en not in seen, f"{name}: '{english}' is introduced more than once"
        seen.add(terms[english].en)


def test_intro_pattern() -> None:
    text = "先做层归一化（LayerNorm）再用前馈网络（feed-forward network，MLP）。（Radford 等，2019）"
    found = [(m.group(1), m.group(2)) for m in INTRO.finditer(text)]
    assert found == [("先做层归一化", "LayerNorm"), ("再用前馈网络", "feed-forward network")]


def test_load_terms_rejects_repeats(tmp_path: Path) -> None:
    (tmp_path / "a.yml").write_text("- en: token\n  zh: 词元\n", encoding="utf-8")
    (tmp_path / "b.yml").write_text("- en: Token\n  zh: 标记\n", encoding="utf-8")
    with pytest.raises(ValueError, match="in both"):
        load_terms(tmp_path)


def _introduction(term: Term) -> re.Pattern[str]:
    """中文（English…）, allowing bold markers and spaces between the two, and any alias."""
    forms = "|".join(re.escape(form) for form in term.english_forms())
    return re.compile(
        re.escape(term.zh) + r"(?:\*\*)?\s*（\s*(?:" + forms + r")(?=[，,）])", re.IGNORECASE
    )


@pytest.mark.parametrize("term", load_terms(), ids=lambda t: t.en)
def test_every_term_is_introduced_on_its_own_page(term: Term) -> None:
    """Each glossary term is introduced as 中文（English） on the Chinese page that owns it."""
    page = source_page(term.source)
    text = dict(chinese_texts())[str(Path("zh") / page)]
    if term.zh.lower() in {form.lower() for form in term.english_forms()}:
        assert term.zh in text, f"zh/{page} never uses '{term.zh}'"
        return
    assert _introduction(term).search(text), (
        f"zh/{page} never introduces '{term.en}' as '{term.zh}（{term.en}）' "
        "(glossary/" + term.source + ".yml)"
    )


def test_load_terms_rejects_aliases_that_are_not_a_list(tmp_path: Path) -> None:
    (tmp_path / "a.yml").write_text("- en: byte pair encoding\n  zh: 字节对编码\n  aliases: BPE\n", encoding="utf-8")
    with pytest.raises(ValueError, match="'aliases' must be a list of strings"):
        load_terms(tmp_path)
