"""The bilingual notebook source format (tools/notebooks.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tools.notebooks import notebook_for, parse_source


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "chapter.md"
    path.write_text(text, encoding="utf-8")
    return path


def test_code_cells_go_to_both_languages(tmp_path: Path) -> None:
    cells = parse_source(write(tmp_path, "<!-- en -->\n# Hi\n<!-- zh -->\n# 你好\n<!-- code -->\nx = 1\n"))
    en, zh = notebook_for(cells, "en"), notebook_for(cells, "zh")
    assert [(c.cell_type, c.source) for c in en.cells] == [("markdown", "# Hi"), ("code", "x = 1")]
    assert [(c.cell_type, c.source) for c in zh.cells] == [("markdown", "# 你好"), ("code", "x = 1")]


def test_text_before_the_first_marker_is_rejected(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="before the first cell marker"):
        parse_source(write(tmp_path, "stray\n<!-- code -->\nx = 1\n"))


def test_empty_cells_are_rejected(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="empty code cell"):
        parse_source(write(tmp_path, "<!-- code -->\n\n<!-- en -->\ntext\n"))
