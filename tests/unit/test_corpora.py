"""tutorial_code.corpora: generated text is exact in length, deterministic and pinned.

References: SHA-256 digests of the texts as first generated (a change to a grammar or a word
list would silently change every chapter's numbers, so it must show up here), and the word
lists' own files.
"""

from __future__ import annotations

import hashlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tutorial_code.corpora import chinese_text, english_text, tiny_stories
from tutorial_code.corpora._common import load_words

PINNED = {
    "tiny_stories": "06aa76c4c8793c2c8b4883e8189754007e6ddd8df0f127c5497718ca2c15a82c",
    "english_text": "2194cf095e93642ebefb662a5c72318b912dad71720a193eac1226332857f6c1",
    "chinese_text": "1e6047d33e3c026c15e513667cc5fc9fbf87f5c76455872548444466e06fd914",
}


def digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def test_texts_are_pinned() -> None:
    assert digest(tiny_stories(50, seed=0)) == PINNED["tiny_stories"]
    assert digest(english_text(20_000, seed=0)) == PINNED["english_text"]
    assert digest(chinese_text(10_000, seed=0)) == PINNED["chinese_text"]


@settings(max_examples=25, deadline=None)
@given(n=st.integers(min_value=1, max_value=3_000), seed=st.integers(0, 5))
def test_generated_prose_has_exactly_n_chars(n: int, seed: int) -> None:
    assert len(english_text(n, seed=seed)) == n
    assert len(chinese_text(n, seed=seed)) == n


def test_tiny_stories_one_per_line_and_seeded() -> None:
    text = tiny_stories(10, seed=3)
    assert text.count("\n") == 10 and text.endswith("\n")
    assert all(line.count(".") == 4 for line in text.splitlines())
    assert text == tiny_stories(10, seed=3) != tiny_stories(10, seed=4)


def test_word_lists_load_from_package_data() -> None:
    en, zh = load_words("en"), load_words("zh")
    assert set(en) == {"nouns", "verbs", "adjectives", "derivable", "adverbs", "names", "places"}
    assert en["nouns"][:3] == ["time", "year", "way"]
    assert all(v.endswith((":t", ":i")) for v in en["verbs"])
    assert zh["people"][:2] == ["我", "你"] and "学校" in zh["places"]


@pytest.mark.parametrize("generator", [english_text, chinese_text])
def test_bad_lengths_raise(generator) -> None:
    with pytest.raises(ValueError, match="n_chars must be an int >= 1, got 0"):
        generator(0)
    with pytest.raises(TypeError, match="n_chars must be an int"):
        generator(10.0)
    with pytest.raises(ValueError, match="n_stories must be an int >= 1"):
        tiny_stories(0)
