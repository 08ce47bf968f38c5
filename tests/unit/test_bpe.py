"""tutorial_code.bpe: the textbook algorithm, naive vs fast training, GPT-2 parity, pitfalls.

Independent references used here: merges derived by hand on the classic toy corpus of Sennrich et al. (2016); the naive
trainer (recount everything) for the fast one; a slow encoder that replays every merge in
training order for the rank-based encoder; tiktoken's GPT-2 encoding for
``ByteBPETokenizer.from_tiktoken``; the `regex` module for the `re` shortcut.
"""

from __future__ import annotations

import inspect
import json
import random
import re
from collections import Counter
from pathlib import Path

import pytest
import regex
import tiktoken
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.paths import load_script
from tutorial_code import bpe
from tutorial_code.bpe import (
    GPT2_PATTERN,
    ByteBPETokenizer,
    WordBPE,
    longest_match_pieces,
    pretokenize,
    train_bpe,
)
from tutorial_code.corpora import chinese_text, english_text, tiny_stories
from tutorial_code.data import gpt2_encoding

ROOT = Path(__file__).resolve().parents[2]
TOY = ["low", "low", "low", "lower", "newest", "widest"]  # the toy corpus of Sennrich et al. (2016)

# A varied corpus for tiktoken parity: prose, code, Chinese, numbers, whitespace runs, emoji.
CODE = inspect.getsource(bpe)
NUMBERS = "3.14159 1,234,567 -42 2024-01-31 12:30pm 0x1F 1e-9 ½ ² ٣ 一二三 Ⅻ 100%"
WHITESPACE = "a  b\t\tc\n\n\n  d   \r\n e \u00a0f\u3000g\u2028h \x0b\x0ci\x1c\x1dj  \n"
EMOJI = "😀👍🏽👨\u200d👩\u200d👧 ❤️ 🇨🇳🇺🇸 é (e\u0301) ﬁ Ω"
CONTRACTIONS = "don't DON'T it's IT'S we'll we've I'm she'd they're o'clock rock'n'roll ’s"
SPECIAL = "<|endoftext|> is ordinary text for encode_ordinary"
VARIED = {
    "english": english_text(20_000, seed=7),
    "code": CODE,
    "chinese": chinese_text(5_000, seed=7),
    "numbers": NUMBERS,
    "whitespace": WHITESPACE,
    "emoji": EMOJI,
    "contractions": CONTRACTIONS,
    "special": SPECIAL,
    "mixed": "Hello world, 你好！" + EMOJI + NUMBERS + "   \n",
}

# Characters that exercise every alternative of the pattern and every UTF-8 length.
INTERESTING = st.sampled_from(
    list(" \t\n\r\x0b\x0c\x1c\x85\u00a0\u2028\u3000'’sdtlmvre-.,!?0123456789Aaé中文😀\u0301\u200d٣Ⅻ")
)
TEXT = st.one_of(st.text(max_size=120), st.text(INTERESTING, max_size=120))


@pytest.fixture(scope="module")
def gpt2() -> ByteBPETokenizer:
    return ByteBPETokenizer.from_tiktoken("gpt2")


@pytest.fixture(scope="module")
def tiktoken_gpt2() -> tiktoken.Encoding:
    return gpt2_encoding()


@pytest.fixture(scope="module")
def mixed_tokenizer() -> ByteBPETokenizer:
    text = english_text(20_000, seed=1) + chinese_text(5_000, seed=1) + EMOJI * 20
    return train_bpe(text, 256 + 400)


def merges_and_counts(text: str, num_merges: int, method: str) -> tuple[list, list]:
    chunks = [c.encode("utf-8") for c in pretokenize(text)]
    if method == "naive":
        return bpe._train_naive(chunks, num_merges)
    return bpe._train_fast(Counter(chunks), num_merges)


def replay_encode(tokenizer: ByteBPETokenizer, text: str) -> list[int]:
    """Slow reference: apply every merge, in training order, to each chunk's bytes."""
    out = []
    for chunk in regex.findall(GPT2_PATTERN, text):
        ids = [tokenizer.byte_ids[b] for b in chunk.encode("utf-8")]
        for rank, pair in enumerate(tokenizer.merges, start=256):
            if len(ids) < 2:
                break
            ids = bpe._merge(ids, pair, rank)
        out += ids
    return out


# --------------------------------------------------------------------------------------
# WordBPE on the toy corpus of Sennrich et al. (2016)
# --------------------------------------------------------------------------------------


def test_word_bpe_toy_corpus_by_hand() -> None:
    # Pairs in low</w> x3, lower</w>, newest</w>, widest</w>: (l,o) and (o,w) occur 3+1 = 4
    # times, a tie broken by the smaller pair (l,o). Then (lo,w): 4, (low,</w>): 3. Next,
    # (e,s), (es,t), (est,</w>) occur twice (newest, widest).
    model = WordBPE().train(TOY, 6)
    assert model.merges == [
        ("l", "o"), ("lo", "w"), ("low", "</w>"), ("e", "s"), ("es", "t"), ("est", "</w>"),
    ]
    assert model.merge_counts == [4, 4, 3, 2, 2, 2]
    assert model.encode("lower widest") == ["low", "e", "r", "</w>", "w", "i", "d", "est</w>"]
    assert model.encode("low") == ["low</w>"]


def test_word_bpe_pair_counts_match_a_hand_count() -> None:
    counts = WordBPE.pair_counts(WordBPE.split_words(TOY))
    assert counts[("l", "o")] == 4 and counts[("w", "</w>")] == 3 and counts[("w", "e")] == 2
    assert sum(counts.values()) == 3 * 3 + 5 + 6 + 6  # len(word) pairs per word (with </w>)


def test_word_bpe_prefix_of_merges_is_a_shorter_training() -> None:
    full = WordBPE().train(TOY, 10)
    for k in range(11):
        assert WordBPE().train(TOY, k).merges == full.merges[:k]
    assert WordBPE(full.merges[:3]).encode("lowest") == ["low", "e", "s", "t", "</w>"]
    assert WordBPE(full.merges[:3], alphabet=full.alphabet).vocab == full.alphabet | {
        "".join(pair) for pair in full.merges[:3]
    }
    with pytest.raises(RuntimeError, match="vocab needs the alphabet"):
        _ = WordBPE(full.merges[:3]).vocab


def test_word_bpe_unseen_character_is_out_of_vocabulary() -> None:
    """Pitfall: a character-level base vocabulary still has OOV symbols; bytes do not."""
    model = WordBPE().train(TOY, 10)
    tokens = model.encode("low🙂")
    assert "🙂" in tokens and "🙂" not in model.vocab
    byte_level = train_bpe(" ".join(TOY), 256 + 10)
    assert byte_level.decode(byte_level.encode("low🙂")) == "low🙂"


def test_tie_rule_makes_merges_independent_of_word_order() -> None:
    """Pitfall: Counter.most_common breaks ties by first occurrence, so a trainer built on it
    learns different merges from the same words in another order; ours does not."""

    def most_common_first_merge(words: list[str]) -> tuple[str, str]:
        return WordBPE.pair_counts(WordBPE.split_words(words)).most_common(1)[0][0]

    words = ["ba", "ab"]  # four pairs, each occurring once: a four-way tie
    assert most_common_first_merge(words) != most_common_first_merge(words[::-1])
    assert WordBPE().train(words, 3).merges == WordBPE().train(words[::-1], 3).merges
    assert WordBPE().train(words, 1).merges == [("a", "</w>")]  # '<' sorts before letters

    chunks = [c.encode() for c in pretokenize(english_text(5_000, seed=3))]
    shuffled = chunks[:]
    random.Random(0).shuffle(shuffled)
    for train, data in [(bpe._train_naive, chunks), (bpe._train_fast, Counter(chunks))]:
        shuffled_data = shuffled if train is bpe._train_naive else Counter(shuffled)
        assert train(data, 150) == train(shuffled_data, 150)


# --------------------------------------------------------------------------------------
# Byte-level training: naive and fast agree
# --------------------------------------------------------------------------------------

CORPORA = {
    "english": english_text(10_000, seed=1),
    "chinese": chinese_text(3_000, seed=2),
    "emoji": "😀😀😀 👍🏽👍🏽 🙂 👨\u200d👩\u200d👧 " * 30 + EMOJI,
    "repeats": "aaaa aaaaa aaaaaaa abababab ababa xxxxx " * 5,  # overlapping pairs
    "stories": tiny_stories(50, seed=4),
    "code": CODE[:8_000],
}


@pytest.mark.parametrize("name", sorted(CORPORA))
def test_naive_and_fast_learn_identical_merges_and_counts(name: str) -> None:
    text = CORPORA[name]
    naive = merges_and_counts(text, 300, "naive")
    fast = merges_and_counts(text, 300, "fast")
    assert fast == naive and len(fast[0]) >= 10


def test_train_bpe_methods_agree() -> None:
    text = CORPORA["stories"] + CORPORA["emoji"]
    assert train_bpe(text, 456, method="fast").merges == train_bpe(text, 456, method="naive").merges


@settings(max_examples=150, deadline=None)
@given(st.text(st.sampled_from(list("aab b\n😀中")), max_size=80), st.integers(0, 40))
def test_naive_and_fast_agree_on_random_small_alphabet_text(text: str, num_merges: int) -> None:
    """Small alphabets make many ties and overlapping pairs such as (a, a)."""
    fast = merges_and_counts(text, num_merges, "fast")
    assert fast == merges_and_counts(text, num_merges, "naive")


def test_overlapping_pairs_are_counted_like_a_recount() -> None:
    """Pitfall: 'aaa' holds the pair (a, a) twice but merges only once, into [aa, a]."""
    merges, counts = merges_and_counts("aaa", 2, "fast")
    assert merges == [(97, 97), (256, 97)] and counts == [2, 1]
    assert bpe._merge([97, 97, 97], (97, 97), 256) == [256, 97]
    assert bpe._merge([97, 97, 97, 97], (97, 97), 256) == [256, 256]


def test_training_stops_when_no_pair_is_left() -> None:
    tokenizer = train_bpe("ab ab", 1000)
    assert tokenizer.merges == [(97, 98), (32, 256)]  # 'ab', then ' ab'
    assert tokenizer.n_vocab == 258


def test_shorter_training_is_a_prefix() -> None:
    text = CORPORA["english"]
    assert train_bpe(text, 300).merges == train_bpe(text, 700).merges[:44]


def test_merges_never_cross_chunks() -> None:
    text = CORPORA["english"]
    tokenizer = train_bpe(text, 600)
    chunks = {chunk.encode() for chunk in pretokenize(text)}
    for token in range(256, tokenizer.n_vocab):
        data = tokenizer.decode_single_token_bytes(token)
        assert any(data in chunk for chunk in chunks), f"token {token} {data!r} is in no chunk"
        assert not re.search(rb"[A-Za-z0-9.,!?] ", data), f"token {token} {data!r} spans words"


# --------------------------------------------------------------------------------------
# Encoding and decoding
# --------------------------------------------------------------------------------------


@settings(max_examples=200, deadline=None)
@given(TEXT)
def test_rank_encoding_equals_replaying_merges(mixed_tokenizer, text: str) -> None:
    assert mixed_tokenizer.encode(text) == replay_encode(mixed_tokenizer, text)


@settings(max_examples=300, deadline=None)
@given(TEXT)
def test_decode_inverts_encode_for_any_text(mixed_tokenizer, gpt2, text: str) -> None:
    assert mixed_tokenizer.decode(mixed_tokenizer.encode(text)) == text
    assert gpt2.decode(gpt2.encode(text)) == text


def test_decoding_token_by_token_breaks_characters(gpt2: ByteBPETokenizer) -> None:
    """Pitfall: one Chinese character is 3 UTF-8 bytes, often split across tokens; decoding
    each token on its own gives U+FFFD. Decode the whole list, or concatenate bytes."""
    ids = gpt2.encode("你好")
    pieces = [gpt2.decode([i]) for i in ids]
    assert len(ids) > 2 and "\ufffd" in "".join(pieces)
    assert b"".join(gpt2.decode_single_token_bytes(i) for i in ids).decode() == "你好"
    assert gpt2.decode_bytes(ids) == "你好".encode()


def test_bpe_is_not_longest_match(gpt2: ByteBPETokenizer) -> None:
    """Pitfall: encoding by merge rank is not greedy longest-prefix matching."""
    for word, bpe_pieces, greedy_pieces in [
        (" gentleness", [b" gent", b"leness"], [b" gentle", b"ness"]),
        (" 639", [b" 6", b"39"], [b" 63", b"9"]),
    ]:
        assert [gpt2.decode_single_token_bytes(i) for i in gpt2.encode(word)] == bpe_pieces
        assert longest_match_pieces(gpt2, word.encode()) == greedy_pieces


def test_lone_surrogates_become_replacement_characters(gpt2, tiktoken_gpt2) -> None:
    for text in ["\ud800", "a\udfffb", "\ud83d\ude00"]:  # the last is a pair: it becomes 😀
        assert gpt2.encode(text) == tiktoken_gpt2.encode_ordinary(text)
    assert gpt2.decode(gpt2.encode("a\ud800b")) == "a\ufffdb"


def test_save_and_load_round_trip(tmp_path: Path, mixed_tokenizer: ByteBPETokenizer) -> None:
    path = tmp_path / "tokenizer.json"
    mixed_tokenizer.save(path)
    loaded = ByteBPETokenizer.load(path)
    assert loaded.merges == mixed_tokenizer.merges and loaded.byte_ids == mixed_tokenizer.byte_ids
    text = VARIED["mixed"] + VARIED["english"][:2000]
    assert loaded.encode(text) == mixed_tokenizer.encode(text)


# --------------------------------------------------------------------------------------
# GPT-2 parity with tiktoken
# --------------------------------------------------------------------------------------


def test_from_tiktoken_has_gpt2_vocabulary(gpt2, tiktoken_gpt2) -> None:
    assert gpt2.n_vocab == 50256 == tiktoken_gpt2.n_vocab - 1  # <|endoftext|> is special
    assert len(gpt2.merges) == 50000
    assert gpt2.encode("Hello world, 你好!") == [15496, 995, 11, 220, 19526, 254, 25001, 121, 0]
    for token in (0, 255, 256, 1000, 50255):
        ours = gpt2.decode_single_token_bytes(token)
        assert ours == tiktoken_gpt2.decode_single_token_bytes(token)


@pytest.mark.parametrize("name", sorted(VARIED))
def test_gpt2_encoding_equals_tiktoken(name: str, gpt2, tiktoken_gpt2) -> None:
    text = VARIED[name]
    ids = tiktoken_gpt2.encode_ordinary(text)
    assert gpt2.encode(text) == ids
    assert gpt2.decode(ids) == tiktoken_gpt2.decode(ids)


@settings(max_examples=400, deadline=None)
@given(TEXT)
def test_gpt2_encoding_equals_tiktoken_on_generated_text(gpt2, tiktoken_gpt2, text: str) -> None:
    assert gpt2.encode(text) == tiktoken_gpt2.encode_ordinary(text)


def test_gpt2_encoding_equals_tiktoken_on_every_code_point(gpt2, tiktoken_gpt2) -> None:
    """Every code point (surrogates excepted), in pairs after a space: this catches a letter,
    number or whitespace class on which `regex` and tiktoken's Rust regex disagree."""
    code_points = [c for c in range(0x110000) if not 0xD800 <= c <= 0xDFFF]
    for start in range(0, len(code_points), 8192):
        run = "".join(map(chr, code_points[start : start + 8192]))
        text = " ".join(run[i : i + 2] for i in range(0, len(run), 2))
        assert gpt2.encode(text) == tiktoken_gpt2.encode_ordinary(text), f"block at U+{start:04X}"


def test_special_token_text_is_ordinary(gpt2: ByteBPETokenizer) -> None:
    assert 50256 not in gpt2.encode("<|endoftext|>")
    with pytest.raises(ValueError, match="outside the vocabulary"):
        gpt2.decode([50256])


def test_special_token_text_in_two_failure_modes(gpt2, tiktoken_gpt2) -> None:
    """Reference: tiktoken's own encode(). Text containing "<|endoftext|>" literally either
    crashes a pipeline (encode() disallows it by default) or, once special tokens are allowed,
    becomes the control id 50256; both id lists decode to the same string."""
    text = "a post about the <|endoftext|> marker"
    with pytest.raises(ValueError, match="disallowed special token"):
        tiktoken_gpt2.encode(text)
    injected = tiktoken_gpt2.encode(text, allowed_special="all")
    assert injected == tiktoken_gpt2.encode(text, allowed_special={"<|endoftext|>"})
    assert injected.count(50256) == 1 and tiktoken_gpt2.eot_token == 50256
    ordinary = tiktoken_gpt2.encode(text, disallowed_special=())
    assert ordinary == tiktoken_gpt2.encode_ordinary(text) == gpt2.encode(text)
    assert 50256 not in ordinary and len(ordinary) > len(injected)
    assert tiktoken_gpt2.decode(injected) == tiktoken_gpt2.decode(ordinary) == text
    assert tiktoken_gpt2.n_vocab == 50257  # ids 0 .. 50255 ordinary, 50256 special


# --------------------------------------------------------------------------------------
# Pre-tokenization
# --------------------------------------------------------------------------------------


@settings(max_examples=300, deadline=None)
@given(TEXT)
def test_pattern_matches_tiktokens_and_covers_the_text(tiktoken_gpt2, text: str) -> None:
    chunks = regex.findall(GPT2_PATTERN, text)
    assert "".join(chunks) == text
    assert chunks == regex.findall(tiktoken_gpt2._pat_str, text)  # tiktoken's faster rewrite


@settings(max_examples=300, deadline=None)
@given(st.text(st.characters(max_codepoint=127), max_size=120))
def test_ascii_shortcut_gives_the_same_chunks(text: str) -> None:
    assert pretokenize(text) == regex.findall(GPT2_PATTERN, text)


def test_gpt2_pattern_alternatives() -> None:
    assert pretokenize("I'll say it's 42 dollars!!  Ok\n\n") == [
        "I", "'ll", " say", " it", "'s", " 42", " dollars", "!!", " ", " Ok", "\n\n",
    ]
    # Contractions are matched only in lower case with an ASCII apostrophe (GPT-2's quirk).
    assert pretokenize("DON'T") == ["DON", "'", "T"] and pretokenize("don’t") == ["don", "’", "t"]
    # Chinese has no spaces: a whole clause is one chunk of letters.
    assert pretokenize("我们今天去公园，好吗？") == ["我们今天去公园", "，", "好吗", "？"]


def test_builtin_re_is_not_a_drop_in_replacement() -> None:
    """Pitfall: Python's `re` has no \\p{L}, and its Unicode \\s also matches \\x1c-\\x1f,
    which are not White_Space; an `re` approximation of the pattern splits text differently."""
    with pytest.raises(re.error):
        re.compile(GPT2_PATTERN)
    approx = r"""'s|'t|'re|'ve|'m|'ll|'d| ?[^\W\d_]+| ?\d+| ?[^\s\w]+|\s+(?!\S)|\s+"""
    text = "a \x1cb"
    assert regex.findall(GPT2_PATTERN, text) == ["a", " \x1c", "b"]
    assert re.findall(approx, text) == ["a", " ", "\x1c", "b"]


# --------------------------------------------------------------------------------------
# Errors
# --------------------------------------------------------------------------------------


def test_errors_name_the_argument(gpt2: ByteBPETokenizer) -> None:
    with pytest.raises(ValueError, match="vocab_size must be >= 256"):
        train_bpe("abc", 255)
    with pytest.raises(TypeError, match="vocab_size must be an int"):
        train_bpe("abc", 300.0)
    with pytest.raises(ValueError, match="method must be 'fast' or 'naive'"):
        train_bpe("abc", 300, method="heap")
    with pytest.raises(TypeError, match="text must be a str, got bytes"):
        train_bpe(b"abc", 300)
    with pytest.raises(TypeError, match="text must be a str, got bytes"):
        gpt2.encode(b"abc")
    with pytest.raises(TypeError, match="text must be a str, got NoneType"):
        gpt2.encode(None)
    with pytest.raises(ValueError, match=r"id 50256 is outside the vocabulary \[0, 50256\)"):
        gpt2.decode([15496, 50256])
    with pytest.raises(ValueError, match=r"id -1 is outside the vocabulary"):
        gpt2.decode([-1])
    with pytest.raises(TypeError, match="ids must be ints"):
        gpt2.decode(["a"])
    with pytest.raises(ValueError, match="name must be 'gpt2' or 'r50k_base'"):
        ByteBPETokenizer.from_tiktoken("cl100k_base")
    with pytest.raises(ValueError, match="byte_ids must be a permutation"):
        ByteBPETokenizer([], byte_ids=[0] * 256)
    with pytest.raises(ValueError, match=r"merges\[1\] = \(300, 1\) must be a pair of ids"):
        ByteBPETokenizer([(1, 2), (300, 1)])
    with pytest.raises(TypeError, match="iterable of words"):
        WordBPE().train("low lower", 3)
    with pytest.raises(ValueError, match="num_merges must be >= 0"):
        WordBPE().train(TOY, -1)


def test_load_rejects_other_files(tmp_path: Path) -> None:
    path = tmp_path / "other.json"
    path.write_text(json.dumps({"merges": []}), encoding="utf-8")
    with pytest.raises(ValueError, match="not a file written by ByteBPETokenizer.save"):
        ByteBPETokenizer.load(path)


# --------------------------------------------------------------------------------------
# Generated corpora and the stored benchmark
# --------------------------------------------------------------------------------------


def test_generated_corpora_are_exact_and_deterministic() -> None:
    assert len(english_text(12_345, seed=5)) == 12_345 and english_text(12_345, seed=5).isascii()
    assert english_text(5_000, seed=5) == english_text(5_000, seed=5) != english_text(5_000, seed=6)
    zh = chinese_text(3_000, seed=5)
    assert len(zh) == 3_000 and zh == chinese_text(3_000, seed=5)
    assert sum("\u4e00" <= c <= "\u9fff" for c in zh) > 0.7 * len(zh)
    for generator in (english_text, chinese_text):
        with pytest.raises(ValueError, match="n_chars must be an int >= 1"):
            generator(0)
    # a prefix of the same stream: asking for more never changes what came before
    assert english_text(20_000, seed=5)[:12_345] == english_text(12_345, seed=5)


@settings(max_examples=60, deadline=None)
@given(n=st.integers(1, 3_000), seed=st.integers(0, 3))
def test_generated_corpora_have_exactly_n_chars(n: int, seed: int) -> None:
    # Regression: the length count once included a separator after the last paragraph,
    # so e.g. english_text(355) had 353 characters and chinese_text(84) had 83.
    assert len(english_text(n, seed=seed)) == n
    assert len(chinese_text(n, seed=seed)) == n


def load_benchmark_script():
    """benchmarks/bpe.py as a module (the benchmarks folder is not a package)."""
    return load_script("benchmarks/bpe.py")


STORED_BENCHMARK = ROOT / "benchmarks" / "results" / "bpe.json"


def test_stored_benchmark_meets_the_bars() -> None:
    """Documentation check: the stored run of benchmarks/bpe.py, which the chapter quotes, is a
    full run (naive not extrapolated) and meets the bars on the English text; on both texts the
    naive and fast merges and our and tiktoken's ids were identical."""
    result = json.loads(STORED_BENCHMARK.read_text(encoding="utf-8"))
    assert set(result["runs"]) == {"english", "high_entropy"}
    for run in result["runs"].values():
        assert run["config"]["text_bytes"] == 1_000_000 and run["config"]["merges"] == 500
        assert run["config"]["naive_merges_timed"] == 500
        assert not run["config"]["naive_extrapolated"]
        assert run["training"]["merges_identical_naive_vs_fast"]
        assert run["encoding"]["ids_identical"]
    english = result["runs"]["english"]
    assert english["ratios"]["naive_over_fast"] >= 100
    assert english["ratios"]["fast_over_hf_tokenizers"] <= 1.5
    assert english["ratios"]["ours_over_tiktoken_encode"] <= 4
    assert all(english["bars_met"].values())
    assert {"cpu", "cores", "python", "torch", "tiktoken", "tokenizers"} <= result["machine"].keys()


@pytest.mark.parametrize("name", ["english", "high_entropy"])
def test_stored_benchmark_describes_the_texts_the_script_makes(name: str, tiktoken_gpt2) -> None:
    """The stored chunk counts and token count are recomputed from the script's own text
    generator, pretokenize and tiktoken (independent of our encoder), so the stored run matches
    the code as it is now."""
    script = load_benchmark_script()
    stored = json.loads(STORED_BENCHMARK.read_text(encoding="utf-8"))["runs"][name]
    _, make = script.CORPORA[name]
    text = make(script.TEXT_BYTES)
    described = script.describe(text)
    assert {key: stored["config"][key] for key in described} == described
    assert len(tiktoken_gpt2.encode_ordinary(text)) == stored["encoding"]["tokens"]


def test_high_entropy_text_is_exact_and_varied() -> None:
    """By hand: exactly n bytes, deterministic per seed, every script present, and far more
    distinct chunks per chunk than the generated English."""
    script = load_benchmark_script()
    def make(seed: int) -> str:
        return script.high_entropy_text(50_000, seed=seed, vocab_size=50_000)

    text = make(3)
    assert len(text.encode("utf-8")) == 50_000 and text == make(3) != make(4)
    for _, alphabet, _, _ in script.SCRIPTS.values():
        assert any(c in alphabet for c in text if not c.isascii() or c.isalnum())
    high = script.describe(script.high_entropy_text(200_000, seed=3))
    english = script.describe(english_text(200_000, seed=3))
    share = {
        name: (d["distinct_chunks"] / d["chunks"], d["distinct_chunk_bytes"] / d["text_bytes"])
        for name, d in [("high", high), ("english", english)]
    }
    assert share["high"][0] > 3 * share["english"][0] and share["high"][1] > 2.5 * share["english"][1]


@pytest.mark.parametrize("name", ["english", "high_entropy"])
def test_benchmark_slice_trains_and_encodes_like_the_references(name: str, gpt2, tiktoken_gpt2) -> None:
    """A short slice of the benchmark: the naive trainer for the fast one, tiktoken for our
    encoder, and Hugging Face tokenizers' trainer for the set of merges learned."""
    script = load_benchmark_script()
    text = script.CORPORA[name][1](20_000)
    run = script.measure(
        text, merges=30, repeats=1, naive_merges=30, gpt2=gpt2, reference=tiktoken_gpt2, log=lambda _: None
    )
    assert run["training"]["merges_identical_naive_vs_fast"]
    assert run["encoding"]["ids_identical"]
    assert run["encoding"]["tokens"] == len(tiktoken_gpt2.encode_ordinary(text))
    assert not run["config"]["naive_extrapolated"]
    assert run["training"]["hf_merges_in_common"] >= 20  # same counts, ties ordered by other ids
    assert set(run["ratios"]) == set(script.BARS)


def test_longest_match_pieces_rejects_text(gpt2: ByteBPETokenizer) -> None:
    with pytest.raises(TypeError, match="data must be bytes"):
        longest_match_pieces(gpt2, " gentleness")  # type: ignore[arg-type]
