"""Chinese prose must not be hard-wrapped between two Chinese characters.

A line break inside a paragraph becomes a space in the browser, so "位置\\n嵌入" renders as
"位置 嵌入". Chinese paragraphs are written on one line each.
"""

from __future__ import annotations

import re

import pytest

from tests.docs.test_glossary import chinese_texts

CJK = r"[\u4e00-\u9fff\u3000-\u303f\uff00-\uffef]"
SOFT_BREAK = re.compile(rf"{CJK}\n[ \t]*{CJK}")


@pytest.mark.parametrize(("name", "text"), chinese_texts(), ids=[n for n, _ in chinese_texts()])
def test_no_line_break_between_chinese_characters(name: str, text: str) -> None:
    match = SOFT_BREAK.search(text)
    assert match is None, f"{name}: line break inside Chinese text at {match.group(0)!r}"
