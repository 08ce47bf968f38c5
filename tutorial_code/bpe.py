"""Byte-pair encoding (BPE): the textbook algorithm, a fast byte-level trainer, and an encoder
that reproduces GPT-2's token ids exactly.

BPE was a compression method (Gage, 1994): replace the most frequent pair of adjacent
symbols by a new symbol, and repeat. Sennrich, Haddow & Birch (2016, Algorithm 1) used it to
learn a subword vocabulary: start from characters, and every merge adds one symbol to the
vocabulary. GPT-2 (Radford et al., 2019, section 2.2) runs it on UTF-8 *bytes* instead of
characters, so any text can be encoded with a base vocabulary of 256, and first splits text
into chunks with a regular expression so that merges never cross a chunk boundary.

* :class:`WordBPE` is the textbook, character-level algorithm on a list of words (each word
  ends with ``</w>``; every merge recounts every pair). It is the teaching baseline.
* :func:`train_bpe` learns a byte-level :class:`ByteBPETokenizer` from text with GPT-2's
  pre-tokenization. ``method="naive"`` recounts every pair of the whole corpus for every
  merge; ``method="fast"`` deduplicates the chunks, keeps pair counts up to date
  incrementally, indexes which chunks contain each pair and finds the best pair with a heap.
* :meth:`ByteBPETokenizer.from_tiktoken` loads GPT-2's merges; its ``encode`` equals
  ``tiktoken.get_encoding("gpt2").encode_ordinary`` on any text.

**The tie rule.** Several pairs often share the highest count. Every trainer here merges the
pair with the highest count and, among those, the *smallest pair*: the smallest left symbol,
then the smallest right symbol (ids for bytes, Python string order for :class:`WordBPE`).
Under this rule ``method="naive"`` and ``method="fast"`` learn identical merges in identical
order. Other libraries break ties differently (e.g. by first occurrence, or by the bytes of
the merged token), which is why two correct trainers can disagree on a small corpus.
"""

from __future__ import annotations

import heapq
import json
import re
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping, Sequence
from itertools import chain, repeat
from pathlib import Path
from typing import Any

import regex

from tutorial_code.data import gpt2_encoding

__all__ = [
    "GPT2_PATTERN",
    "ByteBPETokenizer",
    "WordBPE",
    "longest_match_pieces",
    "pretokenize",
    "train_bpe",
]

# GPT-2's pre-tokenization pattern, as in OpenAI's gpt-2/src/encoder.py. Alternatives, tried
# left to right at each position: English contractions; an optional space plus a run of
# letters; an optional space plus a run of digits; an optional space plus a run of other
# symbols; whitespace not followed by a non-space (so the last space of a run stays with the
# next word); any other whitespace. \p{L} and \p{N} need the `regex` package, not `re`.
GPT2_PATTERN = r"""'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"""

_FORMAT = "tutorial_code.bpe.ByteBPETokenizer"
_NEVER = 1 << 62  # the rank of a pair that was never merged
# On pure-ASCII text GPT2_PATTERN's classes are ASCII ranges: \p{L} is [A-Za-z], \p{N} is [0-9]
# and \s (Unicode White_Space) is [ \t\n\r\f\v]. Python's built-in `re` then gives the same
# chunks about twice as fast as `regex`; tests/unit/test_bpe.py checks the equivalence.
_GPT2_ASCII = re.compile(
    r"""'s|'t|'re|'ve|'m|'ll|'d| ?[A-Za-z]+| ?[0-9]+| ?[^\sA-Za-z0-9]+|\s+(?!\S)|\s+""", re.ASCII
)


def _split(text: str, pattern: str, compiled: regex.Pattern[str] | None = None) -> list[str]:
    """``regex.findall(pattern, text)``, with the `re` shortcut for GPT-2's pattern on ASCII."""
    if pattern == GPT2_PATTERN and text.isascii():
        return _GPT2_ASCII.findall(text)
    return (compiled or regex.compile(pattern)).findall(text)


def _check_int(value: Any, name: str, *, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be an int, got {type(value).__name__}")
    if value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value}")
    return value


def _check_text(text: Any, name: str = "text") -> str:
    if not isinstance(text, str):
        raise TypeError(f"{name} must be a str, got {type(text).__name__}")
    return text


def _without_surrogates(text: str) -> str:
    """``text`` with lone surrogates replaced by U+FFFD (what tiktoken does), so it has UTF-8 bytes.

    A surrogate pair written as two code points becomes the character it encodes.
    """
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return text.encode("utf-16", "surrogatepass").decode("utf-16", "replace")
    return text


def pretokenize(text: str, *, pattern: str = GPT2_PATTERN) -> list[str]:
    """Split ``text`` into the chunks that BPE works inside (GPT-2: ``GPT2_PATTERN``).

    With ``GPT2_PATTERN`` the chunks concatenate back to ``text`` (every character matches
    one alternative); a custom ``pattern`` that skips characters drops them.
    """
    return _split(_check_text(text), pattern)


def _merge(ids: list[int], pair: tuple[int, int], new_id: int) -> list[int]:
    """Replace every occurrence of ``pair`` in ``ids``, scanning left to right, by ``new_id``.

    Occurrences cannot overlap: ``[7, 7, 7]`` with pair ``(7, 7)`` gives ``[new_id, 7]``.
    """
    a, b = pair
    out: list[int] = []
    i, n = 0, len(ids)
    while i < n:
        if ids[i] == a and i + 1 < n and ids[i + 1] == b:
            out.append(new_id)
            i += 2
        else:
            out.append(ids[i])
            i += 1
    return out


# --------------------------------------------------------------------------------------
# The textbook algorithm on words
# --------------------------------------------------------------------------------------


class WordBPE:
    """Character-level BPE on words, as in Sennrich et al. (2016, Algorithm 1).

    Each word becomes its characters plus the end-of-word marker ``</w>`` (so "low" as a word
    and "low" inside "lower" are different symbols once merged). Training counts every
    adjacent pair over all words (weighted by how often each word occurs), merges the most
    frequent pair everywhere, and repeats; ties go to the smallest pair in string order.

    Args:
        merges: merges learned earlier, in order (e.g. ``other.merges[:k]``).
        alphabet: the single symbols of the training words (``other.alphabet``); needed
            only for :attr:`vocab`, and set by :meth:`train`.
    """

    END_OF_WORD = "</w>"

    def __init__(
        self, merges: Sequence[tuple[str, str]] = (), *, alphabet: Iterable[str] = ()
    ) -> None:
        self.merges: list[tuple[str, str]] = [tuple(m) for m in merges]  # type: ignore[misc]
        self.merge_counts: list[int] = []
        self.alphabet: set[str] = set(alphabet)

    @classmethod
    def split_words(cls, words: Iterable[str]) -> Counter[tuple[str, ...]]:
        """Each distinct word as a tuple of characters plus ``</w>``, with its count."""
        if isinstance(words, str):
            raise TypeError("words must be an iterable of words (e.g. text.split()), not a str")
        counts: Counter[tuple[str, ...]] = Counter()
        for word in words:
            _check_text(word, "each word")
            if word:
                counts[(*word, cls.END_OF_WORD)] += 1
        return counts

    @staticmethod
    def pair_counts(word_counts: Mapping[tuple[str, ...], int]) -> Counter[tuple[str, str]]:
        """How often each adjacent pair of symbols occurs, weighted by word frequency."""
        pairs: Counter[tuple[str, str]] = Counter()
        for symbols, count in word_counts.items():
            for pair in zip(symbols, symbols[1:]):
                pairs[pair] += count
        return pairs

    @staticmethod
    def merge_word(symbols: tuple[str, ...], pair: tuple[str, str]) -> tuple[str, ...]:
        """``symbols`` with every occurrence of ``pair`` (left to right) joined into one symbol."""
        out: list[str] = []
        i = 0
        while i < len(symbols):
            if i + 1 < len(symbols) and (symbols[i], symbols[i + 1]) == pair:
                out.append(symbols[i] + symbols[i + 1])
                i += 2
            else:
                out.append(symbols[i])
                i += 1
        return tuple(out)

    def train(self, words: Iterable[str], num_merges: int) -> WordBPE:
        """Learn up to ``num_merges`` merges from ``words``; return ``self``.

        Every step recounts all pairs (``pair_counts``), picks the most frequent one (ties: the
        smallest pair), and rewrites every word. Stops early when no pair is left.
        ``merge_counts[i]`` is the count of ``merges[i]`` when it was merged.
        """
        _check_int(num_merges, "num_merges", minimum=0)
        word_counts = self.split_words(words)
        self.alphabet = {symbol for symbols in word_counts for symbol in symbols}
        self.merges, self.merge_counts = [], []
        for _ in range(num_merges):
            pairs = self.pair_counts(word_counts)
            if not pairs:
                break
            best = min(pairs, key=lambda p: (-pairs[p], p))  # highest count, then smallest pair
            self.merges.append(best)
            self.merge_counts.append(pairs[best])
            word_counts = Counter({self.merge_word(s, best): c for s, c in word_counts.items()})
        return self

    @property
    def vocab(self) -> set[str]:
        """The symbols training can produce: the alphabet plus one symbol per merge."""
        if not self.alphabet:
            raise RuntimeError(
                "vocab needs the alphabet: call train(), or pass alphabet= to WordBPE(...)"
            )
        return self.alphabet | {a + b for a, b in self.merges}

    def encode(self, text: str) -> list[str]:
        """Split ``text`` on whitespace and apply every merge, in training order, to each word.

        A character never seen in training stays a symbol of its own, outside ``vocab``: the
        out-of-vocabulary problem that byte-level BPE removes.
        """
        tokens: list[str] = []
        for word in _check_text(text).split():
            symbols: tuple[str, ...] = (*word, self.END_OF_WORD)
            for pair in self.merges:
                symbols = self.merge_word(symbols, pair)
            tokens.extend(symbols)
        return tokens


# --------------------------------------------------------------------------------------
# Byte-level BPE
# --------------------------------------------------------------------------------------


class ByteBPETokenizer:
    """A byte-level BPE tokenizer: ids for the 256 bytes plus one id per merge.

    Encoding (Radford et al., 2019, section 2.2): split the text with ``pattern``; turn each
    chunk into its UTF-8 bytes' ids; then repeatedly merge the adjacent pair with the lowest
    *merge rank* (the pair learned first) until no adjacent pair is a learned merge. Merge
    ``i`` creates id ``256 + i``, so a pair's rank is the id it creates. Encoded chunks are
    cached (chunks repeat as often as words do); the cache only saves time.

    Args:
        merges: ``merges[i] = (left, right)``, the two ids that merge ``i`` joins into id
            ``256 + i``; both must already exist (be ``< 256 + i``).
        byte_ids: ``byte_ids[b]`` is the id of the single byte ``b``; a permutation of
            ``range(256)`` (default: the identity). GPT-2 orders its byte tokens differently.
        pattern: the pre-tokenization regular expression (``regex`` syntax).
        cache_size: the cache of encoded chunks is emptied when an ``encode`` call finds it
            holding more than this many entries.
    """

    def __init__(
        self,
        merges: Sequence[tuple[int, int]],
        *,
        byte_ids: Sequence[int] | None = None,
        pattern: str = GPT2_PATTERN,
        cache_size: int = 100_000,
    ) -> None:
        byte_ids = list(range(256)) if byte_ids is None else list(byte_ids)
        if sorted(byte_ids) != list(range(256)):
            raise ValueError("byte_ids must be a permutation of range(256)")
        self.byte_ids: list[int] = byte_ids
        self.merges: list[tuple[int, int]] = []
        self._ranks: dict[tuple[int, int], int] = {}
        vocab: list[bytes] = [b""] * 256
        for byte, token in enumerate(byte_ids):
            vocab[token] = bytes([byte])
        for i, merge in enumerate(merges):
            if len(merge) != 2 or not all(isinstance(t, int) and 0 <= t < 256 + i for t in merge):
                raise ValueError(
                    f"merges[{i}] = {merge!r} must be a pair of ids that exist before it "
                    f"(< {256 + i})"
                )
            pair = (int(merge[0]), int(merge[1]))
            if pair in self._ranks:
                raise ValueError(f"merges[{i}] = {pair} repeats an earlier merge")
            self.merges.append(pair)
            self._ranks[pair] = 256 + i
            vocab.append(vocab[pair[0]] + vocab[pair[1]])
        self._vocab = vocab
        self._byte_table = bytes(byte_ids)
        self.pattern = pattern
        self._regex = regex.compile(pattern)
        self.cache_size = _check_int(cache_size, "cache_size", minimum=0)
        self._cache: dict[str, list[int]] = {}

    # -- sizes and tokens ----------------------------------------------------------------

    @property
    def n_vocab(self) -> int:
        """Number of ids: 256 byte tokens plus one per merge (tiktoken's name)."""
        return len(self._vocab)

    def decode_single_token_bytes(self, token: int) -> bytes:
        """The bytes of one token id (tiktoken's name)."""
        self._check_ids([token])
        return self._vocab[token]

    # -- encoding ------------------------------------------------------------------------

    def _encode_chunk(self, data: bytes) -> list[int]:
        """BPE on one chunk's bytes: merge the lowest-ranked learned pair until none is left.

        ``ranks[pair]`` is the id the pair merges into, so the lowest rank is the earliest
        merge. Merging one occurrence at a time, leftmost first, gives the same result as
        merging every occurrence: the pairs a merge creates contain the new id, so they rank
        later than the pair just merged.
        """
        ids = list(data.translate(self._byte_table))  # byte values -> byte-token ids
        if len(ids) < 2:
            return ids
        get, never = self._ranks.get, _NEVER
        ranks = list(map(get, zip(ids, ids[1:]), repeat(never)))  # of (ids[i], ids[i + 1])
        while True:
            rank = min(ranks)
            if rank == never:  # no adjacent pair was ever merged: done
                break
            i = ranks.index(rank)  # the leftmost occurrence of the best pair
            ids[i : i + 2] = [rank]
            del ranks[i]
            if not ranks:
                break
            if i > 0:
                ranks[i - 1] = get((ids[i - 1], rank), never)
            if i < len(ranks):
                ranks[i] = get((rank, ids[i + 1]), never)
        return ids

    def encode(self, text: str) -> list[int]:
        """Token ids of ``text`` (special tokens are not recognised, as in ``encode_ordinary``).

        Lone surrogates, which have no UTF-8 bytes, are replaced by U+FFFD first, as tiktoken
        does.
        """
        _check_text(text)
        if len(self._cache) > self.cache_size:
            self._cache.clear()
        try:
            return self._encode_text(text)
        except UnicodeEncodeError:
            return self._encode_text(_without_surrogates(text))

    def _encode_text(self, text: str) -> list[int]:
        chunks = _split(text, self.pattern, self._regex)
        cache = self._cache
        for chunk in set(chunks).difference(cache):  # BPE once per distinct chunk
            cache[chunk] = self._encode_chunk(chunk.encode("utf-8"))
        return list(chain.from_iterable(map(cache.__getitem__, chunks)))

    # -- decoding ------------------------------------------------------------------------

    def _check_ids(self, ids: Sequence[int]) -> None:
        for token in ids:
            if isinstance(token, bool) or not isinstance(token, int):
                raise TypeError(f"ids must be ints, got {type(token).__name__} {token!r}")
            if not 0 <= token < len(self._vocab):
                raise ValueError(f"id {token} is outside the vocabulary [0, {len(self._vocab)})")

    def decode_bytes(self, ids: Sequence[int]) -> bytes:
        """The bytes that ``ids`` stand for (lossless, unlike :meth:`decode` on a partial list)."""
        if hasattr(ids, "tolist"):  # a tensor or array
            ids = ids.tolist()
        ids = list(ids)
        self._check_ids(ids)
        vocab = self._vocab
        return b"".join(vocab[token] for token in ids)

    def decode(self, ids: Sequence[int]) -> str:
        """The text of ``ids``; bytes that are not valid UTF-8 become U+FFFD (as in tiktoken)."""
        return self.decode_bytes(ids).decode("utf-8", errors="replace")

    # -- saving and loading --------------------------------------------------------------

    def save(self, path: str | Path) -> None:
        """Write the tokenizer as JSON: pattern, byte ids and merges."""
        data = {
            "format": _FORMAT,
            "version": 1,
            "pattern": self.pattern,
            "byte_ids": self.byte_ids,
            "merges": [list(m) for m in self.merges],
        }
        Path(path).write_text(json.dumps(data), encoding="utf-8")

    @classmethod
    def load(cls, path: str | Path) -> ByteBPETokenizer:
        """Read a tokenizer written by :meth:`save`."""
        data = json.loads(Path(path).read_text(encoding="utf-8"))
        if not isinstance(data, dict) or data.get("format") != _FORMAT or data.get("version") != 1:
            raise ValueError(
                f"{path} is not a file written by ByteBPETokenizer.save "
                f"(format {_FORMAT}, version 1)"
            )
        merges = [tuple(m) for m in data["merges"]]
        return cls(merges, byte_ids=data["byte_ids"], pattern=data["pattern"])

    @classmethod
    def from_tiktoken(cls, name: str = "gpt2") -> ByteBPETokenizer:
        """GPT-2's tokenizer, with the merges recovered from tiktoken's ranks.

        tiktoken stores, for each token, its bytes and its rank (= its id). The 256 one-byte
        tokens come first; every later token was made by one merge. Running BPE on a token's
        bytes with the merges recovered so far (all of lower rank) leaves exactly two tokens:
        that pair is its merge. ``name`` is ``"gpt2"`` or ``"r50k_base"`` (the same ranks),
        loaded offline by :func:`tutorial_code.data.gpt2_encoding`; ``<|endoftext|>``
        (id 50,256) is a special token and not part of this vocabulary.
        """
        if name not in ("gpt2", "r50k_base"):
            raise ValueError(
                f"name must be 'gpt2' or 'r50k_base' (GPT-2's pattern and ranks), got {name!r}"
            )
        encoding = gpt2_encoding()
        n_ordinary = encoding.n_vocab - len(encoding.special_tokens_set)
        token_bytes = [encoding.decode_single_token_bytes(i) for i in range(n_ordinary)]
        if sorted(token_bytes[:256]) != [bytes([b]) for b in range(256)]:
            raise ValueError(f"tiktoken encoding {name!r} does not start with the 256 single bytes")
        byte_ids = [0] * 256
        for token, data in enumerate(token_bytes[:256]):
            byte_ids[data[0]] = token
        tokenizer = cls([], byte_ids=byte_ids)
        for rank in range(256, n_ordinary):
            parts = tokenizer._encode_chunk(token_bytes[rank])
            if len(parts) != 2:
                raise ValueError(
                    f"token {rank} ({token_bytes[rank]!r}) is not one merge of earlier tokens"
                )
            pair = (parts[0], parts[1])
            tokenizer.merges.append(pair)
            tokenizer._ranks[pair] = rank
            tokenizer._vocab.append(token_bytes[rank])
        return tokenizer

    def __repr__(self) -> str:
        return f"ByteBPETokenizer(n_vocab={self.n_vocab}, merges={len(self.merges)})"


# --------------------------------------------------------------------------------------
# Training
# --------------------------------------------------------------------------------------


_Merges = list[tuple[int, int]]


def longest_match_pieces(tokenizer: ByteBPETokenizer, data: bytes) -> list[bytes]:
    """Split ``data`` by greedy longest-prefix matching against ``tokenizer``'s vocabulary.

    This is *not* how BPE encodes (a pitfall of chapter 5): BPE applies merges in rank
    order, which can give other pieces, e.g. GPT-2 encodes b" gentleness" as
    [b" gent", b"leness"], while longest match gives [b" gentle", b"ness"]. Every single
    byte is in the vocabulary, so the split always exists. O(len(data)^2) lookups.
    """
    if not isinstance(data, bytes):
        raise TypeError(f"data must be bytes, got {type(data).__name__}")
    vocab = {tokenizer.decode_single_token_bytes(i) for i in range(tokenizer.n_vocab)}
    pieces, i = [], 0
    while i < len(data):
        length = max(n for n in range(1, len(data) - i + 1) if data[i : i + n] in vocab)
        pieces.append(data[i : i + length])
        i += length
    return pieces


def _train_naive(chunks: Sequence[bytes], num_merges: int) -> tuple[_Merges, list[int]]:
    """Every merge: count every adjacent pair of every chunk, then rewrite every chunk.

    Cost per merge is proportional to the corpus size N (in bytes), so M merges cost O(M N).
    (Two cheap savings keep this baseline honest: a chunk that has become a single token holds
    no pairs and is dropped, and a chunk without the pair's left id is not rewritten.)
    """
    sequences = [list(chunk) for chunk in chunks if len(chunk) > 1]  # one list per occurrence
    merges: list[tuple[int, int]] = []
    counts: list[int] = []
    for step in range(num_merges):
        stats = Counter(chain.from_iterable(zip(ids, ids[1:]) for ids in sequences))
        if not stats:
            break
        pair = min(stats, key=lambda p: (-stats[p], p))  # highest count, then smallest pair
        merges.append(pair)
        counts.append(stats[pair])
        rewritten = (_merge(ids, pair, 256 + step) if pair[0] in ids else ids for ids in sequences)
        sequences = [ids for ids in rewritten if len(ids) > 1]
    return merges, counts


def _train_fast(chunk_counts: Mapping[bytes, int], num_merges: int) -> tuple[_Merges, list[int]]:
    """The same merges as :func:`_train_naive`, without recounting.

    1. Work on distinct chunks ("words") with their counts: U bytes instead of N.
    2. Count pairs once. A merge of (a, b) into n changes counts only next to each merged
       occurrence: (a, b) itself disappears, (x, a) becomes (x, n) on the left and (b, y)
       becomes (n, y) on the right. ``where`` maps each pair to the words that may contain
       it, so a merge visits only those words.
    3. Keep candidate pairs in a heap ordered by (-count, left, right): the top is the most
       frequent pair, ties broken by the smallest pair, exactly as in the naive trainer. A
       count that went down leaves a stale entry; it is re-pushed with the true count when
       it reaches the top. Counts only go up for pairs that contain the new id, and those
       are pushed after each merge.
    """
    words = [list(chunk) for chunk in chunk_counts]
    freqs = list(chunk_counts.values())
    pair_counts: defaultdict[tuple[int, int], int] = defaultdict(int)
    where: defaultdict[tuple[int, int], set[int]] = defaultdict(set)
    for index, (ids, freq) in enumerate(zip(words, freqs)):
        for pair in zip(ids, ids[1:]):
            pair_counts[pair] += freq
            where[pair].add(index)
    heap = [(-count, a, b) for (a, b), count in pair_counts.items()]
    heapq.heapify(heap)

    merges: list[tuple[int, int]] = []
    counts: list[int] = []
    while len(merges) < num_merges and heap:
        negative, a, b = heapq.heappop(heap)
        pair = (a, b)
        count = pair_counts.get(pair, 0)
        if count != -negative:  # stale entry: the count went down since it was pushed
            if count > 0:
                heapq.heappush(heap, (-count, a, b))
            continue
        new = 256 + len(merges)
        merges.append(pair)
        counts.append(count)
        created: set[tuple[int, int]] = set()
        for index in where.pop(pair):
            ids = words[index]
            if a not in ids:  # the pair left this word in an earlier merge
                continue
            freq, n, i = freqs[index], len(ids), ids.index(a)
            out = ids[:i]
            merged = False
            while i < n:
                if ids[i] == a and i + 1 < n and ids[i + 1] == b:  # an occurrence at i
                    merged = True
                    if out:  # left neighbour: (x, a) -> (x', n); x' is n if x was just merged
                        pair_counts[(ids[i - 1], a)] -= freq
                        left = (out[-1], new)
                        pair_counts[left] += freq
                        created.add(left)
                        where[left].add(index)
                    if i + 2 < n:  # right neighbour, unless it starts the next occurrence
                        y = ids[i + 2]
                        if not (y == a and i + 3 < n and ids[i + 3] == b):
                            pair_counts[(b, y)] -= freq
                            right = (new, y)
                            pair_counts[right] += freq
                            created.add(right)
                            where[right].add(index)
                    out.append(new)
                    i += 2
                else:
                    out.append(ids[i])
                    i += 1
            if merged:
                words[index] = out
        del pair_counts[pair]  # every occurrence is gone
        for new_pair in created:
            heapq.heappush(heap, (-pair_counts[new_pair], *new_pair))
    return merges, counts


def train_bpe(
    text: str,
    vocab_size: int,
    *,
    method: str = "fast",
    pattern: str = GPT2_PATTERN,
) -> ByteBPETokenizer:
    """Learn a byte-level BPE tokenizer with ``vocab_size - 256`` merges from ``text``.

    The text is split with ``pattern`` (GPT-2's by default) and merges never cross a chunk.
    Each step merges the most frequent adjacent pair; ties go to the smallest pair (smallest
    left id, then smallest right id). Training stops early if no pair is left.

    Args:
        text: the training text.
        vocab_size: the number of ids, including the 256 byte tokens (>= 256).
        method: ``"fast"`` (incremental counts, pair index, heap) or ``"naive"`` (recount every
            pair of the corpus for every merge; O(merges x corpus size)). Both give the same
            merges in the same order.
        pattern: the pre-tokenization regular expression.
    """
    _check_text(text)
    _check_int(vocab_size, "vocab_size", minimum=256)
    if method not in ("fast", "naive"):
        raise ValueError(f"method must be 'fast' or 'naive', got {method!r}")
    chunks = _split(_without_surrogates(text), pattern)
    num_merges = vocab_size - 256
    if method == "naive":
        merges, _ = _train_naive([chunk.encode("utf-8") for chunk in chunks], num_merges)
    else:
        chunk_counts = Counter(chunks)
        merges, _ = _train_fast({c.encode("utf-8"): n for c, n in chunk_counts.items()}, num_merges)
    return ByteBPETokenizer(merges, pattern=pattern)
