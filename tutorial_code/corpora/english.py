"""Generated English prose with a Zipf-like mix of word frequencies (chapters 1 and 5).

Written by a hand-made grammar from hand-made word lists (``words/en.txt``); nothing is copied
from existing text. See :func:`english_text`.
"""

from __future__ import annotations

import functools
import random

from tutorial_code.corpora._common import Zipf, join_paragraphs, load_words

__all__ = ["english_text"]

_WORDS = load_words("en")

_EN_IRREGULAR_PLURALS = {
    "man": "men",
    "woman": "women",
    "child": "children",
    "person": "people",
    "foot": "feet",
    "life": "lives",
    "wife": "wives",
    "mouse": "mice",
    "tooth": "teeth",
    "leaf": "leaves",
    "kid": "kids",
    "people": "people",
    "police": "police",
    "news": "news",
    "data": "data",
    "information": "information",
    "health": "health",
    "music": "music",
    "money": "money",
    "education": "education",
    "evidence": "evidence",
    "air": "air",
    "oil": "oil",
    "others": "others",
    "research": "research",
    "technology": "technologies",
    "attention": "attention",
    "hair": "hair",
    "weather": "weather",
    "bread": "bread",
    "coffee": "coffee",
    "breakfast": "breakfasts",
    "lunch": "lunches",
    "love": "love",
    "science": "sciences",
    "support": "support",
    "care": "care",
    "land": "lands",
}

# (base, transitive?) ; irregular past forms below.
_EN_IRREGULAR_PAST = {
    "say": "said",
    "get": "got",
    "make": "made",
    "go": "went",
    "know": "knew",
    "take": "took",
    "see": "saw",
    "come": "came",
    "think": "thought",
    "give": "gave",
    "find": "found",
    "tell": "told",
    "feel": "felt",
    "leave": "left",
    "keep": "kept",
    "let": "let",
    "begin": "began",
    "show": "showed",
    "hear": "heard",
    "run": "ran",
    "hold": "held",
    "bring": "brought",
    "write": "wrote",
    "sit": "sat",
    "stand": "stood",
    "lose": "lost",
    "pay": "paid",
    "meet": "met",
    "lead": "led",
    "understand": "understood",
    "speak": "spoke",
    "read": "read",
    "spend": "spent",
    "grow": "grew",
    "win": "won",
    "buy": "bought",
    "send": "sent",
    "build": "built",
    "fall": "fell",
    "cut": "cut",
    "sell": "sold",
    "break": "broke",
    "hit": "hit",
    "eat": "ate",
    "catch": "caught",
    "draw": "drew",
    "choose": "chose",
    "drive": "drove",
    "sing": "sang",
    "swim": "swam",
    "be": "was",
    "hang": "hung",
    "ring": "rang",
    "sleep": "slept",
    "steal": "stole",
    "teach": "taught",
    "tear": "tore",
}
_EN_IRREGULAR_PARTICIPLE = {
    "know": "known",
    "take": "taken",
    "see": "seen",
    "give": "given",
    "begin": "begun",
    "show": "shown",
    "write": "written",
    "speak": "spoken",
    "grow": "grown",
    "fall": "fallen",
    "break": "broken",
    "eat": "eaten",
    "draw": "drawn",
    "choose": "chosen",
    "drive": "driven",
    "sing": "sung",
    "swim": "swum",
    "go": "gone",
    "come": "come",
    "run": "run",
    "be": "been",
    "ring": "rung",
    "steal": "stolen",
    "tear": "torn",
}
_EN_DOUBLE_FINAL = {
    "stop",
    "plan",
    "run",
    "sit",
    "begin",
    "win",
    "cut",
    "hit",
    "swim",
    "get",
    "let",
    "drop",
    "wrap",
}

_EN_ONSETS = "b br c ch d f g gr h k l m n p r s st t th v w".split()
_EN_VOWELS = ["a", "e", "i", "o", "u", "ai", "ea", "ou", "y"]
_EN_CODAS = ["", "", "n", "r", "l", "s", "t", "m", "nd", "rt", "ck", "ld", "ss", "wn"]
_EN_TOWN_ENDINGS = ["ton", "ville", "field", "burg", "ford", "wood", "port", "stead", "haven"]

_EN_PREPOSITIONS = [
    "in",
    "on",
    "at",
    "near",
    "behind",
    "under",
    "across",
    "through",
    "into",
    "from",
    "with",
    "without",
    "after",
    "before",
    "during",
    "around",
    "toward",
    "beside",
    "over",
    "along",
]
_EN_TIMES = [
    "Last week",
    "Yesterday",
    "This morning",
    "On Monday",
    "In the spring",
    "Two years ago",
    "At first",
    "Later that day",
    "By the evening",
    "In the end",
    "For a while",
    "Today",
    "On Friday night",
    "Every summer",
    "After dinner",
    "Before the meeting",
    "Meanwhile",
]
_EN_CONJUNCTIONS = "because when although while after before since until if".split()
_EN_SAY_VERBS = ["said", "asked", "replied", "added", "explained", "shouted", "whispered", "wrote"]
_EN_OPINIONS = [
    "I think",
    "I don't think",
    "It's clear that",
    "We know that",
    "They'll say that",
    "You can't prove that",
    "She's sure that",
    "He didn't believe that",
    "It isn't true that",
    "We've heard that",
    "I'm afraid that",
    "Nobody doubts that",
    "Most people agree that",
]
_EN_UNITS = "percent dollars miles people hours days meters kilograms votes".split()
_EN_TITLES = ["Mr.", "Mrs.", "Ms.", "Dr.", "Professor", "Captain", "Judge"]
_EN_PRONOUNS_3SG = ["he", "she", "it"]


def _en_plural(noun: str) -> str:
    if noun in _EN_IRREGULAR_PLURALS:
        return _EN_IRREGULAR_PLURALS[noun]
    if noun.endswith(("s", "x", "z", "ch", "sh")):
        return noun + "es"
    if noun.endswith("y") and noun[-2] not in "aeiou":
        return noun[:-1] + "ies"
    return noun + "s"


def _en_third_person(verb: str) -> str:
    special = {"have": "has", "do": "does", "go": "goes", "be": "is"}
    if verb in special:
        return special[verb]
    return _en_plural(verb) if verb not in _EN_IRREGULAR_PLURALS else verb + "s"


def _en_past(verb: str) -> str:
    if verb in _EN_IRREGULAR_PAST:
        return _EN_IRREGULAR_PAST[verb]
    if verb.endswith("e"):
        return verb + "d"
    if verb.endswith("y") and verb[-2] not in "aeiou":
        return verb[:-1] + "ied"
    if verb in _EN_DOUBLE_FINAL:
        return verb + verb[-1] + "ed"
    return verb + "ed"


def _en_participle(verb: str) -> str:
    return _EN_IRREGULAR_PARTICIPLE.get(verb) or _en_past(verb)


def _en_gerund(verb: str) -> str:
    if verb.endswith("ie"):
        return verb[:-2] + "ying"
    if verb.endswith("e") and not verb.endswith("ee") and verb != "be":
        return verb[:-1] + "ing"
    if verb in _EN_DOUBLE_FINAL:
        return verb + verb[-1] + "ing"
    return verb + "ing"


def _en_stem_y(word: str) -> str:
    return word[:-1] + "i" if word.endswith("y") else word


def _en_ness(adjective: str) -> str:
    return _en_stem_y(adjective) + "ness"


def _en_ly(adjective: str) -> str:
    if adjective.endswith("le"):
        return adjective[:-1] + "y"
    return _en_stem_y(adjective) + "ly"


class _EnglishGrammar:
    def __init__(self) -> None:
        self.nouns = Zipf(_WORDS["nouns"], s=0.9)
        verbs = [entry.split(":") for entry in _WORDS["verbs"]]
        self.transitive = Zipf([v for v, kind in verbs if kind == "t"], s=0.9)
        self.intransitive = Zipf([v for v, kind in verbs if kind == "i"], s=0.9)
        self.adjectives = Zipf(_WORDS["adjectives"], s=0.9)
        self.derivable = Zipf(_WORDS["derivable"], s=0.7)
        self.adverbs = Zipf(_WORDS["adverbs"])
        self.names = Zipf(_WORDS["names"], s=0.8)
        self.places = Zipf(_WORDS["places"], s=0.8)
        made_up = random.Random(12345)  # the invented names are part of the grammar, not the seed
        surnames = sorted({self._invent(made_up) for _ in range(20000)})
        made_up.shuffle(surnames)
        self.surnames = Zipf(surnames, s=0.8)
        self.towns = Zipf(
            [made_up.choice(surnames) + made_up.choice(_EN_TOWN_ENDINGS) for _ in range(5000)],
            s=0.8,
        )

    @staticmethod
    def _invent(rng: random.Random) -> str:
        syllables = [
            rng.choice(_EN_ONSETS) + rng.choice(_EN_VOWELS) + rng.choice(_EN_CODAS)
            for _ in range(rng.randint(2, 3))
        ]
        return "".join(syllables).capitalize()

    def person(self, rng: random.Random) -> str:
        roll = rng.random()
        if roll < 0.55:
            return self.names(rng)
        if roll < 0.8:
            return f"{rng.choice(_EN_TITLES)} {self.surnames(rng)}"
        return f"{self.names(rng)} {self.surnames(rng)}"

    def place(self, rng: random.Random) -> str:
        return self.places(rng) if rng.random() < 0.6 else self.towns(rng).capitalize()

    def noun(self, rng: random.Random) -> str:
        roll = rng.random()
        if roll < 0.06:
            return _en_ness(self.derivable(rng))
        if roll < 0.09:
            return _en_gerund(self.transitive(rng))
        return self.nouns(rng)

    def adjective(self, rng: random.Random) -> str:
        roll = rng.random()
        if roll < 0.05:
            return "un" + self.derivable(rng)
        if roll < 0.1:
            return rng.choice(["very ", "quite ", "rather ", "so ", "too "]) + self.adjectives(rng)
        return self.adjectives(rng)

    def adverb(self, rng: random.Random) -> str:
        return _en_ly(self.derivable(rng)) if rng.random() < 0.5 else self.adverbs(rng)

    def noun_phrase(self, rng: random.Random, *, subject: bool = False) -> tuple[str, bool]:
        """A noun phrase and whether it is third-person singular."""
        roll = rng.random()
        if roll < 0.18:
            return self.person(rng), True
        if roll < 0.28 and subject:
            pronoun = rng.choice(["I", "you", "we", "they", "he", "she", "it"])
            return pronoun, pronoun in _EN_PRONOUNS_3SG
        noun = self.noun(rng)
        plural = rng.random() < 0.3 and noun not in _EN_IRREGULAR_PLURALS.values()
        if plural:
            noun = _en_plural(noun)
        if rng.random() < 0.35:
            noun = f"{self.adjective(rng)} {noun}"
        if plural:
            det = rng.choice("the the some many these those our their two few".split())
        else:
            det = rng.choice("the the the a a this that his her my every".split())
            if det == "a" and noun[0] in "aeiou":
                det = "an"
        phrase = f"{det} {noun}"
        if rng.random() < 0.12:
            if rng.random() < 0.3:
                phrase += f" of {self.person(rng)}"
            else:
                phrase += f" of the {self.noun(rng)}"
        elif rng.random() < 0.06:
            phrase += f" in {self.place(rng)}"
        return phrase, not plural

    def _be(self, *, singular: bool, past: bool, subject: str) -> str:
        if past:
            return "was" if singular or subject == "I" else "were"
        return "am" if subject == "I" else "is" if singular else "are"

    def verb_phrase(self, rng: random.Random, *, singular: bool, past: bool, subject: str) -> str:
        roll = rng.random()
        if roll < 0.12:
            be = self._be(singular=singular, past=past, subject=subject)
            if be != "am" and rng.random() < 0.15:
                be += "n't"
            return f"{be} {self.adjective(rng)}"
        if roll < 0.22:
            modal = rng.choice("can will should might could would must can't won't".split())
            return f"{modal} {self.transitive(rng)} {self.noun_phrase(rng)[0]}"
        if roll < 0.30:
            be = self._be(singular=singular, past=past, subject=subject)
            return f"{be} {_en_gerund(self.transitive(rng))} {self.noun_phrase(rng)[0]}"
        if roll < 0.36:
            aux = "had" if past else ("has" if singular else "have")
            return f"{aux} {_en_participle(self.transitive(rng))} {self.noun_phrase(rng)[0]}"
        if roll < 0.6:
            verb = self.intransitive(rng)
            form = _en_past(verb) if past else (_en_third_person(verb) if singular else verb)
            tail = ""
            if rng.random() < 0.6:
                tail = f" {rng.choice(_EN_PREPOSITIONS)} {self.noun_phrase(rng)[0]}"
            return form + tail
        verb = self.transitive(rng)
        form = _en_past(verb) if past else (_en_third_person(verb) if singular else verb)
        phrase = f"{form} {self.noun_phrase(rng)[0]}"
        if rng.random() < 0.3:
            phrase += f" {rng.choice(_EN_PREPOSITIONS)} {self.noun_phrase(rng)[0]}"
        return phrase

    def clause(self, rng: random.Random, *, past: bool) -> str:
        subject, singular = self.noun_phrase(rng, subject=True)
        text = f"{subject} {self.verb_phrase(rng, singular=singular, past=past, subject=subject)}"
        if rng.random() < 0.15:
            text += f" {self.adverb(rng)}"
        return text

    def number(self, rng: random.Random) -> str:
        roll = rng.random()
        if roll < 0.3:
            return str(rng.randint(1, 99))
        if roll < 0.5:
            return f"{rng.randint(100, 999)}"
        if roll < 0.7:
            return f"{rng.randint(1000, 999_999):,}"
        if roll < 0.85:
            return f"{rng.randint(0, 99)}.{rng.randint(0, 99):02d}"
        return str(rng.randint(10, 1000))

    def sentence(self, rng: random.Random, *, past: bool) -> str:
        roll = rng.random()
        if roll < 0.30:
            body = self.clause(rng, past=past)
        elif roll < 0.42:
            body = f"{rng.choice(_EN_TIMES)}, {self.clause(rng, past=past)}"
        elif roll < 0.54:
            first = self.clause(rng, past=past)
            body = f"{first} {rng.choice(_EN_CONJUNCTIONS)} {self.clause(rng, past=past)}"
        elif roll < 0.62:
            first = self.clause(rng, past=past)
            body = f"{first}, {rng.choice(['and', 'but', 'so'])} {self.clause(rng, past=past)}"
        elif roll < 0.72:
            quote = self.clause(rng, past=False)
            quote = quote[0].upper() + quote[1:]
            speaker = self.person(rng)
            if rng.random() < 0.5:
                return f'"{quote}," {speaker} {rng.choice(_EN_SAY_VERBS)}.'
            return f'{speaker} {rng.choice(_EN_SAY_VERBS)}, "{quote}!"'
        elif roll < 0.80:
            body = f"{rng.choice(_EN_OPINIONS)} {self.clause(rng, past=past)}"
        elif roll < 0.88:
            year = rng.randint(1890, 2024)
            unit = rng.choice(_EN_UNITS)
            place = self.place(rng)
            body = rng.choice(
                [
                    f"In {year}, {place} reported {self.number(rng)} {unit}",
                    f"The {self.noun(rng)} in {place} cost ${self.number(rng)} in {year}",
                    f"About {rng.randint(2, 98)}% of the {_en_plural(self.nouns(rng))} in {place} "
                    f"were {self.adjective(rng)}",
                    f"By {year} the number had grown to {self.number(rng)} {unit}",
                    f"{self.person(rng)}'s {self.noun(rng)} took {self.number(rng)} {unit} "
                    f"from {place} to {self.place(rng)}",
                    f"On {rng.randint(1, 28)}/{rng.randint(1, 12)}/{year} "
                    f"({rng.randint(1, 12)}:{rng.randint(0, 59):02d} a.m.) "
                    f"{self.clause(rng, past=True)}",
                ]
            )
        elif roll < 0.94:
            items = [self.noun_phrase(rng)[0] for _ in range(rng.randint(3, 5))]
            body = f"{self.clause(rng, past=past)}: {', '.join(items[:-1])}, and {items[-1]}"
        else:
            subject, singular = self.noun_phrase(rng, subject=True)
            aux = "did" if past else ("does" if singular else "do")
            wh = rng.choice(["Why", "Where", "How", "When", "What"])
            return f"{wh} {aux} {subject} {self.transitive(rng)} {self.noun_phrase(rng)[0]}?"
        body = body[0].upper() + body[1:]
        return body + ("." if rng.random() < 0.93 else "!")

    def paragraph(self, rng: random.Random) -> str:
        past = rng.random() < 0.5
        return " ".join(self.sentence(rng, past=past) for _ in range(rng.randint(2, 8)))


@functools.lru_cache(maxsize=1)
def _english_grammar() -> _EnglishGrammar:
    """The grammar holds no state that generation changes, so one instance serves every call."""
    return _EnglishGrammar()


def english_text(n_chars: int, *, seed: int = 0) -> str:
    """Return exactly ``n_chars`` characters of generated English prose (ASCII).

    Paragraphs of 2-8 sentences, separated by blank lines, from a hand-written grammar:
    narrative and expository clauses, dialogue in quotes, contractions ("don't", "it's"),
    possessives, lists, questions, dates, times, prices, percentages and numbers with
    thousands separators. Content words come from hand-made lists with Zipf-like
    frequencies (probability proportional to 1 / rank**s, s from 0.7 to 1.0) and are inflected
    and derived by rule (plurals, -s, -ed, -ing, -ness, -ly, un-); invented surnames and town
    names give the long tail of rare words that real text has. Word frequencies and shared
    suffixes therefore resemble real English enough for BPE to learn meaningful merges,
    although the sentences make little sense. The text is cut at exactly ``n_chars``
    (possibly mid-word). The same ``(n_chars, seed)`` always gives the same text.
    """
    return join_paragraphs(_english_grammar().paragraph, n_chars, seed=seed, separator="\n\n")
