"""Small, generated training data for the book's experiments.

Nothing here is downloaded or copied from elsewhere: :func:`tiny_stories` writes short
children's-story-like English from a hand-written grammar, deterministically from a seed,
so that every reader trains on exactly the same text without network access.
:func:`english_text` and :func:`chinese_text` write larger, more varied prose (Zipf-like word
frequencies) for the tokenizer chapter and its benchmark.

:class:`CharTokenizer` maps characters to ids (the simplest tokenizer; chapter 5 builds
BPE) and :func:`random_batch` samples next-token-prediction windows from a 1-D id tensor.
"""

from __future__ import annotations

import functools
import random
import re
from collections.abc import Sequence

import torch

__all__ = [
    "CharTokenizer",
    "chinese_text",
    "english_text",
    "known_word_fraction",
    "random_batch",
    "tiny_stories",
]

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
        """Text of a 1-D sequence of ids (a list, or a tensor of shape ``(T,)``)."""
        if isinstance(ids, torch.Tensor):
            if ids.dim() != 1 or ids.is_floating_point() or ids.is_complex():
                raise ValueError(
                    f"ids must be a 1-D integer tensor (decode one row: ids[0]), got "
                    f"dtype {ids.dtype} and shape {tuple(ids.shape)}"
                )
            ids = ids.tolist()
        out = []
        for i in ids:
            if isinstance(i, bool) or not isinstance(i, int):
                raise TypeError(f"ids must hold ints, got {type(i).__name__} {i!r}")
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
    if not isinstance(ids, torch.Tensor) or ids.dtype not in (torch.int64, torch.int32):
        raise TypeError(
            f"ids must be a 1-D int64 or int32 tensor, got "
            f"{ids.dtype if isinstance(ids, torch.Tensor) else type(ids).__name__}"
        )
    if ids.dim() != 1:
        raise ValueError(f"ids must be 1-D, got shape {tuple(ids.shape)}")
    for name, value in (("batch_size", batch_size), ("context_length", context_length)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"{name} must be a positive int, got {value!r}")
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


# --------------------------------------------------------------------------------------
# Larger generated corpora for the tokenizer chapter (chapter 5): English prose with a
# Zipf-like mix of word frequencies, and Chinese prose. Both are written by hand-made
# grammars from hand-made word lists; nothing is copied from existing text.
# --------------------------------------------------------------------------------------

_EN_NOUNS = """
time year way day man woman child world life hand part place case week company
system program question work government number night point home water room mother area
money story fact month right study book eye job word business issue side kind head
house service friend father power hour game line end member law car city community name
president team minute idea kid body information school face level office door
health person art war history party result change morning reason research girl guy moment
air teacher force education foot boy age policy process music market sense nation plan
college interest death experience effect class control care field development role effort
rate heart drug show leader light voice wife police mind price report decision son view
relationship town road arm difference value building action model season society tax
director position player record paper space ground form event official matter center
couple site project activity star table need court oil situation cost industry figure
street image phone data picture practice piece land product doctor wall patient worker
news test movie north love support technology step baby computer type attention film tree
source organization hair window evidence population floor camp garden river island bridge
village kitchen letter station train ticket coffee dinner breakfast lunch bread apple
engine machine signal network memory language animal forest mountain ocean weather summer
winter spring autumn problem answer method theory science student library museum hospital
factory farm bottle glass box chair shirt shoe bag key map clock song dance painting
account agreement airport album angle anniversary apartment argument army article artist
audience author bank basket battle beach bedroom bell bicycle bird blanket board boat bone
border branch brother budget cabinet cake camera candle captain card career castle cat
ceiling century chain champion channel chapter cheese chicken church circle citizen climate
cloud coast coat collection colour column comment committee concert contract conversation
corner cottage council country county cousin crowd culture cup customer daughter debate
desert desk dictionary direction disease dog dream dress driver election element emergency
employee enemy energy engineer entrance environment equipment error estate exhibition
expert explanation failure fashion feather festival finger fire fish flag flight flower
football fortune fountain frame fruit furniture future gallery gate generation gift goal
gold grandmother grass guest guide guitar harbour hat highway hill holiday horse hotel
husband ice income instrument insurance invitation jacket journal journey judge jungle
kingdom knife ladder lake lamp lawyer lecture lesson lift lion magazine manager meal meeting
message metal minister mirror mission moon motor mouth nature neighbour newspaper noise
novel nurse object opinion orange orchestra owner page palace pan parent passenger path
pencil pension performance photograph piano pilot planet plant plate platform pocket poem
poet politician pool port potato pressure prince prison prize profit promise property
pupil queen radio rain reader recipe region restaurant revolution reward rice ring rock
roof rope rule sailor salad salt sand scene schedule scientist screen sea secret secretary
shadow shop shoulder silver singer sister skill sky smell snow soldier solution soup speech
speed spirit sport square stage stone storm strategy stream student subject success sugar
suit supply surface survey sweater symbol talent target taxi tea telephone temperature
temple tent territory thread threat thumb tiger tool tooth tower toy tradition traffic
tunnel umbrella uncle union universe valley vegetable vehicle victory video violin visitor
volume wallet warning wave wealth wedding weekend wheel whistle wine wing wire witness
wood wool writer yard youth zone
"""

_EN_IRREGULAR_PLURALS = {
    "man": "men", "woman": "women", "child": "children", "person": "people", "foot": "feet",
    "life": "lives", "wife": "wives", "mouse": "mice", "tooth": "teeth", "leaf": "leaves",
    "kid": "kids", "people": "people", "police": "police", "news": "news", "data": "data",
    "information": "information", "health": "health", "music": "music", "money": "money",
    "education": "education", "evidence": "evidence", "air": "air", "oil": "oil",
    "others": "others", "research": "research", "technology": "technologies",
    "attention": "attention", "hair": "hair", "weather": "weather", "bread": "bread",
    "coffee": "coffee", "breakfast": "breakfasts", "lunch": "lunches", "love": "love",
    "science": "sciences", "support": "support", "care": "care", "land": "lands",
}

# (base, transitive?) ; irregular past forms below.
_EN_VERBS = """
say:t get:t make:t go:i know:t take:t see:t come:i think:i look:i want:t give:t use:t
find:t tell:t ask:t work:i seem:i feel:i try:i leave:t call:t need:t keep:t let:t begin:t
help:t talk:i turn:t start:t show:t hear:t play:t run:i move:t like:t live:i believe:t
hold:t bring:t happen:i write:t provide:t sit:i stand:i lose:t pay:t meet:t include:t
continue:t learn:t change:t lead:t understand:t watch:t follow:t stop:t create:t speak:i
read:t spend:t grow:t open:t walk:i win:t offer:t remember:t love:t consider:t appear:i
buy:t wait:i serve:t die:i send:t expect:t build:t stay:i fall:i cut:t reach:t kill:t
remain:i suggest:t raise:t pass:t sell:t require:t report:t decide:i pull:t return:i
explain:t hope:i develop:t carry:t break:t receive:t agree:i support:t hit:t produce:t
eat:t cover:t catch:t draw:t choose:t cause:t point:i listen:i study:t travel:i visit:t
cook:t clean:t fix:t paint:t plan:t drive:t sing:i swim:i laugh:i smile:i worry:i
accept:t add:t admire:t admit:t allow:t announce:t answer:t apply:i arrange:t arrive:i
attack:t attend:t avoid:t bake:t belong:i borrow:t calculate:t celebrate:t check:t climb:t
collect:t compare:t complain:i connect:t copy:t count:t cross:t cry:i dance:i deliver:t
depend:i describe:t deserve:t design:t destroy:t discover:t discuss:t divide:t doubt:t
dress:t earn:t encourage:t enjoy:t enter:t escape:i examine:t exist:i explore:t fail:i
fill:t finish:t float:i fold:t force:t gather:t greet:t guess:t hang:t hate:t hunt:t
hurry:i ignore:t imagine:t improve:t inform:t insist:i invent:t invite:t jump:i kick:t
knock:i land:i last:i lift:t manage:t mark:t measure:t mention:t mix:t notice:t obey:t
observe:t order:t organize:t own:t pack:t pause:i perform:t permit:t pick:t place:t
practise:t pray:i prefer:t prepare:t present:t pretend:i prevent:t print:t promise:t
protect:t publish:t punish:t push:t question:t reach:t realize:t record:t reduce:t refuse:t
relax:i release:t rely:i remove:t repair:t repeat:t replace:t reply:i rescue:t rest:i
retire:i review:t ring:t rush:i save:t scream:i search:t settle:i share:t shout:i sign:t
sleep:i smell:t solve:t sort:t start:t steal:t suffer:i supply:t surprise:t surround:t
survive:i teach:t tear:t thank:t touch:t train:t treat:t trust:t unite:t vanish:i wander:i
warn:t wash:t waste:t whisper:i wish:i wonder:i wrap:t yell:i
"""

_EN_IRREGULAR_PAST = {
    "say": "said", "get": "got", "make": "made", "go": "went", "know": "knew", "take": "took",
    "see": "saw", "come": "came", "think": "thought", "give": "gave", "find": "found",
    "tell": "told", "feel": "felt", "leave": "left", "keep": "kept", "let": "let",
    "begin": "began", "show": "showed", "hear": "heard", "run": "ran", "hold": "held",
    "bring": "brought", "write": "wrote", "sit": "sat", "stand": "stood", "lose": "lost",
    "pay": "paid", "meet": "met", "lead": "led", "understand": "understood", "speak": "spoke",
    "read": "read", "spend": "spent", "grow": "grew", "win": "won", "buy": "bought",
    "send": "sent", "build": "built", "fall": "fell", "cut": "cut", "sell": "sold",
    "break": "broke", "hit": "hit", "eat": "ate", "catch": "caught", "draw": "drew",
    "choose": "chose", "drive": "drove", "sing": "sang", "swim": "swam", "be": "was",
    "hang": "hung", "ring": "rang", "sleep": "slept", "steal": "stole", "teach": "taught",
    "tear": "tore",
}
_EN_IRREGULAR_PARTICIPLE = {
    "know": "known", "take": "taken", "see": "seen", "give": "given", "begin": "begun",
    "show": "shown", "write": "written", "speak": "spoken", "grow": "grown", "fall": "fallen",
    "break": "broken", "eat": "eaten", "draw": "drawn", "choose": "chosen", "drive": "driven",
    "sing": "sung", "swim": "swum", "go": "gone", "come": "come", "run": "run", "be": "been",
    "ring": "rung", "steal": "stolen", "tear": "torn",
}
_EN_DOUBLE_FINAL = {
    "stop", "plan", "run", "sit", "begin", "win", "cut", "hit", "swim", "get", "let", "drop",
    "wrap",
}

_EN_ADJECTIVES = """
good new first last long great little own other old right big high different small large
next early young important few public bad same able late hard major better economic strong
possible whole free military true federal international full special easy clear recent
certain personal open red difficult available likely short single medical current wrong
private past foreign fine common poor natural significant similar hot dead central happy
serious ready simple left physical general environmental financial blue democratic dark
various entire close legal religious cold final main green nice huge popular traditional
cultural quiet warm bright heavy light soft careful busy strange useful famous modern
ancient quick slow deep wide narrow empty fresh clean safe rich healthy tired proud calm
kind gentle honest brave silent sudden polite lucky angry lonely curious friendly
absent academic active actual additional afraid alive annual anxious automatic aware basic
beautiful bitter blind boring broad brief broken capable charming cheap chemical civil
comfortable complex confident constant cool correct crazy cruel dangerous dear delicate
digital direct dirty distant domestic dry due eager eastern efficient elderly electric
elegant emotional equal essential exact excellent expensive external fair false familiar
fancy fat fierce flat foolish formal fortunate frequent funny generous glad golden grand
grateful guilty handsome harsh hidden hollow holy hungry ideal ill immediate independent
innocent intelligent internal junior keen lazy liquid local logical loose loud loyal mad
magic married mental mild minor moral musical mysterious nervous neutral noble normal
obvious odd official ordinary original painful pale perfect pink plain pleasant pure purple
rare raw regular relevant remote rough round royal rural sacred sad secret senior sharp
shy sick silly smooth solid sorry southern spare square steep sticky strict sweet tall
terrible thick thin tiny tough typical ugly urban vast visible vital weak wealthy western
wet wild wise wooden worried yellow
"""
# Adjectives that take -ness / -ly by rule (happy -> happiness, happily).
_EN_DERIVABLE = """
happy quiet careful kind gentle honest brave silent sudden polite lucky angry lonely curious
bright dark soft warm cold quick slow clear strange useful serious weak loud sad rough fair
eager foolish generous harsh mild odd pleasant plain smooth sweet thick wise
"""

_EN_ADVERBS = """
also just only very well even back still never really most always often together already
however almost later probably perhaps maybe soon again certainly exactly
"""

_EN_NAMES = """
James Mary Robert Patricia John Jennifer Michael Linda David Elizabeth William Barbara
Richard Susan Joseph Jessica Thomas Sarah Charles Karen Daniel Nancy Matthew Lisa Anthony
Betty Mark Sandra Paul Ashley Steven Emily Andrew Donna Kevin Michelle Brian Carol George
Amanda Edward Melissa Ronald Deborah Anna Wei Ravi Fatima Carlos Yuki Olga Kofi Ingrid
"""

_EN_PLACES = """
London Paris Chicago Boston Denver Toronto Sydney Berlin Madrid Lisbon Dublin Oslo Cairo
Nairobi Mumbai Beijing Shanghai Tokyo Seoul Lima Chile Texas Ohio Kenya Canada Mexico Brazil
Portugal Norway Egypt India Japan Vietnam Scotland Wales Oregon Maine Florida Vermont
"""

# Syllables for invented surnames and town names: an open, long-tailed vocabulary such as
# real text has (most word types in a real corpus are rare).
_EN_ONSETS = "b br c ch d f g gr h k l m n p r s st t th v w".split()
_EN_VOWELS = ["a", "e", "i", "o", "u", "ai", "ea", "ou", "y"]
_EN_CODAS = ["", "", "n", "r", "l", "s", "t", "m", "nd", "rt", "ck", "ld", "ss", "wn"]
_EN_TOWN_ENDINGS = ["ton", "ville", "field", "burg", "ford", "wood", "port", "stead", "haven"]

_EN_PREPOSITIONS = [
    "in", "on", "at", "near", "behind", "under", "across", "through", "into", "from", "with",
    "without", "after", "before", "during", "around", "toward", "beside", "over", "along",
]
_EN_TIMES = [
    "Last week", "Yesterday", "This morning", "On Monday", "In the spring", "Two years ago",
    "At first", "Later that day", "By the evening", "In the end", "For a while", "Today",
    "On Friday night", "Every summer", "After dinner", "Before the meeting", "Meanwhile",
]
_EN_CONJUNCTIONS = "because when although while after before since until if".split()
_EN_SAY_VERBS = ["said", "asked", "replied", "added", "explained", "shouted", "whispered", "wrote"]
_EN_OPINIONS = [
    "I think", "I don't think", "It's clear that", "We know that", "They'll say that",
    "You can't prove that", "She's sure that", "He didn't believe that", "It isn't true that",
    "We've heard that", "I'm afraid that", "Nobody doubts that", "Most people agree that",
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


class _Zipf:
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


class _EnglishGrammar:
    def __init__(self) -> None:
        self.nouns = _Zipf(_EN_NOUNS.split(), s=0.9)
        verbs = [entry.split(":") for entry in _EN_VERBS.split()]
        self.transitive = _Zipf([v for v, kind in verbs if kind == "t"], s=0.9)
        self.intransitive = _Zipf([v for v, kind in verbs if kind == "i"], s=0.9)
        self.adjectives = _Zipf(_EN_ADJECTIVES.split(), s=0.9)
        self.derivable = _Zipf(_EN_DERIVABLE.split(), s=0.7)
        self.adverbs = _Zipf(_EN_ADVERBS.split())
        self.names = _Zipf(_EN_NAMES.split(), s=0.8)
        self.places = _Zipf(_EN_PLACES.split(), s=0.8)
        made_up = random.Random(12345)  # the invented names are part of the grammar, not the seed
        surnames = sorted({self._invent(made_up) for _ in range(20000)})
        made_up.shuffle(surnames)
        self.surnames = _Zipf(surnames, s=0.8)
        self.towns = _Zipf(
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
    although the sentences make little sense. The text is cut at exactly ``n_chars`` (possibly mid-word). The same
    ``(n_chars, seed)`` always gives the same text.
    """
    if isinstance(n_chars, bool) or not isinstance(n_chars, int) or n_chars < 1:
        raise ValueError(f"n_chars must be a positive int, got {n_chars!r}")
    rng = random.Random(seed)
    grammar = _english_grammar()
    parts: list[str] = []
    length = -2  # the join puts one "\n\n" between paragraphs, none after the last
    while length < n_chars:
        paragraph = grammar.paragraph(rng)
        parts.append(paragraph)
        length += len(paragraph) + 2
    return "\n\n".join(parts)[:n_chars]


_ZH_PEOPLE = """
我 你 他 她 我们 你们 他们 她们 大家 老师 妈妈 爸爸 奶奶 爷爷 哥哥 姐姐 弟弟 妹妹 同学 朋友 医生
邻居 经理 司机 孩子们 学生们 校长 护士 记者 厨师 警察 工程师 科学家 作家 画家 农民 工人 老板
售货员 服务员 运动员 律师 教授 班长 队长 小伙子 老人 年轻人 顾客 游客 观众 球迷 志愿者
"""
_ZH_SURNAMES = (
    "王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗郑梁谢宋唐许韩冯邓曹彭曾肖田董袁潘于蒋蔡余杜叶程苏魏"
    "吕丁任沈姚卢姜崔钟谭陆汪范金石廖贾夏韦付方白邹孟熊秦邱江尹薛闫段雷侯龙史陶黎贺顾毛郝龚邵万钱"
    "严覃武戴莫孔向汤"
)
_ZH_GIVEN = "伟芳娜敏静丽强磊军洋勇艳杰娟涛明超秀霞平刚桂英华玉兰萍红鹏辉建国文斌宇浩凯晨阳欣怡佳琪雪梅海波宁颖峰亮成林俊博思雨轩子涵嘉睿晓东宏志新春"
_ZH_TIMES = """
今天 昨天 明天 早上 晚上 中午 下午 周末 星期一 星期二 星期三 星期四 星期五 星期六 星期天 去年
今年 明年 春天 夏天 秋天 冬天 上个月 下个月 这几天 每天 后来 刚才 现在 以前 最近 那天晚上
第二天 前天 后天 当时 平时 放假的时候 下雨的时候 吃完饭以后 上课以前 春节期间 国庆节 寒假 暑假
"""
_ZH_PLACES = """
学校 家里 公园 图书馆 超市 医院 公司 饭店 火车站 机场 银行 博物馆 教室 食堂 办公室 商店 书店
北京 上海 广州 深圳 杭州 成都 西安 南京 武汉 长沙 重庆 天津 苏州 青岛 厦门 昆明 哈尔滨 拉萨
农村 山上 河边 海边 城里 市中心 体育馆 电影院 咖啡馆 菜市场 实验室 宿舍 操场 花园 车站 工厂
医院门口 学校旁边 小区里 公交车上 地铁站 动物园 游泳池 邮局 派出所 会议室 停车场 广场
"""
_ZH_ACTIONS = """
吃饭 喝茶 喝咖啡 看书 看电影 看报纸 写作业 写信 做饭 买菜 买水果 打篮球 踢足球 跑步 游泳 唱歌
跳舞 画画 上课 下课 开会 上班 下班 休息 睡觉 旅游 散步 聊天 打电话 发消息 听音乐 学习数学
学习英语 学习历史 复习功课 准备考试 参加比赛 打扫房间 洗衣服 种花 照顾老人 修自行车 写报告
讨论问题 做实验 拍照片 看展览 逛商店 买礼物 等公交车 排队 练书法 弹钢琴 拉小提琴 下象棋 打乒乓球
爬山 钓鱼 骑车 开车 坐地铁 坐飞机 包饺子 煮面条 喝牛奶 吃早饭 读小说 背单词 查资料 写日记
打游戏 看新闻 听广播 上网 做运动 练瑜伽 做志愿者 找工作 面试 加班 出差 搬家 装修房子 看医生
"""
_ZH_THINGS = """
书 苹果 香蕉 电脑 手机 自行车 衣服 鞋子 杯子 桌子 椅子 房子 汽车 照片 礼物 报告 问题 消息 故事
电影 歌曲 天气 工作 生活 城市 历史 文化 经济 技术 环境 计划 办法 机会 经验 习惯 新闻 节目 比赛
作业 考试 成绩 价格 质量 服务 交通 空气 水平 方法 意见 建议 责任 能力 知识 科学 艺术 音乐 体育
健康 安全 教育 社会 国家 世界 未来 过去 理想 感情 朋友圈 网站 软件 数据 系统 市场 产品 公司
"""
_ZH_MEASURES = {
    "书": "本", "苹果": "个", "香蕉": "根", "电脑": "台", "手机": "部", "自行车": "辆", "衣服": "件",
    "鞋子": "双", "杯子": "个", "桌子": "张", "椅子": "把", "房子": "座", "汽车": "辆", "照片": "张",
    "礼物": "份", "报告": "份", "问题": "个", "消息": "条", "故事": "个", "电影": "部", "歌曲": "首",
    "蛋糕": "块", "面包": "个", "花": "朵", "票": "张", "报纸": "份", "词典": "本", "雨伞": "把",
    "帽子": "顶", "裤子": "条", "茶": "杯", "咖啡": "杯", "水": "瓶", "信": "封", "画": "幅",
    "小猫": "只", "小狗": "条", "鱼": "条", "马": "匹", "树": "棵", "电视": "台", "钥匙": "把",
}
_ZH_ADJECTIVES = """
高兴 忙 累 开心 安静 热闹 漂亮 干净 方便 重要 有意思 难 容易 便宜 贵 舒服 紧张 满意 奇怪 聪明
认真 努力 辛苦 新鲜 好吃 好看 冷 热 远 近 早 晚 多 少 快 慢 好 大 小 年轻 健康 危险 简单 复杂
清楚 幸福 难过 生气 着急 害怕 骄傲 失望 激动 轻松 无聊 精彩 特别 普通 正常 严重 厉害 可爱 温柔
"""
_ZH_DEGREES = ["很", "很", "非常", "特别", "有点", "比较", "真", "太", "挺", "十分", "相当", "越来越"]
_ZH_NUMBERS = ["一", "两", "三", "四", "五", "六", "七", "八", "九", "十", "几", "好几"]
_ZH_SAY = ["说", "问", "告诉大家", "笑着说", "回答", "想了想说", "小声说", "大声喊", "解释说", "补充说"]
_ZH_OPINIONS = ["我觉得", "我认为", "听说", "据说", "大家都知道", "看起来", "其实", "没想到", "原来", "说实话"]


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
        self.names = _Zipf(names, s=0.8)
        self.people = _Zipf(_ZH_PEOPLE.split(), s=0.8)
        self.times = _Zipf(_ZH_TIMES.split(), s=0.8)
        self.places = _Zipf(_ZH_PLACES.split(), s=0.8)
        self.actions = _Zipf(_ZH_ACTIONS.split(), s=0.8)
        self.things = _Zipf(_ZH_THINGS.split(), s=0.8)
        self.adjectives = _Zipf(_ZH_ADJECTIVES.split(), s=0.8)

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
    if isinstance(n_chars, bool) or not isinstance(n_chars, int) or n_chars < 1:
        raise ValueError(f"n_chars must be a positive int, got {n_chars!r}")
    rng = random.Random(seed)
    grammar = _chinese_grammar()
    parts: list[str] = []
    length = -1  # the join puts one "\n" between paragraphs, none after the last
    while length < n_chars:
        paragraph = grammar.paragraph(rng)
        parts.append(paragraph)
        length += len(paragraph) + 1
    return "\n".join(parts)[:n_chars]
