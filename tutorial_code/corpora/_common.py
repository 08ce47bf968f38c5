"""What the corpus generators share: word lists shipped as package data, Zipf sampling."""

from __future__ import annotations

import functools
import random
from collections.abc import Callable, Sequence
from importlib import resources

from tutorial_code.checks import check_int

__all__ = ["Zipf", "check_n_chars", "join_paragraphs", "load_words"]


@functools.cache
def load_words(language: str) -> dict[str, list[str]]:
    """The word lists of ``words/<language>.txt``: ``{section: [entries in file order]}``.

    The file has ``[section]`` header lines followed by whitespace-separated entries; lines
    starting with ``#`` are comments.
    """
    text = resources.files("tutorial_code.corpora").joinpath("words", f"{language}.txt")
    sections: dict[str, list[str]] = {}
    current: list[str] | None = None
    for line in text.read_text(encoding="utf-8").splitlines():
        if line.startswith("#") or not line.strip():
            continue
        if line.startswith("[") and line.endswith("]"):
            current = sections.setdefault(line[1:-1], [])
        elif current is None:
            raise ValueError(f"words/{language}.txt: entries before the first [section]")
        else:
            current.extend(line.split())
    return sections


class Zipf:
    """Draw items with probability proportional to 1 / rank**s (rank = position in the list)."""

    def __init__(self, items: Sequence[str], s: float = 1.0) -> None:
        self.items = list(items)
        self.cum: list[float] = []
        total = 0.0
        for rank in range(len(self.items)):
            total += 1.0 / (rank + 1) ** s
            self.cum.append(total)

    def __call__(self, rng: random.Random) -> str:
        return rng.choices(self.items, cum_weights=self.cum)[0]


def check_n_chars(n_chars: int) -> int:
    return check_int("n_chars", n_chars, low=1)


def join_paragraphs(
    paragraph: Callable[[random.Random], str], n_chars: int, *, seed: int, separator: str
) -> str:
    """Exactly ``n_chars`` characters of paragraphs drawn with ``random.Random(seed)``.

    Paragraphs are generated until their joined length reaches ``n_chars``, then the text is
    cut there (possibly mid-word); ``separator`` goes between paragraphs, none after the last.
    """
    check_n_chars(n_chars)
    rng = random.Random(seed)
    parts: list[str] = []
    length = -len(separator)
    while length < n_chars:
        text = paragraph(rng)
        parts.append(text)
        length += len(text) + len(separator)
    return separator.join(parts)[:n_chars]
