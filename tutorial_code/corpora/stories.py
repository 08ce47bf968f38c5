"""Short children's-story-like English from a small hand-written grammar (chapter 0).

Always the same text for the same seed, on every machine. See :func:`tiny_stories`.
"""

from __future__ import annotations

import random

from tutorial_code.checks import check_int

__all__ = ["tiny_stories"]

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
    check_int("n_stories", n_stories, low=1)
    rng = random.Random(seed)
    return "\n".join(_story(rng) for _ in range(n_stories)) + "\n"
