"""Generated Chinese prose (chapters 1 and 5).

Written by a hand-made grammar from hand-made word lists (``words/zh.txt``); nothing is copied
from existing text. See :func:`chinese_text`.
"""

from __future__ import annotations

import functools
import random

from tutorial_code.corpora._common import Zipf, join_paragraphs, load_words

__all__ = ["chinese_text"]

_WORDS = load_words("zh")

_ZH_SURNAMES = "".join(_WORDS["surnames"])
_ZH_GIVEN = "".join(_WORDS["given"])
_ZH_MEASURES = dict(entry.split(":") for entry in _WORDS["measures"])
_ZH_DEGREES = _WORDS["degrees"]
_ZH_NUMBERS = _WORDS["numbers"]
_ZH_SAY = _WORDS["say"]
_ZH_OPINIONS = _WORDS["opinions"]


class _ChineseGrammar:
    def __init__(self) -> None:
        made_up = random.Random(54321)  # the invented names are part of the grammar, not the seed
        names = sorted(
            {
                made_up.choice(_ZH_SURNAMES)
                + "".join(made_up.sample(_ZH_GIVEN, made_up.randint(1, 2)))
                for _ in range(6000)
            }
        )
        made_up.shuffle(names)
        self.names = Zipf(names, s=0.8)
        self.people = Zipf(_WORDS["people"], s=0.8)
        self.times = Zipf(_WORDS["times"], s=0.8)
        self.places = Zipf(_WORDS["places"], s=0.8)
        self.actions = Zipf(_WORDS["actions"], s=0.8)
        self.things = Zipf(_WORDS["things"], s=0.8)
        self.adjectives = Zipf(_WORDS["adjectives"], s=0.8)

    def counted(self, rng: random.Random) -> str:
        thing = rng.choice(list(_ZH_MEASURES))
        if rng.random() < 0.2:
            return f"{rng.randint(2, 99)}{_ZH_MEASURES[thing]}{thing}"
        return f"{rng.choice(_ZH_NUMBERS)}{_ZH_MEASURES[thing]}{thing}"

    def person(self, rng: random.Random) -> str:
        return self.names(rng) if rng.random() < 0.35 else self.people(rng)

    def clause(self, rng: random.Random) -> str:
        who = self.person(rng)
        roll = rng.random()
        if roll < 0.25:
            return f"{who}在{self.places(rng)}{self.actions(rng)}"
        if roll < 0.4:
            return f"{who}觉得{self.things(rng)}{rng.choice(_ZH_DEGREES)}{self.adjectives(rng)}"
        if roll < 0.55:
            return f"{who}{rng.choice(['买了', '带来了', '借了', '送给朋友'])}{self.counted(rng)}"
        if roll < 0.65:
            return f"{who}{rng.choice(['想去', '要去', '打算去', '还没去过'])}{self.places(rng)}"
        if roll < 0.75:
            return f"{who}{rng.choice(_ZH_DEGREES)}{self.adjectives(rng)}"
        if roll < 0.85:
            return f"{who}{rng.choice(['正在', '喜欢', '不想', '每天都'])}{self.actions(rng)}"
        verb = rng.choice(["把", "将"])
        thing = self.things(rng)
        return f"{who}{verb}{thing}{rng.choice(['放在', '留在', '忘在'])}{self.places(rng)}了"

    def sentence(self, rng: random.Random) -> str:
        roll = rng.random()
        if roll < 0.25:
            return f"{self.times(rng)}，{self.clause(rng)}。"
        if roll < 0.4:
            return f"因为{self.clause(rng)}，所以{self.clause(rng)}。"
        if roll < 0.5:
            return f"虽然{self.clause(rng)}，但是{self.clause(rng)}。"
        if roll < 0.58:
            return f"如果{self.clause(rng)}，{self.clause(rng)}就{self.adjectives(rng)}了。"
        if roll < 0.68:
            speaker = f"{self.person(rng)}{rng.choice(_ZH_SAY)}"
            return f"{speaker}：“{self.clause(rng)}{rng.choice(['。', '！', '吗？', '吧。'])}”"
        if roll < 0.76:
            return f"{self.clause(rng)}吗？"
        if roll < 0.84:
            year, month, day = rng.randint(1950, 2024), rng.randint(1, 12), rng.randint(1, 28)
            place = f"{self.places(rng)}{rng.choice(['来了', '有'])}{rng.randint(2, 5000)}人"
            change = f"比{rng.choice(['去年', '上个月', '以前'])}多了{rng.randint(1, 60)}%"
            return f"{year}年{month}月{day}日，{place}，{change}。"
        if roll < 0.9:
            items = "、".join(self.things(rng) for _ in range(rng.randint(2, 4)))
            return f"{self.clause(rng)}，还谈到了{items}。"
        if roll < 0.95:
            return f"{rng.choice(_ZH_OPINIONS)}{self.clause(rng)}。"
        return f"{self.clause(rng)}，{self.clause(rng)}。"

    def paragraph(self, rng: random.Random) -> str:
        return "".join(self.sentence(rng) for _ in range(rng.randint(2, 7)))


@functools.lru_cache(maxsize=1)
def _chinese_grammar() -> _ChineseGrammar:
    return _ChineseGrammar()


def chinese_text(n_chars: int, *, seed: int = 0) -> str:
    """Return exactly ``n_chars`` characters of generated Chinese prose, one paragraph a line.

    A hand-written grammar over hand-made word lists (people and invented full names, times,
    places, actions, things with their measure words, adjectives with degree adverbs) with
    Zipf-like frequencies, joined by 因为…所以…, 虽然…但是…, 如果…就…, dialogue in “…” and dates and
    numbers in Arabic digits, with full-width punctuation. Most characters are 3 bytes in
    UTF-8. The same ``(n_chars, seed)`` always gives the same text.
    """
    return join_paragraphs(_chinese_grammar().paragraph, n_chars, seed=seed, separator="\n")
