"""tutorial_code.data: the character tokenizer, batching, and GPT-2's offline encoding.

References: hand-written id lists; the published GPT-2 ids of "Hello world, 你好!" (the
tiktoken ``gpt2`` encoding as downloaded: [15496, 995, 11, 220, 19526, 254, 25001, 121, 0]);
the vocabulary files' published SHA-256 (the hashes tiktoken pins).
"""

from __future__ import annotations

import hashlib
from importlib import resources

import pytest
import torch

from tutorial_code import data
from tutorial_code.data import (
    GPT2_FILES,
    CharTokenizer,
    gpt2_encoding,
    known_word_fraction,
    random_batch,
)


def test_char_tokenizer_round_trip_and_errors() -> None:
    tok = CharTokenizer.from_text("hello world")
    assert tok.chars == [" ", "d", "e", "h", "l", "o", "r", "w"]
    ids = tok.encode("hold")
    assert ids == [3, 5, 4, 1] and tok.decode(ids) == "hold" == tok.decode(torch.tensor(ids))
    with pytest.raises(ValueError, match="character 'z' is not in the vocabulary of 8"):
        tok.encode("zoo")
    with pytest.raises(ValueError, match="id 8 is outside the vocabulary"):
        tok.decode([8])
    with pytest.raises(ValueError, match="distinct single characters"):
        CharTokenizer(["a", "a"])


def test_random_batch_targets_are_inputs_shifted_by_one() -> None:
    ids = torch.arange(100)
    x, y = random_batch(ids, batch_size=5, context_length=7, generator=torch.Generator().manual_seed(0))
    assert x.shape == y.shape == (5, 7)
    assert torch.equal(y, x + 1)  # ids are consecutive integers
    with pytest.raises(ValueError, match="need at least context_length \\+ 1 = 101"):
        random_batch(ids, batch_size=1, context_length=100)
    with pytest.raises(TypeError, match="ids must be a 1-D int64 or int32 tensor"):
        random_batch(ids.float(), batch_size=1, context_length=4)


def test_known_word_fraction() -> None:
    assert known_word_fraction("the cat sat", "the cat on a mat") == pytest.approx(2 / 3)
    assert known_word_fraction("", "x") == 0.0


def test_gpt2_encoding_offline_matches_the_published_ids() -> None:
    enc = gpt2_encoding()
    assert enc.n_vocab == 50257
    assert enc.encode("Hello world, 你好!") == [15496, 995, 11, 220, 19526, 254, 25001, 121, 0]
    assert enc.encode("<|endoftext|>", allowed_special="all") == [50256]
    assert enc.eot_token == 50256
    with pytest.raises(ValueError, match="disallowed special token"):
        enc.encode("<|endoftext|>")


def test_shipped_vocabulary_files_have_the_published_hashes() -> None:
    folder = resources.files("tutorial_code").joinpath("assets", "gpt2")
    for name, expected in GPT2_FILES.items():
        assert hashlib.sha256(folder.joinpath(name).read_bytes()).hexdigest() == expected
    assert "Modified MIT License" in folder.joinpath("LICENSE").read_text(encoding="utf-8")


def test_a_damaged_vocabulary_file_is_refused(monkeypatch) -> None:
    monkeypatch.setitem(data.GPT2_FILES, "vocab.bpe", "0" * 64)
    gpt2_encoding.cache_clear()
    try:
        with pytest.raises(RuntimeError, match="vocab.bpe has sha256 1ce1.* expected 0000"):
            gpt2_encoding()
    finally:
        monkeypatch.undo()
        gpt2_encoding.cache_clear()
