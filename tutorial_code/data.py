"""Small, generated training data for the book's experiments.

Nothing here is downloaded or copied from elsewhere: :func:`tiny_stories` writes short
children's-story-like English from a hand-written grammar, deterministically from a seed,
so that every reader trains on exactly the same text without network access.

:class:`CharTokenizer` maps characters to ids (the simplest tokenizer; chapter 5 builds
BPE) and :func:`random_batch` samples next-token-prediction windows from a 1-D id tensor.
"""

from __future__ import annotations

import random
import re
from collections.abc import Sequence

import torch

__all__ = ["CharTokenizer", "known_word_fraction", "random_batch", "tiny_stories"]

_NAMES = ["Mia", "Leo", "Ana", "Sam", "Tom", "Lily", "Ben", "Zoe", "Max", "Ivy"]
_ANIMALS = ["cat", "dog", "fox", "bird", "frog", "duck", "bear", "mouse"]
_OBJECTS = ["ball", "kite", "box", "cake", "book", "hat", "boat", "apple", "drum", "map"]
_ADJECTIVES = ["red", "blue", "big", "small", "old", "new", "green", "yellow", "soft", "shiny"]
_PLACES = ["park", "garden", "river", "hill", "school", "market", "beach", "forest", "lake"]
_FEELINGS = ["happy", "sad", "tired", "excited", "calm", "proud", "surprised"]
_TIMES = ["In the morning", "One day", "After lunch", "At night", "On Sunday", "Later"]
_COUNT_WORDS = ["one", "two", "three", "four", "five", "six"]


def _story(rng: random.Random) -> str:
    name, friend = rng.sample(_NAMES, 2)
    pronoun = "She" if name in {"Mia", "Ana", "Lily", "Zoe", "Ivy"} else "He"
    animal = rng.choice(_ANIMALS)
    obj, other = rng.sample(_OBJECTS, 2)
    adj = rng.choice(_ADJECTIVES)
    place = rng.choice(_PLACES)
    feeling = rng.choice(_FEELINGS)
    n = rng.randrange(len(_COUNT_WORDS))
    sentences = [
        f"{rng.choice(_TIMES)}, {name} finds a {adj} {obj} near the {place}.",
        rng.choice(
            [
                f"{pronoun} shows the {obj} to {friend}.",
                f"{pronoun} gives the {obj} to a little {animal}.",
                f"{pronoun} puts the {obj} in a {other}.",
            ]
        ),
        rng.choice(
            [
                f"{friend} has {_COUNT_WORDS[n]} {other}{'' if n == 0 else 's'}.",
                f"The {animal} is {feeling}.",
                f"They walk to the {rng.choice(_PLACES)} together.",
            ]
        ),
        f"{name} feels {feeling}.",
    ]
    return " ".join(sentences)


def tiny_stories(n_stories: int, *, seed: int = 0) -> str:
    """Return ``n_stories`` generated four-sentence stories, one per line.

    The same ``(n_stories, seed)`` always gives the same text, on every machine.
    """
    if isinstance(n_stories, bool) or not isinstance(n_stories, int) or n_stories < 1:
        raise ValueError(f"n_stories must be a positive int, got {n_stories!r}")
    rng = random.Random(seed)
    return "\n".join(_story(rng) for _ in range(n_stories)) + "\n"


class CharTokenizer:
    """Character-level tokenizer: one id per distinct character, in sorted order.

    ``encode(text) -> list[int]`` and ``decode(ids) -> str`` follow tiktoken's names.
    """

    def __init__(self, chars: Sequence[str]) -> None:
        if len(set(chars)) != len(chars) or any(len(c) != 1 for c in chars):
            raise ValueError("chars must be distinct single characters")
        self.chars = list(chars)
        self._to_id = {c: i for i, c in enumerate(self.chars)}

    @classmethod
    def from_text(cls, text: str) -> CharTokenizer:
        """The tokenizer whose vocabulary is every character that occurs in ``text``."""
        if not isinstance(text, str) or not text:
            raise ValueError("text must be a non-empty str")
        return cls(sorted(set(text)))

    @property
    def vocab_size(self) -> int:
        return len(self.chars)

    def encode(self, text: str) -> list[int]:
        if not isinstance(text, str):
            raise TypeError(f"text must be a str, got {type(text).__name__}")
        try:
            return [self._to_id[c] for c in text]
        except KeyError as err:
            raise ValueError(
                f"character {err.args[0]!r} is not in the vocabulary of {self.vocab_size} "
                "characters"
            ) from None

    def decode(self, ids: Sequence[int] | torch.Tensor) -> str:
        if isinstance(ids, torch.Tensor):
            ids = ids.tolist()
        out = []
        for i in ids:
            if not 0 <= i < self.vocab_size:
                raise ValueError(f"id {i} is outside the vocabulary [0, {self.vocab_size})")
            out.append(self.chars[i])
        return "".join(out)


def random_batch(
    ids: torch.Tensor,
    *,
    batch_size: int,
    context_length: int,
    generator: torch.Generator | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Sample ``batch_size`` random windows for next-token prediction.

    Args:
        ids: 1-D int64 tensor of token ids (the whole corpus).
        batch_size: number of windows ``B``.
        context_length: window length ``T``.
        generator: makes the sampled offsets reproducible.

    Returns:
        ``(inputs, targets)``, both ``(B, T)``, with ``targets[:, t] == inputs[:, t + 1]``
        inside a window (the targets are the inputs shifted left by one token).
    """
    if ids.dim() != 1:
        raise ValueError(f"ids must be 1-D, got shape {tuple(ids.shape)}")
    if batch_size < 1 or context_length < 1:
        raise ValueError(
            f"batch_size and context_length must be >= 1, got {batch_size} and {context_length}"
        )
    if ids.numel() < context_length + 1:
        raise ValueError(
            f"ids has {ids.numel()} tokens; need at least context_length + 1 = "
            f"{context_length + 1}"
        )
    starts = torch.randint(0, ids.numel() - context_length, (batch_size,), generator=generator)
    offsets = torch.arange(context_length)
    inputs = ids[starts[:, None] + offsets]
    targets = ids[starts[:, None] + offsets + 1]
    return inputs, targets


def known_word_fraction(text: str, reference: str) -> float:
    """Fraction of the words of ``text`` that also occur in ``reference``.

    Words are maximal runs of ASCII letters, compared case-sensitively. A crude but robust
    measure of whether a character-level model has learned to spell: random characters
    score near 0, a model that has learned the corpus's words scores near 1.
    """
    words = re.findall(r"[A-Za-z]+", text)
    if not words:
        return 0.0
    vocabulary = set(re.findall(r"[A-Za-z]+", reference))
    return sum(w in vocabulary for w in words) / len(words)
