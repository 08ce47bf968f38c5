"""Tokenizers and batching: from text to the id tensors a model trains on.

:class:`CharTokenizer` maps characters to ids (the simplest tokenizer; chapter 5 builds
BPE), :func:`gpt2_encoding` loads GPT-2's byte-level BPE from the vocabulary files shipped
with the package (no download), :func:`random_batch` samples next-token-prediction windows
from a 1-D id tensor, and :func:`known_word_fraction` measures how much of a model's output
is spelled like its training text. The text itself comes from :mod:`tutorial_code.corpora`.
"""

from __future__ import annotations

import functools
import hashlib
import os
import re
from collections.abc import Sequence

import torch

__all__ = [
    "GPT2_FILES",
    "CharTokenizer",
    "gpt2_encoding",
    "known_word_fraction",
    "random_batch",
]


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
            f"ids has {ids.numel()} tokens; need at least context_length + 1 = {context_length + 1}"
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
# GPT-2's byte-level BPE, from the vocabulary files shipped with the package
# --------------------------------------------------------------------------------------

#: The published SHA-256 of GPT-2's two vocabulary files (as pinned by tiktoken).
GPT2_FILES: dict[str, str] = {
    "vocab.bpe": "1ce1664773c50f3e0cc8842619a93edc4624525b728b188a9e0be33b7726adc5",
    "encoder.json": "196139668be63f3b5d6574427317ae82f612a97c5d1cdaf36ed2256dbf636783",
}


@functools.cache
def gpt2_encoding():  # -> tiktoken.Encoding (tiktoken is imported lazily)
    """tiktoken's ``gpt2`` encoding, built offline from ``tutorial_code/assets/gpt2``.

    ``tiktoken.get_encoding("gpt2")`` downloads ``vocab.bpe`` and ``encoder.json`` on first
    use; the book ships both files (OpenAI's "Modified MIT License" is beside them), checks
    their published SHA-256, and builds the same encoding with tiktoken's own loader
    (``tiktoken.load.data_gym_to_mergeable_bpe_ranks``) and GPT-2's split pattern and special
    token: 50,257 ids, the last one (50,256) being ``<|endoftext|>``. Identical to the
    downloaded encoding (tested).

    Raises:
        RuntimeError: if a shipped file is missing or its hash differs (a damaged install).
    """
    from importlib import resources

    import tiktoken
    from tiktoken.load import data_gym_to_mergeable_bpe_ranks
    from tiktoken_ext.openai_public import ENDOFTEXT, r50k_pat_str

    folder = resources.files("tutorial_code").joinpath("assets", "gpt2")
    paths = {}
    for name, expected in GPT2_FILES.items():
        path = folder.joinpath(name)
        try:
            data = path.read_bytes()
        except OSError as err:
            raise RuntimeError(f"GPT-2 vocabulary file {name} is missing from {folder}") from err
        digest = hashlib.sha256(data).hexdigest()
        if digest != expected:
            raise RuntimeError(
                f"GPT-2 vocabulary file {path} has sha256 {digest}, expected {expected}: "
                "the file is damaged; reinstall tutorial_code"
            )
        paths[name] = str(path)
    # An empty TIKTOKEN_CACHE_DIR tells tiktoken to read the files without copying them
    # into its download cache (they are local already).
    saved = os.environ.get("TIKTOKEN_CACHE_DIR")
    os.environ["TIKTOKEN_CACHE_DIR"] = ""
    try:
        ranks = data_gym_to_mergeable_bpe_ranks(
            vocab_bpe_file=paths["vocab.bpe"],
            encoder_json_file=paths["encoder.json"],
            vocab_bpe_hash=GPT2_FILES["vocab.bpe"],
            encoder_json_hash=GPT2_FILES["encoder.json"],
        )
    finally:
        if saved is None:
            del os.environ["TIKTOKEN_CACHE_DIR"]
        else:
            os.environ["TIKTOKEN_CACHE_DIR"] = saved
    return tiktoken.Encoding(
        name="gpt2",
        explicit_n_vocab=50257,
        pat_str=r50k_pat_str,
        mergeable_ranks=ranks,
        special_tokens={ENDOFTEXT: 50256},
    )
