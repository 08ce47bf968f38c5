"""Text generation for every chapter: greedy or sampled, with or without a KV cache, batched.

One function, :func:`generate`, covers what the chapters need:

* **decoding**: greedy (``temperature=0``) or sampling from ``softmax(logits / temperature)``,
  optionally restricted to the ``top_k`` most likely tokens (Fan et al., 2018) and/or to the
  smallest set whose probability reaches ``top_p`` (nucleus sampling, Holtzman et al., 2020);
* **caching**: ``kv_cache=None`` re-encodes the whole window at every step (chapter 0);
  ``"preallocated"``, ``"concat"`` or a :class:`~tutorial_code.kv_cache.KVCache` encodes the
  prompt once and then feeds one token per step (chapter 4; the semantics past the context
  window are in :mod:`tutorial_code.kv_cache`);
* **batches of unequal prompts**: pad them on the left and pass ``attention_mask``
  (:func:`left_pad` builds both); every row then generates as if it were alone;
* **stopping**: with ``eos_id``, a row that produced it is padded with ``pad_id`` from then on
  and generation stops once every row has finished;
* **log-probabilities** (``return_dict=True``): the log-probability of each generated token
  under the distribution it was sampled from, which the alignment chapters need as the
  "old" log-probs of an on-policy update.

The sampling distribution is ``softmax(logits / temperature)`` (``temperature=0`` means
``argmax``, whose log-probs are reported under ``softmax(logits)``); ``top_k`` / ``top_p``
truncate it before sampling, but the reported log-probs are those of the untruncated
tempered distribution, as TRL recomputes them from the logits (a truncated distribution
would put ``-inf`` on tokens the policy can still produce in training).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn.functional as F

from tutorial_code.checks import check_choice, check_float, check_int
from tutorial_code.kv_cache import ConcatKVCache, KVCache, PreallocatedKVCache
from tutorial_code.model import GPTModel, check_token_ids

__all__ = ["GenerationOutput", "generate", "left_pad", "sample_next_token", "top_p_filter"]


@dataclass
class GenerationOutput:
    """What :func:`generate` returns with ``return_dict=True``.

    Attributes:
        sequences: ``(B, T0 + n)`` the (padded) prompts followed by ``n`` new tokens.
        attention_mask: ``(B, T0 + n)`` 1 for every real token (prompt or generated), 0 for
            the prompts' left padding.
        completion_mask: ``(B, n)`` 1 for generated tokens up to and including the first
            ``eos_id``, 0 for the padding after it.
        logprobs: ``(B, n)`` log-probability of each generated token under the tempered
            distribution it was drawn from; 0 where ``completion_mask`` is 0.
    """

    sequences: torch.Tensor
    attention_mask: torch.Tensor
    completion_mask: torch.Tensor
    logprobs: torch.Tensor

    @property
    def completion_ids(self) -> torch.Tensor:
        """``(B, n)``: the generated tokens only."""
        return self.sequences[:, self.sequences.shape[1] - self.completion_mask.shape[1] :]


def left_pad(
    sequences: Sequence[Sequence[int]] | Sequence[torch.Tensor], *, pad_id: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Pad id sequences of unequal length on the left into ``(input_ids, attention_mask)``.

    Decoder-only models are padded on the left for generation, so that every row's last
    token sits in the last column and the next token is appended right after it.
    """
    check_int("pad_id", pad_id, low=0)
    rows = [torch.as_tensor(s, dtype=torch.long).flatten() for s in sequences]
    if not rows or any(r.numel() == 0 for r in rows):
        raise ValueError("sequences must be a non-empty list of non-empty id sequences")
    width = max(r.numel() for r in rows)
    ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
    mask = torch.zeros(len(rows), width, dtype=torch.long)
    for i, row in enumerate(rows):
        ids[i, width - row.numel() :] = row
        mask[i, width - row.numel() :] = 1
    return ids, mask


def top_p_filter(logits: torch.Tensor, top_p: float) -> torch.Tensor:
    """Set to ``-inf`` every logit outside the nucleus: the fewest most-likely tokens whose
    probabilities sum to at least ``top_p`` (Holtzman et al., 2020, eq. 3). ``(B, V)``.

    The most likely token is always kept, so ``top_p`` close to 0 is greedy.
    """
    sorted_logits, order = torch.sort(logits, dim=-1, descending=True)
    cumulative = torch.softmax(sorted_logits, dim=-1).cumsum(dim=-1)
    # drop a token if the tokens before it already reach top_p (so the first is never dropped)
    drop_sorted = (cumulative - torch.softmax(sorted_logits, dim=-1)) >= top_p
    drop = torch.zeros_like(drop_sorted).scatter(-1, order, drop_sorted)
    return logits.masked_fill(drop, float("-inf"))


def sample_next_token(
    logits: torch.Tensor,
    *,
    temperature: float = 1.0,
    top_k: int | None = None,
    top_p: float | None = None,
    generator: torch.Generator | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Pick the next ids ``(B, 1)`` from last-position logits ``(B, V)``.

    Returns ``(next_id, logprob)``, both ``(B, 1)``: ``logprob`` is the chosen token's
    log-probability under ``softmax(logits / temperature)`` (``softmax(logits)`` when greedy).
    """
    if temperature == 0.0:
        next_id = logits.argmax(dim=-1, keepdim=True)
        return next_id, F.log_softmax(logits.float(), dim=-1).gather(-1, next_id)
    scaled = logits / temperature
    logprobs = F.log_softmax(scaled.float(), dim=-1)
    if top_k is not None:
        kth = torch.topk(scaled, top_k, dim=-1).values[:, -1:]
        scaled = scaled.masked_fill(scaled < kth, float("-inf"))
    if top_p is not None and top_p < 1.0:
        scaled = top_p_filter(scaled, top_p)
    probs = torch.softmax(scaled, dim=-1)
    next_id = torch.multinomial(probs, num_samples=1, generator=generator)
    return next_id, logprobs.gather(-1, next_id)


def _check_args(
    model: GPTModel,
    idx: torch.Tensor,
    max_new_tokens: int,
    *,
    temperature: float,
    top_k: int | None,
    top_p: float | None,
    eos_id: int | None,
    pad_id: int | None,
) -> None:
    if not isinstance(model, GPTModel):
        raise TypeError(f"model must be a GPTModel, got {type(model).__name__}")
    cfg = model.cfg
    check_token_ids(idx, vocab_size=cfg.vocab_size, max_len=None, name="idx")
    check_int("max_new_tokens", max_new_tokens, low=0)
    check_float("temperature", temperature, low=0.0)
    check_int("top_k", top_k, low=1, high=cfg.vocab_size, allow_none=True)
    check_float("top_p", top_p, low=0.0, high=1.0, low_open=True, allow_none=True)
    check_int("eos_id", eos_id, low=0, high=cfg.vocab_size - 1, allow_none=True)
    check_int("pad_id", pad_id, low=0, high=cfg.vocab_size - 1, allow_none=True)


@torch.no_grad()
def generate(
    model: GPTModel,
    idx: torch.Tensor,
    max_new_tokens: int,
    *,
    attention_mask: torch.Tensor | None = None,
    temperature: float = 0.0,
    top_k: int | None = None,
    top_p: float | None = None,
    eos_id: int | None = None,
    pad_id: int | None = None,
    kv_cache: KVCache | Literal["concat", "preallocated"] | None = None,
    overflow: Literal["slide", "recompute"] = "slide",
    recompute_keep: int | None = None,
    generator: torch.Generator | None = None,
    return_dict: bool = False,
) -> torch.Tensor | GenerationOutput:
    """Autoregressive generation from the book's GPT.

    Args:
        model: the language model, used as is (call ``model.eval()`` first to disable
            dropout).
        idx: prompt ids ``(B, T0)``. Prompts of unequal length are left-padded (see
            :func:`left_pad`) and come with ``attention_mask``.
        max_new_tokens: how many tokens to append (``>= 0``).
        attention_mask: ``(B, T0)``, 1 for real prompt tokens and 0 for left padding.
            With padding the whole run must fit in the context window (and in the cache's
            window): ``T0 + max_new_tokens <= context_length``.
        temperature: ``0.0`` picks the most likely token (greedy decoding); a positive
            value samples from ``softmax(logits / temperature)``.
        top_k: with sampling, keep only the ``top_k`` most likely tokens.
        top_p: with sampling, keep only the nucleus of probability ``top_p``.
        eos_id: stop early once every row has produced this id; a finished row is padded.
        pad_id: the id written after a row's ``eos_id`` (default: ``eos_id`` itself).
        kv_cache: ``None`` re-encodes the last ``context_length`` tokens at every step;
            ``"preallocated"`` or ``"concat"`` builds a cache whose window ``W`` is
            ``context_length``; a :class:`KVCache` instance is reset first and then used.
        overflow: with a cache, what happens when the window is full and another token must
            be fed. ``"slide"``: drop the oldest token (the sliding-window semantics of
            :mod:`tutorial_code.kv_cache`). ``"recompute"``: reset the cache and re-encode
            the last ``recompute_keep`` tokens at positions ``0 ..`` (with
            ``recompute_keep == W == context_length`` exactly what ``kv_cache=None`` does).
        recompute_keep: tokens kept by ``"recompute"`` (default ``W // 2``, at least 1).
        generator: a ``torch.Generator`` that makes sampling reproducible.
        return_dict: return a :class:`GenerationOutput` (with log-probs and masks) instead
            of the id tensor.

    Returns:
        ``(B, T0 + n)`` ids, the prompts followed by ``n <= max_new_tokens`` new tokens, or a
        :class:`GenerationOutput`. Without a cache, once the sequence is longer than
        ``context_length`` only its last ``context_length`` tokens are fed to the model.
    """
    _check_args(
        model,
        idx,
        max_new_tokens,
        temperature=temperature,
        top_k=top_k,
        top_p=top_p,
        eos_id=eos_id,
        pad_id=pad_id,
    )
    cfg = model.cfg
    b, t0 = idx.shape
    fill_id = eos_id if pad_id is None else pad_id
    if attention_mask is not None:
        if attention_mask.shape != idx.shape:
            raise ValueError(
                f"attention_mask must have the shape of idx {tuple(idx.shape)}, "
                f"got {tuple(attention_mask.shape)}"
            )
        attention_mask = attention_mask.to(torch.long)
        if bool((attention_mask == 1).all()):
            attention_mask = None  # no padding: the unpadded path is the same computation
        elif t0 + max_new_tokens > cfg.context_length:
            raise ValueError(
                f"a padded batch must fit the context window: T0 + max_new_tokens = "
                f"{t0} + {max_new_tokens} > context_length = {cfg.context_length}"
            )
    cache = _make_cache(model, kv_cache, batch_size=b)
    if cache is not None:
        check_choice("overflow", overflow, ("slide", "recompute"))
        window = cache.max_cache_len
        if attention_mask is not None and t0 + max_new_tokens > window:
            raise ValueError(
                f"a padded batch must fit the cache window: {t0} + {max_new_tokens} > "
                f"max_cache_len = {window}"
            )
        keep = max(1, window // 2) if recompute_keep is None else recompute_keep
        check_int("recompute_keep", keep, low=1, high=window)

    mask = attention_mask  # (B, S) over everything fed so far, or None without padding
    new_ids = torch.empty(b, 0, dtype=torch.long, device=idx.device)
    logprobs = torch.empty(b, 0, device=idx.device)
    finished = torch.zeros(b, 1, dtype=torch.bool, device=idx.device)
    done_before = torch.empty(b, 0, dtype=torch.bool, device=idx.device)
    if max_new_tokens == 0:
        return _output(idx, new_ids, mask, done_before, logprobs, return_dict)

    def full_logits(ids: torch.Tensor, m: torch.Tensor | None) -> torch.Tensor:
        """Re-encode the last context_length tokens; logits of the last position (B, V)."""
        ids = ids[:, -cfg.context_length :]
        m = None if m is None else m[:, -cfg.context_length :]
        return model(ids, attention_mask=m)[:, -1, :]

    if cache is None:
        logits = full_logits(idx, mask)
    else:
        cache.reset()
        logits = _prefill(model, cache, idx, mask, overflow=overflow, keep=keep)
    ids = idx
    for step in range(max_new_tokens):
        next_id, logprob = sample_next_token(
            logits, temperature=temperature, top_k=top_k, top_p=top_p, generator=generator
        )
        done_before = torch.cat([done_before, finished], dim=1)
        if eos_id is not None:
            next_id = torch.where(finished, torch.full_like(next_id, fill_id), next_id)
            finished = finished | (next_id == eos_id)
        ids = torch.cat([ids, next_id], dim=1)
        new_ids = torch.cat([new_ids, next_id], dim=1)
        logprobs = torch.cat([logprobs, logprob.to(logprobs.dtype)], dim=1)
        if mask is not None:
            mask = torch.cat([mask, torch.ones_like(next_id)], dim=1)
        if bool(finished.all()) or step + 1 == max_new_tokens:
            break  # the last token's logits would never be used
        if cache is None:
            logits = full_logits(ids, mask)
        else:
            logits = _feed_last(model, cache, ids, mask, overflow=overflow, keep=keep)
    return _output(idx, new_ids, mask, done_before, logprobs, return_dict)


def _make_cache(
    model: GPTModel, kv_cache: KVCache | str | None, *, batch_size: int
) -> KVCache | None:
    cfg = model.cfg
    if kv_cache is None:
        return None
    if isinstance(kv_cache, str) and kv_cache == "concat":
        return ConcatKVCache(cfg)
    if isinstance(kv_cache, str) and kv_cache == "preallocated":
        param = next(model.parameters())
        return PreallocatedKVCache(
            cfg, batch_size=batch_size, dtype=param.dtype, device=param.device
        )
    if not isinstance(kv_cache, KVCache):
        raise ValueError(
            f"kv_cache must be None, 'concat', 'preallocated' or a KVCache, got {kv_cache!r}"
        )
    if len(kv_cache.layers) != cfg.n_layers or kv_cache.context_length != cfg.context_length:
        raise ValueError(
            f"kv_cache was built for {len(kv_cache.layers)} layers and context_length "
            f"{kv_cache.context_length}, the model has {cfg.n_layers} and {cfg.context_length}"
        )
    return kv_cache


def _prefill(
    model: GPTModel,
    cache: KVCache,
    idx: torch.Tensor,
    mask: torch.Tensor | None,
    *,
    overflow: str,
    keep: int,
) -> torch.Tensor:
    """Encode the prompt into the cache; return the last position's logits ``(B, V)``."""
    if mask is not None:  # padded: the whole run fits the window (checked by the caller)
        return model(idx, attention_mask=mask, kv_cache=cache)[:, -1, :]
    prompt = idx[:, -model.cfg.context_length :]
    first = min(prompt.shape[1], cache.max_cache_len)
    logits = model(prompt[:, :first], kv_cache=cache)[:, -1, :]
    for i in range(first + 1, prompt.shape[1] + 1):  # the rest of a longer prompt, one by one
        logits = _feed_last(model, cache, prompt[:, :i], None, overflow=overflow, keep=keep)
    return logits


def _feed_last(
    model: GPTModel,
    cache: KVCache,
    ids: torch.Tensor,
    mask: torch.Tensor | None,
    *,
    overflow: str,
    keep: int,
) -> torch.Tensor:
    """Feed the last token of ``ids`` ``(B, N)`` through the cache; its logits ``(B, V)``."""
    if overflow == "recompute" and cache.get_seq_length() == cache.max_cache_len:
        cache.reset()  # full: re-encode the last `keep` tokens at positions 0 .. keep-1
        return model(ids[:, -keep:], kv_cache=cache)[:, -1, :]
    return model(ids[:, -1:], attention_mask=mask, kv_cache=cache)[:, -1, :]


def _output(
    idx: torch.Tensor,
    new_ids: torch.Tensor,
    mask: torch.Tensor | None,
    done_before: torch.Tensor,
    logprobs: torch.Tensor,
    return_dict: bool,
) -> torch.Tensor | GenerationOutput:
    sequences = torch.cat([idx, new_ids], dim=1)
    if not return_dict:
        return sequences
    if mask is None:
        mask = torch.ones_like(sequences)
    completion_mask = (~done_before).long()  # a token counts unless its row finished before it
    return GenerationOutput(
        sequences=sequences,
        attention_mask=mask.long(),
        completion_mask=completion_mask,
        logprobs=logprobs * completion_mask,
    )
