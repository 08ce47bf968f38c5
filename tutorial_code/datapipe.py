"""Cleaning pre-training text: deduplication, quality rules and script identification.

A web crawl is mostly not text a model should learn from: copies of the same page,
near-copies (a date or a counter changed), navigation and cookie banners repeated on every
page, spam, code, and pages in other languages or broken encodings. This module implements the
stages public pipelines run (C4: Raffel et al., 2020; Gopher: Rae et al., 2021; CCNet: Wenzek
et al., 2020; FineWeb: Penedo et al., 2024), small enough to read:

* exact deduplication by a hash of the normalised text (:func:`text_hash`,
  :func:`exact_duplicates`);
* near-duplicate detection with MinHash (Broder, 1997) and locality-sensitive hashing by bands
  (:class:`MinHasher`, :func:`lsh_candidate_pairs`, :func:`near_duplicate_clusters`);
* document quality rules from Gopher and C4 (:data:`QUALITY_RULES`, :func:`quality_failures`)
  and the removal of lines repeated across many documents (:func:`repeated_lines`);
* a zh/en script detector (:func:`detect_script`);
* :func:`clean_corpus`, the whole pipeline with per-stage statistics, and
  :func:`split_by_cluster`, :func:`near_duplicate_leaks` for a validation split without
  near-duplicates of the training set;
* :func:`dirty_corpus`, a bilingual corpus from the book's generators with duplicates,
  boilerplate and junk injected, each document labelled with what it is.

Text is normalised before hashing and shingling (:func:`normalize_text`): Unicode NFKC,
case-folded, every run of white space replaced by one space.
"""

from __future__ import annotations

import hashlib
import random
import re
import unicodedata
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field

import numpy as np

from tutorial_code.checks import check_float, check_int
from tutorial_code.corpora import chinese_text, english_text

__all__ = [
    "BOILERPLATE_LINES",
    "MINHASH_PRIME",
    "QUALITY_RULES",
    "CleaningResult",
    "DirtyCorpus",
    "MinHasher",
    "ScriptGuess",
    "candidate_probability",
    "clean_corpus",
    "detect_script",
    "dirty_corpus",
    "estimated_jaccard",
    "exact_duplicates",
    "jaccard",
    "lsh_candidate_pairs",
    "near_duplicate_clusters",
    "near_duplicate_leaks",
    "normalize_text",
    "quality_failures",
    "repeated_lines",
    "shingles",
    "split_by_cluster",
    "text_hash",
]


def _check_docs(docs: Sequence[str], name: str = "docs") -> list[str]:
    if isinstance(docs, str) or not isinstance(docs, Sequence):
        raise TypeError(f"{name} must be a sequence of str, got {type(docs).__name__}")
    for i, doc in enumerate(docs):
        if not isinstance(doc, str):
            raise TypeError(f"{name}[{i}] must be a str, got {type(doc).__name__}")
    return list(docs)


# --------------------------------------------------------------------------------------
# Normalisation and exact duplicates
# --------------------------------------------------------------------------------------

_SPACES = re.compile(r"\s+")


def normalize_text(text: str) -> str:
    """NFKC, case-folded, white space collapsed to single spaces and stripped.

    NFKC maps compatibility forms to one code point (full-width ``Ａ`` to ``A``, ``ﬁ`` to
    ``fi``), so two copies of a page that differ only in such forms, in case or in spacing
    hash the same.
    """
    if not isinstance(text, str):
        raise TypeError(f"text must be a str, got {type(text).__name__}")
    return _SPACES.sub(" ", unicodedata.normalize("NFKC", text).casefold()).strip()


def text_hash(text: str) -> str:
    """SHA-256 (hex) of the UTF-8 bytes of :func:`normalize_text`\\ ``(text)``."""
    return hashlib.sha256(normalize_text(text).encode("utf-8")).hexdigest()


def exact_duplicates(docs: Sequence[str]) -> list[int]:
    """Indices of the documents whose normalised text already occurred earlier in ``docs``.

    The first copy of each text is kept; every later copy is listed, in order.
    """
    docs = _check_docs(docs)
    seen: set[str] = set()
    duplicates = []
    for i, doc in enumerate(docs):
        digest = text_hash(doc)
        if digest in seen:
            duplicates.append(i)
        seen.add(digest)
    return duplicates


# --------------------------------------------------------------------------------------
# Shingles, Jaccard similarity, MinHash
# --------------------------------------------------------------------------------------


def shingles(text: str, *, n: int = 5) -> set[str]:
    """The set of character ``n``-grams of :func:`normalize_text`\\ ``(text)``.

    Characters rather than words, so that the same code works for Chinese, which has no
    spaces between words (FineWeb shingles English by word 5-grams). A text shorter than
    ``n`` characters is its own single shingle; the empty text has none.
    """
    check_int("n", n, low=1)
    norm = normalize_text(text)
    if len(norm) <= n:
        return {norm} if norm else set()
    return {norm[i : i + n] for i in range(len(norm) - n + 1)}


def jaccard(a: set, b: set) -> float:
    """Jaccard similarity ``|a ∩ b| / |a ∪ b|`` of two sets (1.0 for two empty sets)."""
    if not isinstance(a, (set, frozenset)) or not isinstance(b, (set, frozenset)):
        raise TypeError(f"a and b must be sets, got {type(a).__name__} and {type(b).__name__}")
    union = len(a | b)
    return 1.0 if union == 0 else len(a & b) / union


#: The prime ``p = 2^31 - 1`` of the hash family ``h(x) = (a x + b) mod p``; with
#: ``a, x < p`` the product fits in 64 bits, so numpy computes it exactly.
MINHASH_PRIME = (1 << 31) - 1


def _shingle_values(shingle_set: Iterable[str]) -> np.ndarray:
    """Each shingle as an integer in ``[0, p)``: the first 8 bytes of its BLAKE2b digest."""
    values = [
        int.from_bytes(hashlib.blake2b(s.encode("utf-8"), digest_size=8).digest(), "little")
        % MINHASH_PRIME
        for s in shingle_set
    ]
    return np.asarray(values, dtype=np.uint64)


class MinHasher:
    """MinHash signatures (Broder, 1997) with ``num_perm`` random hash functions.

    Function ``k`` is ``h_k(x) = (a_k x + b_k) mod p`` on a shingle's integer hash ``x``,
    with ``p = 2^31 - 1`` and ``a_k in [1, p)``, ``b_k in [0, p)`` drawn from
    ``numpy.random.default_rng(seed)`` (the universal family of Carter and Wegman, 1979).
    The signature of a set ``S`` is ``(min_{x in S} h_1(x), ..., min_{x in S} h_K(x))``.
    For two sets, ``P(min h_k(S) = min h_k(T)) = J(S, T)``: the element of ``S ∪ T`` with
    the smallest hash is equally likely to be any of them, and the minima agree exactly when
    it lies in ``S ∩ T``. So the fraction of equal entries estimates the Jaccard similarity
    with standard deviation ``sqrt(J (1 - J) / K)``. The empty set's signature is all ``p``.
    """

    def __init__(self, *, num_perm: int = 128, seed: int = 1) -> None:
        self.num_perm = check_int("num_perm", num_perm, low=1)
        self.seed = check_int("seed", seed, low=0)
        rng = np.random.default_rng(seed)
        self.a = rng.integers(1, MINHASH_PRIME, size=num_perm, dtype=np.uint64)
        self.b = rng.integers(0, MINHASH_PRIME, size=num_perm, dtype=np.uint64)

    def signature(self, shingle_set: set[str]) -> np.ndarray:
        """``(num_perm,)`` uint64: the minimum of each hash function over the set."""
        if not isinstance(shingle_set, (set, frozenset)):
            raise TypeError(f"shingle_set must be a set, got {type(shingle_set).__name__}")
        x = _shingle_values(shingle_set)
        if x.size == 0:
            return np.full(self.num_perm, MINHASH_PRIME, dtype=np.uint64)
        # (a_k x_j + b_k) mod p for every function k and shingle j: (K, |S|), then min over j
        hashed = (self.a[:, None] * x[None, :] + self.b[:, None]) % np.uint64(MINHASH_PRIME)
        return hashed.min(axis=1)

    def signatures(self, docs: Sequence[str], *, n: int = 5) -> np.ndarray:
        """``(len(docs), num_perm)``: the signature of each document's ``n``-shingles."""
        docs = _check_docs(docs)
        out = np.empty((len(docs), self.num_perm), dtype=np.uint64)
        for i, doc in enumerate(docs):
            out[i] = self.signature(shingles(doc, n=n))
        return out


def estimated_jaccard(sig_a: np.ndarray, sig_b: np.ndarray) -> float:
    """The fraction of equal entries of two MinHash signatures of the same hasher."""
    sig_a, sig_b = np.asarray(sig_a), np.asarray(sig_b)
    if sig_a.shape != sig_b.shape or sig_a.ndim != 1:
        raise ValueError(
            f"signatures must be 1-D of the same length, got {sig_a.shape} and {sig_b.shape}"
        )
    return float(np.mean(sig_a == sig_b))


def candidate_probability(similarity: float, *, bands: int, rows: int) -> float:
    """``1 - (1 - s^r)^b``: the chance that two sets of Jaccard similarity ``s`` share a band.

    With ``b`` bands of ``r`` rows each (``b r`` hash functions), a band matches with
    probability ``s^r`` and the ``b`` bands are independent. The curve is an S rising
    steeply near ``s = (1 / b)^(1 / r)``.
    """
    s = check_float("similarity", similarity, low=0.0, high=1.0)
    check_int("bands", bands, low=1)
    check_int("rows", rows, low=1)
    return 1.0 - (1.0 - s**rows) ** bands


def _check_bands(signatures: np.ndarray, bands: int, rows: int) -> np.ndarray:
    check_int("bands", bands, low=1)
    check_int("rows", rows, low=1)
    signatures = np.asarray(signatures)
    if signatures.ndim != 2:
        raise ValueError(f"signatures must be 2-D (docs, num_perm), got shape {signatures.shape}")
    if signatures.shape[1] < bands * rows:
        raise ValueError(
            f"bands * rows = {bands * rows} exceeds the signature length {signatures.shape[1]}"
        )
    return signatures


def lsh_candidate_pairs(signatures: np.ndarray, *, bands: int, rows: int) -> set[tuple[int, int]]:
    """Pairs ``(i, j)``, ``i < j``, whose signatures agree on all ``rows`` of some band.

    Band ``k`` is columns ``k r .. (k + 1) r - 1``. Documents are put into buckets by the
    bytes of each band, so only documents that share a bucket are compared: the cost grows
    with the number of documents, not its square (Leskovec, Rajaraman and Ullman, *Mining of
    Massive Datasets*, ch. 3.4).
    """
    signatures = _check_bands(signatures, bands, rows)
    pairs: set[tuple[int, int]] = set()
    for k in range(bands):
        buckets: dict[bytes, list[int]] = {}
        for i, row in enumerate(signatures[:, k * rows : (k + 1) * rows]):
            buckets.setdefault(row.tobytes(), []).append(i)
        for members in buckets.values():
            pairs.update(
                (members[x], members[y])
                for x in range(len(members))
                for y in range(x + 1, len(members))
            )
    return pairs


class _UnionFind:
    def __init__(self, n: int) -> None:
        self.parent = list(range(n))

    def find(self, i: int) -> int:
        while self.parent[i] != i:
            self.parent[i] = self.parent[self.parent[i]]
            i = self.parent[i]
        return i

    def union(self, i: int, j: int) -> None:
        ri, rj = self.find(i), self.find(j)
        if ri != rj:  # the smaller index becomes the root, so a cluster's id is its first doc
            self.parent[max(ri, rj)] = min(ri, rj)


def _similar_pairs(
    docs: list[str], *, threshold: float, num_perm: int, bands: int, rows: int, n: int, seed: int
) -> list[tuple[int, int]]:
    """LSH candidate pairs whose estimated Jaccard similarity is at least ``threshold``."""
    threshold = check_float("threshold", threshold, low=0.0, high=1.0)
    signatures = MinHasher(num_perm=num_perm, seed=seed).signatures(docs, n=n)
    return [
        (i, j)
        for i, j in sorted(lsh_candidate_pairs(signatures, bands=bands, rows=rows))
        if estimated_jaccard(signatures[i], signatures[j]) >= threshold
    ]


def near_duplicate_clusters(
    docs: Sequence[str],
    *,
    threshold: float = 0.7,
    num_perm: int = 128,
    bands: int = 16,
    rows: int = 8,
    n: int = 5,
    seed: int = 1,
) -> list[int]:
    """A cluster id per document: the index of the first document of its cluster.

    MinHash signatures of the ``n``-shingles, LSH candidates by ``bands`` x ``rows``, then
    each candidate pair whose *estimated* Jaccard similarity is at least ``threshold`` is
    joined (union-find). Verifying the candidates removes most of the band collisions of
    dissimilar documents; chains of near-duplicates (A ~ B ~ C) end up in one cluster.
    """
    docs = _check_docs(docs)
    options = dict(threshold=threshold, num_perm=num_perm, bands=bands, rows=rows, n=n)
    clusters = _UnionFind(len(docs))
    for i, j in _similar_pairs(docs, seed=seed, **options):
        clusters.union(i, j)
    return [clusters.find(i) for i in range(len(docs))]


def split_by_cluster(
    clusters: Sequence[int], *, val_fraction: float, seed: int = 0
) -> tuple[list[int], list[int]]:
    """``(train_indices, val_indices)`` with every cluster entirely on one side.

    A random split by document puts one copy of a near-duplicate pair in training and the
    other in validation, so the validation loss rewards memorisation (pitfall test
    ``test_pitfall_near_duplicates_leak_across_a_random_split``). Here whole clusters are
    shuffled with ``random.Random(seed)`` and assigned to validation until it holds at least
    ``val_fraction`` of the documents.
    """
    clusters = [check_int("clusters[i]", c, low=0) for c in clusters]
    val_fraction = check_float("val_fraction", val_fraction, low=0.0, high=1.0, low_open=True)
    members: dict[int, list[int]] = {}
    for i, c in enumerate(clusters):
        members.setdefault(c, []).append(i)
    order = sorted(members)
    random.Random(seed).shuffle(order)
    val: list[int] = []
    target = val_fraction * len(clusters)
    for c in order:
        if len(val) >= target:
            break
        val.extend(members[c])
    val_set = set(val)
    return [i for i in range(len(clusters)) if i not in val_set], sorted(val)


def near_duplicate_leaks(
    train_docs: Sequence[str],
    val_docs: Sequence[str],
    *,
    threshold: float = 0.7,
    num_perm: int = 128,
    bands: int = 16,
    rows: int = 8,
    n: int = 5,
    seed: int = 1,
) -> list[int]:
    """Indices of the validation documents with a near-duplicate among the training ones."""
    train_docs = _check_docs(train_docs, "train_docs")
    val_docs = _check_docs(val_docs, "val_docs")
    options = dict(threshold=threshold, num_perm=num_perm, bands=bands, rows=rows, n=n)
    split = len(train_docs)
    pairs = _similar_pairs(train_docs + val_docs, seed=seed, **options)
    return sorted({j - split for i, j in pairs if i < split <= j})


# --------------------------------------------------------------------------------------
# Script identification
# --------------------------------------------------------------------------------------


def _is_han(ch: str) -> bool:
    code = ord(ch)
    return 0x4E00 <= code <= 0x9FFF or 0x3400 <= code <= 0x4DBF or 0xF900 <= code <= 0xFAFF


@dataclass(frozen=True)
class ScriptGuess:
    """What :func:`detect_script` found: a label and the shares of the letters.

    ``label`` is ``"zh"``, ``"en"`` or ``"other"``; ``han``, ``latin`` and ``other`` are the
    fractions of the text's letters that are Han characters, ASCII Latin letters and any
    other letters (Cyrillic, accented or mis-decoded Latin, kana, ...).
    """

    label: str
    han: float
    latin: float
    other: float


def detect_script(text: str, *, min_share: float = 0.65) -> ScriptGuess:
    """Label ``text`` ``"zh"`` or ``"en"`` if that script's share of its letters is at least
    ``min_share``, else ``"other"``.

    A letter is a character of Unicode category ``L*``; digits, punctuation and spaces do not
    count. This identifies scripts, not languages: French is Latin too, and is "en" here.
    Real pipelines use a trained language identifier (FineWeb keeps pages that fastText
    scores at least 0.65 for English); for the book's zh/en corpus the script decides.
    """
    if not isinstance(text, str):
        raise TypeError(f"text must be a str, got {type(text).__name__}")
    min_share = check_float("min_share", min_share, low=0.0, high=1.0, low_open=True)
    han = latin = other = 0
    for ch in text:
        if not unicodedata.category(ch).startswith("L"):
            continue
        if _is_han(ch):
            han += 1
        elif ("a" <= ch <= "z") or ("A" <= ch <= "Z"):
            latin += 1
        else:
            other += 1
    letters = han + latin + other
    if letters == 0:
        return ScriptGuess("other", 0.0, 0.0, 0.0)
    shares = (han / letters, latin / letters, other / letters)
    label = "other"
    if shares[0] >= min_share:
        label = "zh"
    elif shares[1] >= min_share:
        label = "en"
    return ScriptGuess(label, *shares)


# --------------------------------------------------------------------------------------
# Quality rules
# --------------------------------------------------------------------------------------

_WORD = re.compile(r"\S+")
_GOPHER_STOP_WORDS = frozenset({"the", "be", "to", "of", "and", "that", "have", "with"})
_BULLETS = ("•", "-", "*", "·", "‣", "▪")


def _words(text: str) -> list[str]:
    """White-space separated words, except that every Han character is a word of its own
    (Chinese has no spaces: a rule of "50 words" becomes "50 characters" for it) and a run
    of other characters next to Han ones (a number, a Latin name) is one word; punctuation
    between Han characters separates words and is not one."""
    words = []
    for token in _WORD.findall(text):
        if not any(_is_han(ch) for ch in token):
            words.append(token)
            continue
        run = ""
        for ch in token:
            if _is_han(ch) or unicodedata.category(ch).startswith("P"):
                if run:
                    words.append(run)
                    run = ""
                if _is_han(ch):
                    words.append(ch)
            else:
                run += ch
        if run:
            words.append(run)
    return words


def _lines(text: str) -> list[str]:
    return [line.strip() for line in text.splitlines() if line.strip()]


def _rule_word_count(text: str) -> bool:
    return 50 <= len(_words(text)) <= 100_000


def _rule_mean_word_length(text: str) -> bool:
    latin = [w for w in _words(text) if not any(_is_han(ch) for ch in w)]
    if len(latin) < 0.5 * max(len(_words(text)), 1):  # a Chinese page: the rule does not apply
        return True
    return 3 <= sum(len(w) for w in latin) / len(latin) <= 10


def _rule_symbol_ratio(text: str) -> bool:
    words = max(len(_words(text)), 1)
    hashes = text.count("#")
    ellipses = text.count("...") + text.count("…")
    return hashes / words <= 0.1 and ellipses / words <= 0.1


def _rule_bullets_and_ellipses(text: str) -> bool:
    lines = _lines(text)
    if not lines:
        return False
    bullets = sum(line.startswith(_BULLETS) for line in lines) / len(lines)
    ellipses = sum(line.endswith(("...", "…")) for line in lines) / len(lines)
    return bullets <= 0.9 and ellipses <= 0.3


def _rule_alphabetic_words(text: str) -> bool:
    words = _words(text)
    if not words:
        return False
    alphabetic = sum(any(ch.isalpha() for ch in w) for w in words)
    return alphabetic / len(words) >= 0.8


def _rule_stop_words(text: str) -> bool:
    if detect_script(text).label != "en":  # an English rule; Chinese pages are not tested
        return True
    found = {w.strip(".,;:!?\"'()").lower() for w in _WORD.findall(text)} & _GOPHER_STOP_WORDS
    return len(found) >= 2


def _rule_duplicate_lines(text: str) -> bool:
    lines = _lines(text)
    if not lines:
        return False
    counts = Counter(lines)
    duplicated = sum(c for c in counts.values() if c > 1)  # every line that has a copy
    return duplicated / len(lines) <= 0.3


def _rule_c4_page(text: str) -> bool:
    return "lorem ipsum" not in text.casefold() and "{" not in text


#: The document rules, ``name: (keep, description)``; ``keep(text)`` is ``True`` for a page
#: that passes. From Gopher (Rae et al., 2021, appendix A.1.1 and Table A1) and C4 (Raffel et
#: al., 2020, section 2.2), with one adaptation for Chinese: each Han character counts as a
#: word.
QUALITY_RULES: dict[str, tuple[Callable[[str], bool], str]] = {
    "word_count": (_rule_word_count, "Gopher: between 50 and 100,000 words"),
    "mean_word_length": (_rule_mean_word_length, "Gopher: mean word length 3 to 10 characters"),
    "symbol_ratio": (_rule_symbol_ratio, "Gopher: '#' and ellipses at most 0.1 per word"),
    "bullets_ellipses": (
        _rule_bullets_and_ellipses,
        "Gopher: at most 90% of lines start with a bullet, 30% end with an ellipsis",
    ),
    "alphabetic_words": (
        _rule_alphabetic_words,
        "Gopher: at least 80% of words contain a letter",
    ),
    "stop_words": (
        _rule_stop_words,
        "Gopher: English pages contain 2 of the, be, to, of, and, that, have, with",
    ),
    "duplicate_lines": (_rule_duplicate_lines, "Gopher: at most 30% of lines are repeated"),
    "c4_page": (_rule_c4_page, "C4: no 'lorem ipsum', no '{'"),
}


def quality_failures(text: str) -> list[str]:
    """The names of the :data:`QUALITY_RULES` that ``text`` fails (empty: it passes)."""
    if not isinstance(text, str):
        raise TypeError(f"text must be a str, got {type(text).__name__}")
    return [name for name, (keep, _) in QUALITY_RULES.items() if not keep(text)]


def repeated_lines(docs: Sequence[str], *, min_docs: int = 3) -> set[str]:
    """Normalised lines that occur in at least ``min_docs`` different documents.

    Menus, cookie banners and copyright footers are the same line on many pages of a site;
    CCNet (Wenzek et al., 2020) deduplicates at the level of paragraphs for this reason.
    Lines repeated inside one document count once.
    """
    docs = _check_docs(docs)
    check_int("min_docs", min_docs, low=2)
    counts: Counter[str] = Counter()
    for doc in docs:
        counts.update({normalize_text(line) for line in _lines(doc)})
    return {line for line, c in counts.items() if c >= min_docs}


def _drop_lines(text: str, lines: set[str]) -> str:
    return "\n".join(line for line in text.splitlines() if normalize_text(line) not in lines)


# --------------------------------------------------------------------------------------
# The pipeline
# --------------------------------------------------------------------------------------


@dataclass
class CleaningResult:
    """What :func:`clean_corpus` kept and removed.

    Attributes:
        docs: the cleaned documents, in input order.
        kept: their indices in the input.
        removed: ``{stage: [input indices]}`` for the stages that drop whole documents, in
            pipeline order: ``"exact_duplicate"``, ``"script"``, each quality rule's name
            (a document is charged to the first rule it fails), ``"near_duplicate"``.
        rule_failures: ``{rule: number of documents failing it}`` among those the quality
            stage saw (a document may fail several rules).
        boilerplate_lines: the repeated lines removed from the kept documents.
        lines_removed: how many lines that removed.
        chars_in, chars_out: characters before and after.
    """

    docs: list[str]
    kept: list[int]
    removed: dict[str, list[int]] = field(default_factory=dict)
    rule_failures: dict[str, int] = field(default_factory=dict)
    boilerplate_lines: set[str] = field(default_factory=set)
    lines_removed: int = 0
    chars_in: int = 0
    chars_out: int = 0


def clean_corpus(
    docs: Sequence[str],
    *,
    scripts: Iterable[str] = ("zh", "en"),
    boilerplate_min_docs: int = 3,
    near_duplicate_threshold: float = 0.7,
    seed: int = 1,
) -> CleaningResult:
    """Run the stages roughly in FineWeb's order (Penedo et al., 2024).

    1. exact duplicates (:func:`exact_duplicates`) are dropped;
    2. documents whose :func:`detect_script` label is not in ``scripts`` are dropped;
    3. documents failing a rule of :data:`QUALITY_RULES` are dropped;
    4. near-duplicates are dropped, keeping the first document of each
       :func:`near_duplicate_clusters` cluster;
    5. lines repeated in at least ``boilerplate_min_docs`` of the remaining documents are
       removed from them (:func:`repeated_lines`). This comes after the near-duplicate stage
       on purpose: before it, the shared paragraphs of near-copies count as "repeated" and
       would be cut out of the original too.
    """
    docs = _check_docs(docs)
    scripts = set(scripts)
    result = CleaningResult(docs=[], kept=[], chars_in=sum(len(d) for d in docs))
    alive = list(range(len(docs)))

    duplicates = set(exact_duplicates(docs))
    result.removed["exact_duplicate"] = sorted(duplicates)
    alive = [i for i in alive if i not in duplicates]

    wrong_script = [i for i in alive if detect_script(docs[i]).label not in scripts]
    result.removed["script"] = wrong_script
    alive = [i for i in alive if i not in set(wrong_script)]

    for name in QUALITY_RULES:
        result.removed[name] = []
        result.rule_failures[name] = 0
    passed = []
    for i in alive:
        failures = quality_failures(docs[i])
        for name in failures:
            result.rule_failures[name] += 1
        if failures:
            result.removed[failures[0]].append(i)
        else:
            passed.append(i)
    alive = passed

    clusters = near_duplicate_clusters(
        [docs[i] for i in alive], threshold=near_duplicate_threshold, seed=seed
    )
    near = {i for i, c in zip(alive, clusters, strict=True) if alive[c] != i}
    result.removed["near_duplicate"] = sorted(near)
    alive = [i for i in alive if i not in near]

    boilerplate = repeated_lines([docs[i] for i in alive], min_docs=boilerplate_min_docs)
    result.boilerplate_lines = boilerplate
    texts = {i: _drop_lines(docs[i], boilerplate) for i in alive}
    result.lines_removed = sum(len(_lines(docs[i])) - len(_lines(texts[i])) for i in alive)

    result.kept = alive
    result.docs = [texts[i] for i in alive]
    result.chars_out = sum(len(d) for d in result.docs)
    return result


# --------------------------------------------------------------------------------------
# A dirty bilingual corpus to clean
# --------------------------------------------------------------------------------------

#: Navigation, cookie and footer lines, each pasted onto many pages.
BOILERPLATE_LINES: tuple[str, ...] = (
    "Home | News | Sports | About us | Contact",
    "We use cookies to improve your experience. Accept all cookies",
    "Subscribe to our newsletter for weekly updates",
    "Copyright 2024 Example Media. All rights reserved.",
    "Share this article: Facebook | Twitter | Email",
    "首页 | 新闻 | 体育 | 关于我们 | 联系方式",
    "本网站使用Cookie以改善您的浏览体验。接受全部Cookie",
    "版权所有 © 2024 示例传媒 保留所有权利",
    "分享到：微信 | 微博 | 邮件",
    "扫描二维码，关注我们的公众号",
)

_KEYWORDS = [
    "cheap",
    "flights",
    "deals",
    "hotel",
    "booking",
    "best",
    "price",
    "discount",
    "shoes",
    "online",
    "shop",
    "free",
    "shipping",
    "buy",
    "now",
    "sale",
    "coupon",
    "phone",
    "case",
    "laptop",
    "bag",
    "travel",
    "insurance",
    "car",
    "rental",
]
_LOREM = [
    "lorem",
    "ipsum",
    "dolor",
    "sit",
    "amet",
    "consectetur",
    "adipiscing",
    "elit",
    "sed",
    "do",
    "eiusmod",
    "tempor",
    "incididunt",
    "ut",
    "labore",
    "et",
    "dolore",
    "magna",
    "aliqua",
]
_CYRILLIC = "абвгдеёжзийклмнопрстуфхцчшщыэюя"


@dataclass(frozen=True)
class DirtyCorpus:
    """Documents and, for each, what it is.

    ``kinds[i]`` is ``"clean"``, ``"exact_duplicate"``, ``"near_duplicate"`` or
    ``"junk:<type>"``; ``boilerplate[i]`` says whether lines of :data:`BOILERPLATE_LINES`
    were pasted into it; ``source[i]`` numbers the clean document that ``docs[i]`` is or
    copies (``0 .. n_clean - 1`` in the order they were generated; ``-1`` for junk), so a
    clean document and its copies share it.
    """

    docs: list[str]
    kinds: list[str]
    boilerplate: list[bool]
    source: list[int]


def _clean_doc(rng: random.Random, index: int, seed: int) -> str:
    n_chars = rng.randint(300, 1200)
    doc_seed = seed * 1_000_003 + index
    if index % 2 == 0:
        return english_text(n_chars, seed=doc_seed).strip()
    return chinese_text(n_chars // 2, seed=doc_seed).strip()


def _near_copy(rng: random.Random, doc: str) -> str:
    """A near-duplicate: one number changed, one sentence dropped, a header line added."""
    numbers = list(re.finditer(r"\d+", doc))
    if numbers:
        m = rng.choice(numbers)
        doc = doc[: m.start()] + str(rng.randint(1, 999)) + doc[m.end() :]
    sentences = re.split(r"(?<=[.!?。！？])", doc)
    if len(sentences) > 4:
        del sentences[rng.randrange(1, len(sentences) - 1)]
    chinese = any(_is_han(ch) for ch in doc)
    header = rng.choice(["转载：", "更新："] if chinese else ["Updated:", "Reposted:"])
    header += f" {rng.randint(1, 28)}"
    return header + "\n" + "".join(sentences)


def _junk(rng: random.Random, kind: str, english_source: str, chinese_source: str) -> str:
    if kind == "symbols":
        pieces = ["#" * rng.randint(1, 4), "$$$", "!!!", "***", "@@", str(rng.randint(0, 99999))]
        return "\n".join(
            " ".join(rng.choice(pieces) for _ in range(rng.randint(8, 16))) for _ in range(12)
        )
    if kind == "keywords":
        return "\n".join(" | ".join(rng.sample(_KEYWORDS, 5)) for _ in range(rng.randint(10, 20)))
    if kind == "mojibake":  # UTF-8 bytes of Chinese read as Latin-1
        return chinese_source.encode("utf-8").decode("latin-1")
    if kind == "other_script":
        words = [
            "".join(rng.choice(_CYRILLIC) for _ in range(rng.randint(2, 9))) for _ in range(150)
        ]
        return " ".join(words).capitalize() + "."
    if kind == "lorem":
        words = " ".join(rng.choice(_LOREM) for _ in range(rng.randint(80, 160)))
        return "Lorem ipsum dolor sit amet, " + words + "."
    if kind == "code":
        return "\n".join(
            f"function f{i}(x) {{ return x * {rng.randint(2, 9)} + {i}; }}"
            for i in range(rng.randint(10, 30))
        )
    if kind == "short":
        return rng.choice(["404 Not Found", "Click here to continue", "页面不存在", "Loading..."])
    if kind == "repeated_lines":
        line = rng.choice(["Buy now! Limited offer!", "限时抢购！立即下单！"])
        return "\n".join([line] * rng.randint(15, 30)) + "\n" + english_source[:200]
    raise ValueError(f"unknown junk kind {kind!r}")


_JUNK_KINDS = (
    "symbols",
    "keywords",
    "mojibake",
    "other_script",
    "lorem",
    "code",
    "short",
    "repeated_lines",
)


def dirty_corpus(
    n_clean: int,
    *,
    seed: int = 0,
    duplicated_fraction: float = 0.1,
    max_copies: int = 20,
    near_duplicated_fraction: float = 0.1,
    junk_fraction: float = 0.25,
    boilerplate_fraction: float = 0.4,
) -> DirtyCorpus:
    """``n_clean`` generated documents (alternately English and Chinese) made dirty.

    * ``duplicated_fraction`` of the clean documents get exact copies, each between 1 and
      ``max_copies`` of them (the number of copies is uniform in that range);
    * ``near_duplicated_fraction`` get one to three near-copies (digits changed, a sentence
      dropped, a header added);
    * ``junk_fraction * n_clean`` junk documents are added, cycling through symbol soup,
      keyword spam, mojibake, Cyrillic, lorem ipsum, code, very short pages and repeated
      lines;
    * ``boilerplate_fraction`` of all documents get one or two lines of
      :data:`BOILERPLATE_LINES` at the top or bottom.

    Everything is then shuffled with ``random.Random(seed)``; the same arguments give the
    same corpus on every machine.
    """
    check_int("n_clean", n_clean, low=2)
    check_int("max_copies", max_copies, low=1)
    fractions = {
        "duplicated_fraction": duplicated_fraction,
        "near_duplicated_fraction": near_duplicated_fraction,
        "junk_fraction": junk_fraction,
        "boilerplate_fraction": boilerplate_fraction,
    }
    for name, value in fractions.items():
        check_float(name, value, low=0.0, high=1.0)
    rng = random.Random(seed)

    def paste(text: str) -> tuple[str, bool]:
        if rng.random() >= boilerplate_fraction:
            return text, False
        lines = "\n".join(rng.sample(BOILERPLATE_LINES, rng.randint(1, 2)))
        return (lines + "\n" + text if rng.random() < 0.5 else text + "\n" + lines), True

    clean = [_clean_doc(rng, i, seed) for i in range(n_clean)]
    pages = [paste(doc) for doc in clean]  # a page and its exact copies share their chrome
    docs = [text for text, _ in pages]
    kinds = ["clean"] * n_clean
    boilerplate = [pasted for _, pasted in pages]
    source = list(range(n_clean))
    for i in rng.sample(range(n_clean), round(duplicated_fraction * n_clean)):
        copies = rng.randint(1, max_copies)
        docs += [pages[i][0]] * copies
        kinds += ["exact_duplicate"] * copies
        boilerplate += [pages[i][1]] * copies
        source += [i] * copies
    for i in rng.sample(range(n_clean), round(near_duplicated_fraction * n_clean)):
        for _ in range(rng.randint(1, 3)):
            text, pasted = paste(_near_copy(rng, clean[i]))
            docs.append(text)
            kinds.append("near_duplicate")
            boilerplate.append(pasted)
            source.append(i)
    english = [d for i, d in enumerate(clean) if i % 2 == 0]
    chinese = [d for i, d in enumerate(clean) if i % 2 == 1]
    for k in range(round(junk_fraction * n_clean)):
        kind = _JUNK_KINDS[k % len(_JUNK_KINDS)]
        text, pasted = paste(_junk(rng, kind, rng.choice(english), rng.choice(chinese)))
        docs.append(text)
        kinds.append(f"junk:{kind}")
        boilerplate.append(pasted)
        source.append(-1)
    order = list(range(len(docs)))
    rng.shuffle(order)
    return DirtyCorpus(
        docs=[docs[i] for i in order],
        kinds=[kinds[i] for i in order],
        boilerplate=[boilerplate[i] for i in order],
        source=[source[i] for i in order],
    )
