"""The small GPT used throughout the book.

A GPT-2-style decoder-only transformer (Radford et al., 2019, "Language Models are
Unsupervised Multitask Learners"), written so that each line maps to one idea:

* token and learned absolute position embeddings,
* causal multi-head self-attention (Vaswani et al., 2017, eq. 1 and the
  "Multi-Head Attention" paragraph of section 3.2.2),
* pre-norm transformer blocks (LayerNorm at the input of each sub-block, as in GPT-2,
  section 2.3),
* a position-wise MLP with a GELU non-linearity,
* a final LayerNorm and a linear language-model head.

The names follow LLMs-from-scratch (``cfg.emb_dim``, ``W_query``, ``trf_blocks``,
``out_head``) so that readers can move between the two codebases. Every linear layer has a
stable qualified name (``trf_blocks.{i}.att.W_query`` / ``W_key`` / ``W_value`` /
``out_proj``, ``trf_blocks.{i}.ff.fc1`` / ``fc2``, ``out_head``), which
:mod:`tutorial_code.modules` uses to swap layers by name.

**Padding.** ``forward`` takes an optional ``attention_mask`` ``(B, S)`` (1 for a real token,
0 for padding, the Hugging Face convention). Padded keys are hidden from every query, and
position ids are counted over real tokens only (``cumsum(mask) - 1``), so a left-padded row
gives the same logits at its real tokens as the unpadded sequence run alone. A padding query
sees only its own key (never ``-inf`` everywhere, which would make its softmax ``nan``); its
output is meaningless but finite and no real token attends to it.

**Initialisation.** ``GPTModel`` keeps PyTorch's default initialisation of each layer
(``nn.Linear``: uniform in ``±1/sqrt(fan_in)``; ``nn.Embedding``: ``N(0, 1)``).
:func:`gpt2_init_` applies GPT-2's scheme instead: ``N(0, 0.02)`` for weights and
embeddings, zero biases, and the residual projections scaled by ``1/sqrt(2L)``.

Shapes use ``B`` for the batch size, ``T`` for the number of new tokens, ``S`` for the number
of keys (cached + new), ``C`` for ``emb_dim``, ``H`` for ``n_heads``, ``D = C // H`` for the
head size and ``V`` for the vocabulary size.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch
from torch import nn

from tutorial_code.checks import check_float, check_int

if TYPE_CHECKING:  # chapter 4's caches; imported for type hints only
    from tutorial_code.kv_cache import KVCache, LayerKVCache

__all__ = [
    "GPT2_SMALL_CONFIG",
    "FeedForward",
    "GPTConfig",
    "GPTModel",
    "MultiHeadAttention",
    "TransformerBlock",
    "check_token_ids",
    "gpt2_init_",
    "position_ids_from_attention_mask",
]


@dataclass(frozen=True)
class GPTConfig:
    """Hyper-parameters of :class:`GPTModel`.

    Attributes:
        vocab_size: number of token ids ``V``; inputs must lie in ``[0, V)``.
        context_length: the longest sequence the model accepts (size of the learned
            position-embedding table).
        emb_dim: model width ``C``.
        n_heads: number of attention heads ``H``; must divide ``emb_dim``.
        n_layers: number of transformer blocks.
        drop_rate: dropout probability used after the embeddings, on the attention
            weights and on each residual branch. ``0.0`` disables dropout.
        qkv_bias: whether the query/key/value projections have a bias (GPT-2 does).
    """

    vocab_size: int = 50257
    context_length: int = 1024
    emb_dim: int = 768
    n_heads: int = 12
    n_layers: int = 12
    drop_rate: float = 0.1
    qkv_bias: bool = False

    def __post_init__(self) -> None:
        for name in ("vocab_size", "context_length", "emb_dim", "n_heads", "n_layers"):
            check_int(f"GPTConfig.{name}", getattr(self, name), low=1)
        if self.emb_dim % self.n_heads != 0:
            raise ValueError(
                f"GPTConfig.emb_dim ({self.emb_dim}) must be divisible by "
                f"GPTConfig.n_heads ({self.n_heads})"
            )
        check_float("GPTConfig.drop_rate", self.drop_rate, low=0.0, high=1.0, high_open=True)
        if not isinstance(self.qkv_bias, bool):
            raise TypeError(f"GPTConfig.qkv_bias must be a bool, got {self.qkv_bias!r}")


#: The shape of GPT-2 small ("124M"): 12 layers, 12 heads, width 768, context 1024.
GPT2_SMALL_CONFIG = GPTConfig(
    vocab_size=50257,
    context_length=1024,
    emb_dim=768,
    n_heads=12,
    n_layers=12,
    drop_rate=0.1,
    qkv_bias=True,
)


class MultiHeadAttention(nn.Module):
    """Causal multi-head self-attention.

    ``Attention(Q, K, V) = softmax(Q K^T / sqrt(D) + M) V`` (Vaswani et al., 2017, eq. 1),
    where the causal mask ``M`` is ``-inf`` above the diagonal so that position ``t``
    attends only to positions ``<= t``. The ``H`` heads run in parallel on ``D``-sized
    slices of the projections and are concatenated and projected back to ``C``.

    Args:
        d_in: input width.
        d_out: output width; must be divisible by ``num_heads``.
        context_length: the longest sequence; sizes the pre-computed causal mask.
        dropout: dropout probability on the attention weights.
        num_heads: number of heads ``H``.
        qkv_bias: whether the Q, K, V projections have a bias.
    """

    def __init__(
        self,
        d_in: int,
        d_out: int,
        context_length: int,
        dropout: float,
        num_heads: int,
        qkv_bias: bool = False,
    ) -> None:
        super().__init__()
        if d_out % num_heads != 0:
            raise ValueError(f"d_out ({d_out}) must be divisible by num_heads ({num_heads})")
        self.d_out = d_out
        self.num_heads = num_heads
        self.head_dim = d_out // num_heads
        self.W_query = nn.Linear(d_in, d_out, bias=qkv_bias)
        self.W_key = nn.Linear(d_in, d_out, bias=qkv_bias)
        self.W_value = nn.Linear(d_in, d_out, bias=qkv_bias)
        self.out_proj = nn.Linear(d_out, d_out)
        self.dropout = nn.Dropout(dropout)
        # True above the diagonal: the entries a query must not see.
        mask = torch.triu(torch.ones(context_length, context_length, dtype=torch.bool), diagonal=1)
        self.register_buffer("mask", mask, persistent=False)

    def forward(
        self,
        x: torch.Tensor,
        cache: LayerKVCache | None = None,
        key_padding_mask: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """``x``: ``(B, T, d_in)`` -> ``(B, T, d_out)``.

        ``cache`` (chapter 4) holds this layer's keys and values of earlier tokens.
        ``key_padding_mask`` ``(B, S)`` is ``True`` at padding keys, which no query sees
        (a padding query sees its own key only, so its softmax stays finite).
        """
        if x.dim() != 3 or x.shape[1] > self.mask.shape[0]:
            raise ValueError(
                f"x must be (B, T, d_in) with T <= context_length={self.mask.shape[0]}, "
                f"got shape {tuple(x.shape)}"
            )
        b, t, _ = x.shape
        # (B, T, C) -> (B, H, T, D)
        queries = self.W_query(x).view(b, t, self.num_heads, self.head_dim).transpose(1, 2)
        keys = self.W_key(x).view(b, t, self.num_heads, self.head_dim).transpose(1, 2)
        values = self.W_value(x).view(b, t, self.num_heads, self.head_dim).transpose(1, 2)
        mask = self.mask[:t, :t]  # (T, T), True where a query must not see a key
        if cache is not None:  # chapter 4: S = cached + T keys and values, mask (T, S)
            keys, values, mask = cache.update(keys, values)
        if key_padding_mask is not None:  # hide padding keys: (T, S) | (B, 1, 1, S)
            mask = _hide_padding(mask, key_padding_mask)

        # Q K^T / sqrt(D): (B, H, T, S), where S = T without a cache
        scores = queries @ keys.transpose(2, 3) / math.sqrt(self.head_dim)
        scores = scores.masked_fill(mask, float("-inf"))
        weights = self.dropout(torch.softmax(scores, dim=-1))

        # softmax(...) V: (B, H, T, D) -> (B, T, H, D) -> (B, T, C)
        context = (weights @ values).transpose(1, 2).reshape(b, t, self.d_out)
        return self.out_proj(context)


def _hide_padding(mask: torch.Tensor, key_padding_mask: torch.Tensor) -> torch.Tensor:
    """Combine a ``(T, S)`` causal mask with a ``(B, S)`` padding mask into ``(B, 1, T, S)``.

    The ``T`` queries are the last ``T`` of the ``S`` keys; each query keeps its own key
    visible, so no row of the result is all ``True``.
    """
    t, s = mask.shape
    if key_padding_mask.shape[-1] != s:
        raise ValueError(
            f"key_padding_mask covers {key_padding_mask.shape[-1]} keys but attention has {s}"
        )
    own = torch.zeros(t, s, dtype=torch.bool, device=mask.device)
    own[torch.arange(t), torch.arange(s - t, s)] = True
    return (mask | key_padding_mask[:, None, None, :]) & ~own


class FeedForward(nn.Module):
    """Position-wise MLP: ``fc2(GELU(fc1(x)))`` with ``fc1: C -> 4C`` and ``fc2: 4C -> C``.

    GPT-2 uses the tanh approximation of GELU (Hendrycks & Gimpel, 2016, section 2).
    ``x``: ``(B, T, C)`` -> ``(B, T, C)``.
    """

    def __init__(self, emb_dim: int) -> None:
        super().__init__()
        self.fc1 = nn.Linear(emb_dim, 4 * emb_dim)
        self.act = nn.GELU(approximate="tanh")
        self.fc2 = nn.Linear(4 * emb_dim, emb_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.act(self.fc1(x)))


class TransformerBlock(nn.Module):
    """Pre-norm block: ``x + Attn(LN(x))`` then ``x + MLP(LN(x))``.

    ``x``: ``(B, T, C)`` -> ``(B, T, C)``; ``cache`` and ``key_padding_mask`` are passed on to
    the attention. ``ff`` may be swapped for any module mapping ``(B, T, C)`` to
    ``(B, T, C)`` (chapter 3's mixture of experts).
    """

    def __init__(self, cfg: GPTConfig) -> None:
        super().__init__()
        self.att = MultiHeadAttention(
            d_in=cfg.emb_dim,
            d_out=cfg.emb_dim,
            context_length=cfg.context_length,
            dropout=cfg.drop_rate,
            num_heads=cfg.n_heads,
            qkv_bias=cfg.qkv_bias,
        )
        self.ff = FeedForward(cfg.emb_dim)
        self.norm1 = nn.LayerNorm(cfg.emb_dim)
        self.norm2 = nn.LayerNorm(cfg.emb_dim)
        self.drop_shortcut = nn.Dropout(cfg.drop_rate)

    def forward(
        self,
        x: torch.Tensor,
        cache: LayerKVCache | None = None,
        key_padding_mask: torch.Tensor | None = None,
    ) -> torch.Tensor:
        x = x + self.drop_shortcut(self.att(self.norm1(x), cache, key_padding_mask))
        x = x + self.drop_shortcut(self.ff(self.norm2(x)))
        return x


class GPTModel(nn.Module):
    """A GPT-2-style language model.

    ``forward(in_idx)`` maps token ids ``(B, T)`` (int64, ``T <= context_length``) to
    next-token logits ``(B, T, V)``: ``logits[b, t]`` scores the token that follows
    ``in_idx[b, : t + 1]``. :meth:`hidden_states` returns the final-LayerNorm output
    ``(B, T, C)`` that the head reads, for value and reward heads (chapter 7).

    The LM head is a separate matrix (not tied to the token embedding as in GPT-2), as
    in LLMs-from-scratch; :func:`tutorial_code.costs.gpt_parameter_count` reports both counts.
    """

    def __init__(self, cfg: GPTConfig) -> None:
        super().__init__()
        if not isinstance(cfg, GPTConfig):
            raise TypeError(f"cfg must be a GPTConfig, got {type(cfg).__name__}")
        self.cfg = cfg
        self.tok_emb = nn.Embedding(cfg.vocab_size, cfg.emb_dim)
        self.pos_emb = nn.Embedding(cfg.context_length, cfg.emb_dim)
        self.drop_emb = nn.Dropout(cfg.drop_rate)
        self.trf_blocks = nn.ModuleList(TransformerBlock(cfg) for _ in range(cfg.n_layers))
        self.final_norm = nn.LayerNorm(cfg.emb_dim)
        self.out_head = nn.Linear(cfg.emb_dim, cfg.vocab_size, bias=False)

    def forward(
        self,
        in_idx: torch.Tensor,
        *,
        attention_mask: torch.Tensor | None = None,
        kv_cache: KVCache | None = None,
    ) -> torch.Tensor:
        """``in_idx``: ``(B, T)`` int64 token ids -> logits ``(B, T, V)``.

        Args:
            in_idx: the token ids; with ``kv_cache`` only the new tokens.
            attention_mask: ``(B, S)``, 1 (or ``True``) for real tokens and 0 for padding,
                where ``S = T`` without a cache and ``S`` = cached + new tokens with one (the
                Hugging Face convention). Positions are counted over real tokens.
            kv_cache: chapter 4's cache; the new tokens are placed after the cached ones
                and attend to them too.
        """
        return self.out_head(
            self.hidden_states(in_idx, attention_mask=attention_mask, kv_cache=kv_cache)
        )

    def hidden_states(
        self,
        in_idx: torch.Tensor,
        *,
        attention_mask: torch.Tensor | None = None,
        kv_cache: KVCache | None = None,
    ) -> torch.Tensor:
        """The final-LayerNorm output ``(B, T, C)``: what the LM head maps to logits."""
        check_token_ids(
            in_idx, vocab_size=self.cfg.vocab_size, max_len=self.cfg.context_length, name="in_idx"
        )
        b, t = in_idx.shape
        key_padding_mask = None
        if attention_mask is not None:
            cached = 0 if kv_cache is None else kv_cache.seen_tokens
            attention_mask = _check_attention_mask(attention_mask, b, cached + t)
            if kv_cache is not None and cached + t > kv_cache.max_cache_len:
                raise ValueError(
                    f"attention_mask with a KV cache needs every token inside the window: "
                    f"{cached} cached + {t} new > max_cache_len={kv_cache.max_cache_len}"
                )
            positions = position_ids_from_attention_mask(attention_mask)[:, -t:]  # (B, T)
            if not bool(attention_mask.all()):
                key_padding_mask = ~attention_mask  # (B, S), True at padding
        elif kv_cache is None:
            positions = torch.arange(t, device=in_idx.device)
        else:  # chapter 4: continue counting after the cached tokens
            positions = kv_cache.positions(t, device=in_idx.device)
        x = self.tok_emb(in_idx) + self.pos_emb(positions)  # (B, T, C)
        x = self.drop_emb(x)
        for i, block in enumerate(self.trf_blocks):
            x = block(x, None if kv_cache is None else kv_cache.layers[i], key_padding_mask)
        return self.final_norm(x)


def position_ids_from_attention_mask(attention_mask: torch.Tensor) -> torch.Tensor:
    """Position ids ``(B, S)``: ``cumsum(mask) - 1`` over real tokens, 0 at leading padding.

    For ``[0, 0, 1, 1, 1]`` this gives ``[0, 0, 0, 1, 2]``: the first real token is at
    position 0 whatever the padding before it, as in an unpadded run.
    """
    mask = attention_mask.long()
    return (mask.cumsum(dim=-1) - 1).clamp(min=0)


def _check_attention_mask(attention_mask: torch.Tensor, batch: int, length: int) -> torch.Tensor:
    """Return the mask as bool ``(B, S)`` or raise an error naming ``attention_mask``."""
    if not isinstance(attention_mask, torch.Tensor):
        raise TypeError(
            f"attention_mask must be a torch.Tensor, got {type(attention_mask).__name__}"
        )
    if attention_mask.shape != (batch, length):
        raise ValueError(
            f"attention_mask must have shape (B, S) = ({batch}, {length}) (S counts cached and "
            f"new tokens), got {tuple(attention_mask.shape)}"
        )
    if attention_mask.dtype != torch.bool:
        if attention_mask.is_floating_point() or not bool(
            ((attention_mask == 0) | (attention_mask == 1)).all()
        ):
            raise ValueError("attention_mask must hold only 0 and 1 (or be a bool tensor)")
        attention_mask = attention_mask.bool()
    return attention_mask


def check_token_ids(idx: torch.Tensor, *, vocab_size: int, max_len: int | None, name: str) -> None:
    """Raise a ValueError/TypeError naming ``name`` unless ``idx`` is a valid ``(B, T)`` batch."""
    if not isinstance(idx, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor of token ids, got {type(idx).__name__}")
    if idx.dim() != 2:
        raise ValueError(f"{name} must have shape (batch, tokens), got shape {tuple(idx.shape)}")
    if idx.dtype not in (torch.int64, torch.int32):
        raise ValueError(f"{name} must hold integer token ids (torch.long), got dtype {idx.dtype}")
    if idx.shape[1] < 1:
        raise ValueError(f"{name} must contain at least one token per row")
    if max_len is not None and idx.shape[1] > max_len:
        raise ValueError(
            f"{name} has {idx.shape[1]} tokens but context_length is {max_len}; "
            "crop the input to the last context_length tokens"
        )
    lo, hi = int(idx.min()), int(idx.max())
    if lo < 0 or hi >= vocab_size:
        raise ValueError(
            f"{name} contains token id {lo if lo < 0 else hi}, outside [0, {vocab_size}) "
            "(vocab_size)"
        )


@torch.no_grad()
def gpt2_init_(model: GPTModel, *, std: float = 0.02) -> GPTModel:
    """GPT-2's initialisation, in place (Radford et al., 2019, section 2.3).

    Linear weights and both embeddings ``N(0, std)`` with ``std = 0.02``; biases zero;
    LayerNorm gains one and shifts zero; the two projections that write into the residual
    stream in each block (``att.out_proj`` and ``ff.fc2``) ``N(0, std / sqrt(2 L))``, the
    paper's "scale the weights of residual layers at initialization by a factor of
    1/sqrt(N) where N is the number of residual layers" (2 per block). Returns ``model``.
    """
    if not isinstance(model, GPTModel):
        raise TypeError(f"model must be a GPTModel, got {type(model).__name__}")
    std = check_float("std", std, low=0.0, low_open=True)
    residual_std = std / math.sqrt(2 * model.cfg.n_layers)
    for name, module in model.named_modules():
        if isinstance(module, nn.Linear):
            is_residual = name.endswith("att.out_proj") or name.endswith("ff.fc2")
            nn.init.normal_(module.weight, mean=0.0, std=residual_std if is_residual else std)
            if module.bias is not None:
                nn.init.zeros_(module.bias)
        elif isinstance(module, nn.Embedding):
            nn.init.normal_(module.weight, mean=0.0, std=std)
        elif isinstance(module, nn.LayerNorm):
            nn.init.ones_(module.weight)
            nn.init.zeros_(module.bias)
    return model
