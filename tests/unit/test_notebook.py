"""tutorial_code.notebook: the helpers the chapter notebooks share."""

from __future__ import annotations

import json

import pytest

from tutorial_code.notebook import (
    cjk_font_path,
    notebook_language,
    show_source,
    tr,
    use_book_style,
)


class _Example:
    """Class docstring."""

    def method(self, x: int) -> int:
        """Method docstring,
        over two lines."""
        y = x + 1  # a comment stays
        return y


def _plain(a):
    return a  # no docstring at all


def test_show_source_drops_docstrings_and_dedents(capsys) -> None:
    show_source(_Example.method)
    assert capsys.readouterr().out == (
        "def method(self, x: int) -> int:\n    y = x + 1  # a comment stays\n    return y\n"
    )
    show_source(_Example)
    out = capsys.readouterr().out
    assert "docstring" not in out and out.startswith("class _Example:\n") and "return y" in out
    show_source(_plain)
    assert capsys.readouterr().out == "def _plain(a):\n    return a  # no docstring at all\n"


def test_show_source_separates_several_objects_by_a_blank_line(capsys) -> None:
    show_source(_plain, _plain)
    one = "def _plain(a):\n    return a  # no docstring at all\n"
    assert capsys.readouterr().out == one + "\n" + one


def test_show_source_rejects_what_has_no_source() -> None:
    with pytest.raises(TypeError, match="objs must be functions, methods or classes, got int"):
        show_source(3)
    with pytest.raises(TypeError, match="at least one"):
        show_source()


def _draw_with_chinese_labels() -> list[str]:
    """Draw a figure whose title, axis labels and legend are Chinese; return the warnings."""
    import warnings

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots()
    try:
        ax.plot([0, 1], [1, 0], label="训练损失")
        ax.set(title="裁剪前后的梯度范数", xlabel="步", ylabel="学习率（灰色）")
        ax.legend()
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            fig.canvas.draw()
    finally:
        plt.close(fig)
    return [str(w.message) for w in caught]


def test_chinese_figure_labels_render_without_missing_glyphs() -> None:
    """Reference: matplotlib's own "Glyph ... missing from font(s)" warning, which it raises for
    every character no font of the family list can draw (a tofu box in the image). The control
    run with DejaVu Sans alone shows that the check can fail."""
    import matplotlib as mpl

    with mpl.rc_context():
        mpl.rcParams["font.family"] = ["DejaVu Sans"]
        without_cjk = _draw_with_chinese_labels()
    assert any("missing from font" in w for w in without_cjk), without_cjk
    assert cjk_font_path() is not None, "no CJK font: is mplfonts (requirements.txt) installed?"
    with mpl.rc_context():
        use_book_style()
        missing = [w for w in _draw_with_chinese_labels() if "missing from font" in w]
    assert missing == []


def test_tr_follows_the_notebook_language(monkeypatch, tmp_path) -> None:
    """Reference: the language written by hand into a notebook's metadata and into
    ``BOOK_LANGUAGE``; code cells stay identical, only ``tr``'s choice changes."""
    monkeypatch.delenv("BOOK_LANGUAGE", raising=False)
    monkeypatch.delenv("JPY_SESSION_NAME", raising=False)
    (tmp_path / "chapter.ipynb").write_text(
        json.dumps({"metadata": {"book": {"language": "zh"}}, "cells": []}), encoding="utf-8"
    )
    monkeypatch.chdir(tmp_path)
    notebook_language.cache_clear()
    try:
        assert tr("step", "步") == "步"
        monkeypatch.setenv("BOOK_LANGUAGE", "en")
        notebook_language.cache_clear()
        assert tr("step", "步") == "step"
        monkeypatch.setenv("BOOK_LANGUAGE", "fr")
        notebook_language.cache_clear()
        with pytest.raises(ValueError, match="BOOK_LANGUAGE"):
            tr("step", "步")
    finally:
        notebook_language.cache_clear()
