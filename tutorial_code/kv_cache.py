"""KV caches for the book's GPT: generate without re-encoding the prefix (chapter 4).

In causal self-attention the key and value of a token depend only on that token and the
tokens before it, so they do not change when later tokens are appended. Generation
without a cache recomputes them for the whole prefix at every step; a KV cache stores
them once per layer and feeds the model only the newest token (Pope et al., 2022,
"Efficiently Scaling Transformer Inference", analyse its costs; incremental decoding with
cached keys and values is written out in Shazeer, 2019, "Fast Transformer Decoding").

Two caches with the same interface:

* :class:`ConcatKVCache` grows by ``torch.cat`` at every step (simple; reallocates and
  copies the whole cache each step, like Hugging Face's ``DynamicCache``);
* :class:`PreallocatedKVCache` allocates ``max_cache_len`` slots once and writes each new
  key and value in place (like Hugging Face's ``StaticCache``).

**Positions and the sliding window.** ``GPTModel`` has learned absolute positions, a
table with ``context_length`` rows, so a position counter that keeps growing would index
past the table. Both caches define what happens when more than ``max_cache_len``
(``<= context_length``) tokens have been fed, and the semantics are the same for both:

* token ``n`` (counting from 0 since the last :meth:`KVCache.reset`) gets position
  ``min(n, context_length - 1)``;
* in every layer, token ``n`` attends to the cached keys and values of tokens
  ``max(0, n - W + 1) .. n``, where ``W = max_cache_len``: the oldest entry is dropped when
  a new one arrives. Each entry keeps the key and value computed when its token arrived.

That is sliding-window attention (Beltagy et al., 2020, "Longformer";
Jiang et al., 2023, "Mistral 7B", section 2, whose "rolling buffer cache" stores token
``n`` in slot ``n mod W`` as :class:`PreallocatedKVCache` does). It equals a single
uncached forward pass over the whole stream with a banded causal mask of width ``W`` and
those positions. It is *not* what uncached generation
(:func:`tutorial_code.generation.generate` with ``kv_cache=None``) does past the context:
that crops the text to its last ``context_length`` tokens and re-encodes them at
positions ``0 .. context_length - 1``, so every token's position shifts at every step and
no cached key could be reused. While at most ``W = context_length`` tokens have been fed,
all three agree.

Once the cache is full, tokens must be fed one at a time (that is what generation does);
a chunk of several tokens that does not fit raises a ``ValueError``.

A sliding window suits models with relative positions (Mistral uses RoPE). With learned
absolute positions every token past the table shares its last row, which a trained model
has never seen twice in one window, and chapter 4 shows its text falling apart there.
:func:`tutorial_code.generation.generate` therefore also offers ``overflow="recompute"``:
when the window is full, drop the cache and re-encode the last ``recompute_keep`` tokens at
positions ``0 ..``, the crop of uncached generation done once every few steps instead of at
every step.

Shapes: ``B`` batch, ``H`` heads, ``T`` new tokens, ``S`` cached + new tokens,
``D`` head size, ``L`` layers, ``C = H * D`` model width, ``V`` vocabulary.
"""

from __future__ import annotations

from abc import ABC, abstractmethod

import torch

from tutorial_code.checks import check_int
from tutorial_code.model import GPTConfig

__all__ = [
    "ConcatKVCache",
    "ConcatLayerKVCache",
    "KVCache",
    "LayerKVCache",
    "PreallocatedKVCache",
    "PreallocatedLayerKVCache",
    "causal_mask",
]


def causal_mask(num_new: int, num_keys: int, *, device: torch.device | None = None) -> torch.Tensor:
    """Boolean mask ``(T, S)`` for ``T`` new queries over ``S`` keys; ``True`` = hidden.

    The new tokens are the last ``T`` of ``S``: query ``i`` sits at key index
    ``S - T + i`` and may see keys ``0 .. S - T + i``. With ``T == S`` this is the usual
    upper triangle (``GPTModel``'s own mask); with ``T == 1`` nothing is hidden.
    """
    if not 1 <= num_new <= num_keys:
        raise ValueError(
            f"need 1 <= num_new <= num_keys, got num_new={num_new}, num_keys={num_keys}"
        )
    ones = torch.ones(num_new, num_keys, dtype=torch.bool, device=device)
    return ones.triu(num_keys - num_new + 1)


class LayerKVCache(ABC):
    """The keys and values one attention layer has seen; see the module docstring.

    Attributes:
        max_cache_len: ``W``, the most tokens kept; older ones slide out.
        seen_tokens: tokens fed since the last :meth:`reset` (may exceed ``W``).
    """

    def __init__(self, *, max_cache_len: int) -> None:
        self.max_cache_len = max_cache_len
        self.seen_tokens = 0

    def __len__(self) -> int:
        """Tokens currently held: ``min(seen_tokens, max_cache_len)``."""
        return min(self.seen_tokens, self.max_cache_len)

    @abstractmethod
    def update(
        self, keys: torch.Tensor, values: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Store the new ``keys`` and ``values`` ``(B, H, T, D)``.

        Returns the keys and values the new queries attend to, ``(B, H, S, D)`` each, and
        the mask ``(T, S)`` (``True`` = hidden) that
        :class:`~tutorial_code.model.MultiHeadAttention` applies to the scores.
        """

    @abstractmethod
    def reset(self) -> None:
        """Forget every stored token (call it before a new prompt)."""

    @abstractmethod
    def tensors(self) -> list[torch.Tensor]:
        """The key and value tensors the cache holds (for measuring its memory)."""

    def _check(self, keys: torch.Tensor, values: torch.Tensor) -> int:
        """Validate an update and return its number of new tokens ``T``."""
        for name, tensor in (("keys", keys), ("values", values)):
            if not isinstance(tensor, torch.Tensor) or tensor.dim() != 4:
                raise ValueError(
                    f"{name} must be a tensor of shape (B, H, T, D), got {_describe(tensor)}"
                )
        if keys.shape != values.shape:
            raise ValueError(
                f"keys {tuple(keys.shape)} and values {tuple(values.shape)} "
                "must have the same shape"
            )
        t = keys.shape[2]
        if t > 1 and len(self) + t > self.max_cache_len:
            raise ValueError(
                f"cannot add {t} tokens to a cache holding {len(self)} of max_cache_len="
                f"{self.max_cache_len}; once the window is full, feed one token at a time"
            )
        return t


class ConcatLayerKVCache(LayerKVCache):
    """One layer's cache that grows with ``torch.cat`` (reallocates every step)."""

    def __init__(self, *, max_cache_len: int) -> None:
        super().__init__(max_cache_len=max_cache_len)
        self.keys: torch.Tensor | None = None  # (B, H, S, D)
        self.values: torch.Tensor | None = None

    def update(
        self, keys: torch.Tensor, values: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        t = self._check(keys, values)
        if self.keys is None or self.values is None:  # the first chunk (the prompt)
            self.keys, self.values = keys, values
        elif len(self) < self.max_cache_len:  # room left: append along the token axis
            self.keys = torch.cat([self.keys, keys], dim=2)
            self.values = torch.cat([self.values, values], dim=2)
        else:  # full (and t == 1): drop the oldest token, append the newest
            self.keys = torch.cat([self.keys[:, :, 1:], keys], dim=2)
            self.values = torch.cat([self.values[:, :, 1:], values], dim=2)
        self.seen_tokens += t
        return self.keys, self.values, causal_mask(t, self.keys.shape[2], device=keys.device)

    def reset(self) -> None:
        self.keys, self.values, self.seen_tokens = None, None, 0

    def tensors(self) -> list[torch.Tensor]:
        return [x for x in (self.keys, self.values) if x is not None]


class PreallocatedLayerKVCache(LayerKVCache):
    """One layer's cache with ``max_cache_len`` slots allocated once, written in place.

    Token ``n`` is stored in slot ``n mod max_cache_len``: while the cache fills, slots
    ``0, 1, 2, ...`` in order; once it is full, each new token overwrites the oldest one
    (a ring buffer, as Mistral's rolling buffer cache). The order of keys in the buffer then
    no longer follows the text, which does not matter: a single new query may see every
    key in the window, and each key carries its position in its own vector.
    """

    def __init__(
        self,
        *,
        batch_size: int,
        num_heads: int,
        head_dim: int,
        max_cache_len: int,
        dtype: torch.dtype,
        device: torch.device | str | None,
    ) -> None:
        super().__init__(max_cache_len=max_cache_len)
        shape = (batch_size, num_heads, max_cache_len, head_dim)  # (B, H, W, D)
        self.keys = torch.zeros(shape, dtype=dtype, device=device)
        self.values = torch.zeros(shape, dtype=dtype, device=device)
        # A decode step's single query hides nothing: its (1, S) mask is a view of this row.
        self.no_mask = torch.zeros(1, max_cache_len, dtype=torch.bool, device=device)

    def update(
        self, keys: torch.Tensor, values: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        t = self._check(keys, values)
        b, h, _, d = self.keys.shape
        if (keys.shape[0], keys.shape[1], keys.shape[3]) != (b, h, d):
            raise ValueError(
                f"keys have shape {tuple(keys.shape)} but this cache was allocated for "
                f"(batch_size={b}, H={h}, T, D={d})"
            )
        start = self.seen_tokens
        if start + t <= self.max_cache_len:  # room left: write into slots start .. start+t-1
            self.keys[:, :, start : start + t] = keys
            self.values[:, :, start : start + t] = values
            s = start + t
        else:  # full (and t == 1): overwrite the oldest token's slot
            slot = start % self.max_cache_len
            self.keys[:, :, slot : slot + 1] = keys
            self.values[:, :, slot : slot + 1] = values
            s = self.max_cache_len
        self.seen_tokens += t
        mask = self.no_mask[:, :s] if t == 1 else causal_mask(t, s, device=keys.device)
        # Views of the first s slots: no copy. Slots >= s hold stale data and are never read.
        return self.keys[:, :, :s], self.values[:, :, :s], mask

    def reset(self) -> None:
        self.seen_tokens = 0  # the slots are overwritten before they are read again

    def tensors(self) -> list[torch.Tensor]:
        return [self.keys, self.values]


class KVCache:
    """Every layer's cache plus the position counter: ``model(ids, kv_cache=cache)``.

    ``layers[i]`` is layer ``i``'s :class:`LayerKVCache`. Use :class:`ConcatKVCache` or
    :class:`PreallocatedKVCache`; the semantics (positions, sliding window) are in the
    module docstring.
    """

    def __init__(self, cfg: GPTConfig, layers: list[LayerKVCache], *, max_cache_len: int) -> None:
        self.context_length = cfg.context_length
        self.max_cache_len = max_cache_len
        self.layers = layers

    @property
    def seen_tokens(self) -> int:
        """The position counter: tokens fed since the last :meth:`reset`."""
        counts = {layer.seen_tokens for layer in self.layers}
        if len(counts) != 1:
            raise RuntimeError(
                f"the layers of this cache have seen different numbers of tokens {sorted(counts)} "
                "(a forward pass was interrupted); call reset()"
            )
        return counts.pop()

    def get_seq_length(self) -> int:
        """Tokens currently held, ``min(seen_tokens, max_cache_len)``."""
        return min(self.seen_tokens, self.max_cache_len)

    def positions(self, num_new: int, *, device: torch.device | str | None = None) -> torch.Tensor:
        """Position ids ``(T,)`` of the next ``num_new`` tokens: ``min(n, context_length - 1)``.

        ``n`` counts tokens since the last :meth:`reset`, so new tokens continue after the
        cached ones instead of restarting at 0; past the position table the newest token
        takes the last row, as it would at the end of a full window.
        """
        check_int("num_new", num_new, low=1)
        held = self.get_seq_length()
        if num_new > 1 and held + num_new > self.max_cache_len:
            raise ValueError(
                f"cannot add {num_new} tokens to a cache holding {held} of max_cache_len="
                f"{self.max_cache_len}; once the window is full, feed one token at a time"
            )
        start = self.seen_tokens
        n = torch.arange(start, start + num_new, device=device)
        return n.clamp(max=self.context_length - 1)

    def reset(self) -> None:
        """Forget every token: call before each new prompt, or its queries see the old one."""
        for layer in self.layers:
            layer.reset()

    @property
    def nbytes(self) -> int:
        """Bytes of the stored keys and values (each underlying storage counted once)."""
        seen: set[int] = set()
        total = 0
        for layer in self.layers:
            for tensor in layer.tensors():
                storage = tensor.untyped_storage()
                if storage.data_ptr() not in seen:
                    seen.add(storage.data_ptr())
                    total += storage.nbytes()
        return total


class ConcatKVCache(KVCache):
    """A KV cache that grows by concatenation; memory follows the tokens held.

    Args:
        cfg: the model's configuration.
        max_cache_len: the window ``W`` (default and maximum: ``cfg.context_length``).
    """

    def __init__(self, cfg: GPTConfig, *, max_cache_len: int | None = None) -> None:
        w = _check_cache_args(cfg, max_cache_len)
        layers: list[LayerKVCache] = [
            ConcatLayerKVCache(max_cache_len=w) for _ in range(cfg.n_layers)
        ]
        super().__init__(cfg, layers, max_cache_len=w)


class PreallocatedKVCache(KVCache):
    """A KV cache with ``max_cache_len`` slots per layer allocated up front.

    Memory is fixed at ``2 L B H W D`` values from the start; during a decode step the layer
    caches allocate no new storage (not even the mask); only the position ids are new.

    Args:
        cfg: the model's configuration.
        batch_size: ``B``; every update must have this batch size.
        max_cache_len: the window ``W`` (default and maximum: ``cfg.context_length``).
        dtype: the dtype of the stored keys and values (the model's dtype).
        device: where to allocate them.
    """

    def __init__(
        self,
        cfg: GPTConfig,
        *,
        batch_size: int,
        max_cache_len: int | None = None,
        dtype: torch.dtype = torch.float32,
        device: torch.device | str | None = None,
    ) -> None:
        w = _check_cache_args(cfg, max_cache_len)
        check_int("batch_size", batch_size, low=1)
        if not isinstance(dtype, torch.dtype) or not dtype.is_floating_point:
            raise TypeError(f"dtype must be a floating-point torch.dtype, got {dtype!r}")
        layers: list[LayerKVCache] = [
            PreallocatedLayerKVCache(
                batch_size=batch_size,
                num_heads=cfg.n_heads,
                head_dim=cfg.emb_dim // cfg.n_heads,
                max_cache_len=w,
                dtype=dtype,
                device=device,
            )
            for _ in range(cfg.n_layers)
        ]
        super().__init__(cfg, layers, max_cache_len=w)


def _check_cache_args(cfg: GPTConfig, max_cache_len: int | None) -> int:
    if not isinstance(cfg, GPTConfig):
        raise TypeError(f"cfg must be a GPTConfig, got {type(cfg).__name__}")
    if max_cache_len is None:
        return cfg.context_length
    return check_int("max_cache_len", max_cache_len, low=1, high=cfg.context_length)


def _describe(x: object) -> str:
    return f"shape {tuple(x.shape)}" if isinstance(x, torch.Tensor) else type(x).__name__
