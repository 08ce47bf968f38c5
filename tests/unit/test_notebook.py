"""tutorial_code.notebook: the helpers the chapter notebooks share."""

from __future__ import annotations

import pytest

from tutorial_code.notebook import show_source


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
