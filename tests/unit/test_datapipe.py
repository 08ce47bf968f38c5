"""Tests for tutorial_code.datapipe: hashing against hashlib, MinHash against exact Jaccard and
against the datasketch library, LSH banding against a brute-force search, quality rules on
hand-made pages, the pipeline on a corpus whose every document is labelled, a pitfall test for
near-duplicate leakage, and a slice of experiments/data_cleaning.py against its stored run."""

from __future__ import annotations

import hashlib
import itertools
import json
import math
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from datasketch import MinHash, MinHashLSH

from tests.paths import load_script
from tutorial_code.corpora import chinese_text, english_text
from tutorial_code.datapipe import (
    BOILERPLATE_LINES,
    QUALITY_RULES,
    MinHasher,
    candidate_probability,
    clean_corpus,
    detect_script,
    dirty_corpus,
    estimated_jaccard,
    exact_duplicates,
    jaccard,
    lsh_candidate_pairs,
    near_duplicate_clusters,
    near_duplicate_leaks,
    normalize_text,
    quality_failures,
    repeated_lines,
    shingles,
    split_by_cluster,
    text_hash,
)

ROOT = Path(__file__).resolve().parents[2]


# --------------------------------------------------------------------------------------
# Normalisation, hashes, exact duplicates
# --------------------------------------------------------------------------------------


def test_normalize_text_folds_width_case_and_space() -> None:
    """NFKC maps full-width letters to ASCII, casefold lowers, white space collapses."""
    assert normalize_text("  Ｈello\t\tWORLD \n ﬁne ") == "hello world fine"
    assert normalize_text("你好，　世界") == "你好, 世界"  # full-width comma and space


def test_text_hash_is_sha256_of_the_normalised_utf8() -> None:
    """Reference: hashlib.sha256 applied by hand."""
    text = "Hello  World"
    assert text_hash(text) == hashlib.sha256(b"hello world").hexdigest()
    assert text_hash("HELLO world") == text_hash(text)
    assert text_hash("hello world!") != text_hash(text)


def test_exact_duplicates_keep_the_first_copy() -> None:
    docs = ["a b", "c", "A  B", "d", "c", "a b"]
    assert exact_duplicates(docs) == [2, 4, 5]
    assert exact_duplicates([]) == []


# --------------------------------------------------------------------------------------
# Shingles, Jaccard, MinHash
# --------------------------------------------------------------------------------------


def test_shingles_and_jaccard_by_hand() -> None:
    assert shingles("ABCdef", n=3) == {"abc", "bcd", "cde", "def"}
    assert shingles("ab", n=3) == {"ab"}
    assert shingles("   ", n=3) == set()
    assert shingles("数据清洗", n=2) == {"数据", "据清", "清洗"}
    assert jaccard({1, 2, 3}, {2, 3, 4}) == 0.5
    assert jaccard(set(), set()) == 1.0
    assert jaccard({1}, set()) == 0.0


def overlapping_sets(shift: int, size: int = 1000) -> tuple[set[str], set[str]]:
    """{0..size-1} and {shift..size+shift-1} as strings: Jaccard (size - shift) / (size + shift)."""
    return {f"w{i}" for i in range(size)}, {f"w{i}" for i in range(shift, size + shift)}


@pytest.mark.parametrize("shift", [0, 100, 333, 700])
def test_minhash_estimates_exact_jaccard(shift: int) -> None:
    """Reference: exact Jaccard. The estimate has standard deviation sqrt(J (1 - J) / K);
    with K = 512 four of them is at most 0.089."""
    a, b = overlapping_sets(shift)
    exact = jaccard(a, b)
    hasher = MinHasher(num_perm=512, seed=3)
    estimate = estimated_jaccard(hasher.signature(a), hasher.signature(b))
    assert abs(estimate - exact) <= 4 * math.sqrt(exact * (1 - exact) / 512) + 1e-12


def test_minhash_signature_of_a_set_is_the_minimum_of_each_hash_function() -> None:
    """Reference: (a x + b) mod p for each element, with Python integers, then min."""
    hasher = MinHasher(num_perm=8, seed=0)
    elements = {"x", "yy", "zzz"}
    values = [
        int.from_bytes(hashlib.blake2b(e.encode(), digest_size=8).digest(), "little")
        % ((1 << 31) - 1)
        for e in elements
    ]
    p = (1 << 31) - 1
    expected = [
        min((int(a) * v + int(b)) % p for v in values)
        for a, b in zip(hasher.a, hasher.b, strict=True)
    ]
    assert hasher.signature(elements).tolist() == expected
    assert hasher.signature(set()).tolist() == [p] * 8


def datasketch_minhash(shingle_set: set[str], num_perm: int) -> MinHash:
    m = MinHash(num_perm=num_perm, seed=1)
    for s in sorted(shingle_set):
        m.update(s.encode("utf-8"))
    return m


def test_minhash_agrees_with_datasketch_on_the_same_shingles() -> None:
    """Reference: datasketch's MinHash (its own hash functions) on the same 5-shingles of real
    text pairs; both estimates lie within 0.1 of the exact Jaccard and of each other."""
    base_en = english_text(1500, seed=11)
    base_zh = chinese_text(700, seed=12)
    pairs = [
        (base_en, base_en[:1200] + english_text(300, seed=13)),
        (base_zh, base_zh[100:] + chinese_text(100, seed=14)),
        (base_en, english_text(1500, seed=15)),
    ]
    hasher = MinHasher(num_perm=256, seed=1)
    for x, y in pairs:
        sx, sy = shingles(x), shingles(y)
        exact = jaccard(sx, sy)
        ours = estimated_jaccard(hasher.signature(sx), hasher.signature(sy))
        theirs = datasketch_minhash(sx, 256).jaccard(datasketch_minhash(sy, 256))
        assert abs(ours - exact) < 0.1 and abs(theirs - exact) < 0.1 and abs(ours - theirs) < 0.1


def test_lsh_candidates_agree_with_datasketch_minhash_lsh() -> None:
    """Reference: datasketch.MinHashLSH with the same bands x rows (16 x 8) on a corpus of
    near-copies (Jaccard >= 0.9) and unrelated documents (Jaccard < 0.1): both find exactly
    the near-copy pairs."""
    originals = [english_text(900, seed=20 + i) for i in range(10)] + [
        chinese_text(450, seed=40 + i) for i in range(10)
    ]
    docs = list(originals) + [d[:-20] + "!" for d in originals[::2]]  # a near-copy of every 2nd
    sets = [shingles(d) for d in docs]
    truth = {
        (i, j)
        for i, j in itertools.combinations(range(len(docs)), 2)
        if jaccard(sets[i], sets[j]) >= 0.5
    }
    assert all(jaccard(sets[i], sets[j]) >= 0.9 for i, j in truth) and len(truth) == 10
    ours = lsh_candidate_pairs(MinHasher(num_perm=128, seed=1).signatures(docs), bands=16, rows=8)
    lsh = MinHashLSH(num_perm=128, params=(16, 8))
    minhashes = [datasketch_minhash(s, 128) for s in sets]
    for i, m in enumerate(minhashes):
        lsh.insert(i, m)
    theirs = {
        tuple(sorted((i, j))) for i, m in enumerate(minhashes) for j in lsh.query(m) if j != i
    }
    assert ours == truth == theirs


def test_lsh_candidate_pairs_equal_a_brute_force_band_comparison() -> None:
    """Reference: every pair compared band by band (O(n^2)), on signatures drawn from a small
    alphabet so that bands collide often."""
    rng = np.random.default_rng(0)
    signatures = rng.integers(0, 3, size=(40, 12)).astype(np.uint64)
    bands, rows = 4, 3
    brute = {
        (i, j)
        for i, j in itertools.combinations(range(40), 2)
        if any(
            (
                signatures[i, k * rows : (k + 1) * rows] == signatures[j, k * rows : (k + 1) * rows]
            ).all()
            for k in range(bands)
        )
    }
    assert brute and lsh_candidate_pairs(signatures, bands=bands, rows=rows) == brute


def test_candidate_probability_s_curve() -> None:
    """1 - (1 - s^r)^b by hand at a few points; steep around (1/b)^(1/r)."""
    assert candidate_probability(0.5, bands=2, rows=2) == pytest.approx(1 - 0.75**2)
    assert candidate_probability(0.9, bands=16, rows=8) > 0.999
    assert candidate_probability(0.3, bands=16, rows=8) < 0.002
    midpoint = (1 / 16) ** (1 / 8)
    assert 0.4 < candidate_probability(midpoint, bands=16, rows=8) < 0.7


def test_empirical_candidate_rate_follows_the_s_curve() -> None:
    """Reference: the formula. 300 random set pairs at Jaccard 0.6, 8 bands of 4 rows: the share
    that become candidates is within 4 standard errors of 1 - (1 - 0.6^4)^8 = 0.68."""
    hasher = MinHasher(num_perm=32, seed=5)
    hits = 0
    for t in range(300):
        a = {f"{t}-{i}" for i in range(0, 400)}
        b = {f"{t}-{i}" for i in range(100, 500)}  # |a & b| = 300, |a | b| = 500
        sig = np.stack([hasher.signature(a), hasher.signature(b)])
        hits += (0, 1) in lsh_candidate_pairs(sig, bands=8, rows=4)
    p = candidate_probability(0.6, bands=8, rows=4)
    assert abs(hits / 300 - p) < 4 * math.sqrt(p * (1 - p) / 300)


def test_near_duplicate_clusters_join_copies_and_nothing_else() -> None:
    """Reference: exact Jaccard over all pairs of a labelled corpus. Pairs at >= 0.9 share a
    cluster; no pair below 0.3 does."""
    corpus = dirty_corpus(40, seed=3, junk_fraction=0.0, boilerplate_fraction=0.0, max_copies=2)
    sets = [shingles(d) for d in corpus.docs]
    clusters = near_duplicate_clusters(corpus.docs)
    for i, j in itertools.combinations(range(len(sets)), 2):
        similarity = jaccard(sets[i], sets[j])
        if similarity >= 0.9:
            assert clusters[i] == clusters[j]
        elif similarity < 0.3:
            assert clusters[i] != clusters[j]
    assert all(clusters[c] == c for c in clusters)  # a cluster's id is its first document


def test_pitfall_near_duplicates_leak_across_a_random_split() -> None:
    """A random split by document leaves near-copies of validation pages in training (checked
    with exact Jaccard); split_by_cluster leaves none."""
    corpus = dirty_corpus(
        60,
        seed=4,
        duplicated_fraction=0.0,
        near_duplicated_fraction=0.4,
        junk_fraction=0.0,
        boilerplate_fraction=0.0,
    )
    docs = corpus.docs
    rng = np.random.default_rng(0)
    order = rng.permutation(len(docs))
    val_random = set(order[: len(docs) // 5].tolist())
    train_random = [i for i in range(len(docs)) if i not in val_random]

    def leaked(train_idx, val_idx) -> int:
        train_sets = [shingles(docs[i]) for i in train_idx]
        return sum(any(jaccard(shingles(docs[v]), t) >= 0.7 for t in train_sets) for v in val_idx)

    assert leaked(train_random, sorted(val_random)) >= 3
    assert (
        len(
            near_duplicate_leaks(
                [docs[i] for i in train_random], [docs[i] for i in sorted(val_random)]
            )
        )
        >= 3
    )
    train_idx, val_idx = split_by_cluster(near_duplicate_clusters(docs), val_fraction=0.2, seed=0)
    assert len(val_idx) >= 0.2 * len(docs) and sorted(train_idx + val_idx) == list(range(len(docs)))
    assert leaked(train_idx, val_idx) == 0
    assert near_duplicate_leaks([docs[i] for i in train_idx], [docs[i] for i in val_idx]) == []


# --------------------------------------------------------------------------------------
# Script detection and quality rules
# --------------------------------------------------------------------------------------


def test_detect_script() -> None:
    assert detect_script(chinese_text(300, seed=1)).label == "zh"
    assert detect_script(english_text(300, seed=1)).label == "en"
    assert detect_script("привет мир, как дела").label == "other"
    assert detect_script("数据".encode().decode("latin-1") * 20).label == "other"  # mojibake
    assert detect_script("12345 !!! ###").label == "other"
    mixed = detect_script("abc 数据")
    assert (
        mixed.label == "other"
        and mixed.han == pytest.approx(0.4)
        and mixed.latin == pytest.approx(0.6)
    )


def test_generated_clean_pages_pass_every_rule() -> None:
    """The book's generators write pages the rules keep (at least 900 characters of English,
    450 of Chinese)."""
    for seed in range(10):
        assert quality_failures(english_text(900, seed=seed)) == []
        assert quality_failures(chinese_text(450, seed=seed)) == []


@pytest.mark.parametrize(
    ("rule", "page"),
    [
        ("word_count", "Click here to continue"),
        ("mean_word_length", " ".join(["supercalifragilistic"] * 60)),
        ("symbol_ratio", "the cat and the dog " * 12 + "#tag " * 10),
        (
            "bullets_ellipses",
            "\n".join(f"- item {i} of the list with the words" for i in range(60)),
        ),
        ("alphabetic_words", " | ".join(["cheap", "shoes"] * 40)),
        ("stop_words", " ".join(["lorem", "ipsum", "dolor", "sit", "amet"] * 20)),
        (
            "duplicate_lines",
            "\n".join(["Buy now! The offer ends today and the price is low."] * 12),
        ),
        ("c4_page", "function f(x) { return x; } " + "the value of the result is " * 10),
    ],
)
def test_each_rule_rejects_its_page(rule: str, page: str) -> None:
    assert rule in quality_failures(page)
    assert rule in QUALITY_RULES


def test_repeated_lines_count_documents_not_occurrences() -> None:
    docs = ["x\nmenu", "y\nmenu\nmenu", "z\nMENU", "w\nfooter", "v\nfooter"]
    assert repeated_lines(docs, min_docs=3) == {"menu"}
    assert repeated_lines(docs, min_docs=2) == {"menu", "footer"}


# --------------------------------------------------------------------------------------
# The corpus and the pipeline
# --------------------------------------------------------------------------------------


def test_dirty_corpus_is_deterministic_and_labelled() -> None:
    a, b = dirty_corpus(50, seed=7), dirty_corpus(50, seed=7)
    assert a == b
    kinds = Counter(k.split(":")[0] for k in a.kinds)
    assert kinds["clean"] == 50 and kinds["junk"] == round(0.25 * 50)
    assert 5 <= kinds["exact_duplicate"] <= 5 * 20 and 5 <= kinds["near_duplicate"] <= 15
    originals = {a.source[i]: a.docs[i] for i in range(len(a.docs)) if a.kinds[i] == "clean"}
    for doc, kind, src in zip(a.docs, a.kinds, a.source, strict=True):
        if kind == "exact_duplicate":
            assert doc == originals[src]


def test_clean_corpus_removes_the_junk_and_keeps_one_copy_of_almost_every_page() -> None:
    """Ground truth from the labels: no junk survives, every injected boilerplate line found,
    and at least 95% of the clean pages survive exactly once."""
    corpus = dirty_corpus(200, seed=0)
    result = clean_corpus(corpus.docs)
    assert sorted(result.kept + [i for r in result.removed.values() for i in r]) == list(
        range(len(corpus.docs))
    )
    assert not any(corpus.kinds[i].startswith("junk") for i in result.kept)
    kept_sources = Counter(corpus.source[i] for i in result.kept)
    assert sum(c == 1 for c in kept_sources.values()) >= 0.95 * 200
    boilerplate = {normalize_text(line) for line in BOILERPLATE_LINES}
    assert boilerplate <= result.boilerplate_lines
    assert not any(
        normalize_text(line) in boilerplate for doc in result.docs for line in doc.splitlines()
    )
    assert result.chars_out < result.chars_in


# --------------------------------------------------------------------------------------
# The stored experiment
# --------------------------------------------------------------------------------------


def test_rerunning_the_cleaning_stage_reproduces_the_stored_statistics() -> None:
    """A slice of experiments/data_cleaning.py: its corpus and cleaning (no training) give the
    stored statistics exactly; the stored training runs show cleaning helping on every seed."""
    module = load_script("experiments/data_cleaning.py")
    stored = json.loads(
        (ROOT / "experiments" / "results" / "data_cleaning.json").read_text(encoding="utf-8")
    )
    corpora = module.build_corpora(stored["corpus"], stored["heldout"])
    assert module.cleaning_statistics(corpora) == stored["cleaning"]
    assert len(stored["seeds"]) >= 3
    assert all(d > 0 for d in stored["raw_minus_cleaned_both"])


def test_bad_inputs_raise_clear_errors() -> None:
    with pytest.raises(TypeError, match="docs must be a sequence of str"):
        exact_duplicates("one document")
    with pytest.raises(TypeError, match=r"docs\[1\] must be a str"):
        exact_duplicates(["a", 3])
    with pytest.raises(ValueError, match="n must be an int >= 1"):
        shingles("abc", n=0)
    with pytest.raises(TypeError, match="must be sets"):
        jaccard([1], {1})
    with pytest.raises(ValueError, match="num_perm"):
        MinHasher(num_perm=0)
    with pytest.raises(TypeError, match="shingle_set must be a set"):
        MinHasher().signature(["a"])
    with pytest.raises(ValueError, match="exceeds the signature length"):
        lsh_candidate_pairs(np.zeros((3, 8), dtype=np.uint64), bands=4, rows=4)
    with pytest.raises(ValueError, match="similarity"):
        candidate_probability(1.5, bands=2, rows=2)
    with pytest.raises(ValueError, match="min_share"):
        detect_script("abc", min_share=0.0)
    with pytest.raises(ValueError, match="val_fraction"):
        split_by_cluster([0, 0, 2], val_fraction=0.0)
    with pytest.raises(ValueError, match="min_docs"):
        repeated_lines(["a"], min_docs=1)
    with pytest.raises(ValueError, match="n_clean"):
        dirty_corpus(1)
    with pytest.raises(ValueError, match="junk_fraction"):
        dirty_corpus(10, junk_fraction=2.0)
