"""The small GPT used throughout the book.

A GPT-2-style decoder-only transformer (Radford et al., 2019, "Language Models are
Unsupervised Multitask Learners"), written so that each line maps to one idea:

* token and learned absolute position embeddings,
* causal multi-head self-attention (Vaswani et al., 2017, eq. 1 and the
  "Multi-Head Attention" paragraph of section 3.2.2),
* pre-norm transformer blocks (GPT-2 moved LayerNorm to the input of each sub-block),
* a position-wise MLP with a GELU non-linearity,
* a final LayerNorm and a linear language-model head.

The names follow LLMs-from-scratch (``cfg.emb_dim``, ``W_query``, ``trf_blocks``,
``out_head``) so that readers can move between the two codebases.

Shapes use ``B`` for the batch size, ``T`` for the number of tokens, ``C`` for
``emb_dim``, ``H`` for ``n_heads``, ``D = C // H`` for the head size and ``V`` for the
vocabulary size.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch
from torch import nn

if TYPE_CHECKING:  # chapter 4's caches; imported for type hints only (no import cycle)
    from tutorial_code.kv_cache import KVCache, LayerKVCache

__all__ = [
    "GPT2_SMALL_CONFIG",
    "FeedForward",
    "GPTConfig",
    "GPTModel",
    "MultiHeadAttention",
    "TransformerBlock",
    "count_parameters",
    "generate",
    "gpt_parameter_count",
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
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"GPTConfig.{name} must be a positive int, got {value!r}")
        if self.emb_dim % self.n_heads != 0:
            raise ValueError(
                f"GPTConfig.emb_dim ({self.emb_dim}) must be divisible by "
                f"GPTConfig.n_heads ({self.n_heads})"
            )
        if not 0.0 <= float(self.drop_rate) < 1.0:
            raise ValueError(f"GPTConfig.drop_rate must be in [0, 1), got {self.drop_rate!r}")
        if not isinstance(self.qkv_bias, bool):
            raise ValueError(f"GPTConfig.qkv_bias must be a bool, got {self.qkv_bias!r}")


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

    def forward(self, x: torch.Tensor, cache: LayerKVCache | None = None) -> torch.Tensor:
        """``x``: ``(B, T, d_in)`` -> ``(B, T, d_out)``.

        ``cache`` (chapter 4) holds this layer's keys and values of earlier tokens.
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

        # Q K^T / sqrt(D): (B, H, T, S), where S = T without a cache
        scores = queries @ keys.transpose(2, 3) / math.sqrt(self.head_dim)
        scores = scores.masked_fill(mask, float("-inf"))
        weights = self.dropout(torch.softmax(scores, dim=-1))

        # softmax(...) V: (B, H, T, D) -> (B, T, H, D) -> (B, T, C)
        context = (weights @ values).transpose(1, 2).reshape(b, t, self.d_out)
        return self.out_proj(context)


class FeedForward(nn.Module):
    """Position-wise MLP: ``Linear(C, 4C) -> GELU -> Linear(4C, C)``.

    GPT-2 uses the tanh approximation of GELU (Hendrycks & Gimpel, 2016, section 2).
    ``x``: ``(B, T, C)`` -> ``(B, T, C)``.
    """

    def __init__(self, emb_dim: int) -> None:
        super().__init__()
        self.layers = nn.Sequential(
            nn.Linear(emb_dim, 4 * emb_dim),
            nn.GELU(approximate="tanh"),
            nn.Linear(4 * emb_dim, emb_dim),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layers(x)


class TransformerBlock(nn.Module):
    """Pre-norm block: ``x + Attn(LN(x))`` then ``x + MLP(LN(x))``.

    ``x``: ``(B, T, C)`` -> ``(B, T, C)``; ``cache`` is passed on to the attention.
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

    def forward(self, x: torch.Tensor, cache: LayerKVCache | None = None) -> torch.Tensor:
        x = x + self.drop_shortcut(self.att(self.norm1(x), cache))
        x = x + self.drop_shortcut(self.ff(self.norm2(x)))
        return x


class GPTModel(nn.Module):
    """A GPT-2-style language model.

    ``forward(in_idx)`` maps token ids ``(B, T)`` (int64, ``T <= context_length``) to
    next-token logits ``(B, T, V)``: ``logits[b, t]`` scores the token that follows
    ``in_idx[b, : t + 1]``.

    The LM head is a separate matrix (not tied to the token embedding as in GPT-2), as
    in LLMs-from-scratch; :func:`gpt_parameter_count` reports both counts.
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

    def forward(self, in_idx: torch.Tensor, kv_cache: KVCache | None = None) -> torch.Tensor:
        """``in_idx``: ``(B, T)`` int64 token ids -> logits ``(B, T, V)``.

        With ``kv_cache`` (chapter 4), ``in_idx`` holds only the new tokens; they are
        placed after the cached ones and attend to them too.
        """
        _check_token_ids(
            in_idx, vocab_size=self.cfg.vocab_size, max_len=self.cfg.context_length, name="in_idx"
        )
        t = in_idx.shape[1]
        if kv_cache is None:
            positions = torch.arange(t, device=in_idx.device)
        else:  # chapter 4: continue counting after the cached tokens
            positions = kv_cache.positions(t, device=in_idx.device)
        x = self.tok_emb(in_idx) + self.pos_emb(positions)  # (B, T, C)
        x = self.drop_emb(x)
        for i, block in enumerate(self.trf_blocks):
            x = block(x, None if kv_cache is None else kv_cache.layers[i])
        return self.out_head(self.final_norm(x))


def _check_token_ids(
    idx: torch.Tensor, *, vocab_size: int, max_len: int | None, name: str
) -> None:
    """Raise a ValueError/TypeError naming ``name`` unless ``idx`` is a valid id batch."""
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


def count_parameters(model: nn.Module, *, trainable_only: bool = False) -> int:
    """Number of scalar parameters in ``model`` (shared tensors counted once)."""
    seen: set[int] = set()
    total = 0
    for p in model.parameters():
        if id(p) in seen or (trainable_only and not p.requires_grad):
            continue
        seen.add(id(p))
        total += p.numel()
    return total


def gpt_parameter_count(cfg: GPTConfig, *, tied_head: bool = False) -> int:
    """Parameter count of ``GPTModel(cfg)`` derived by hand, without building it.

    Per block: LayerNorm ``2C`` twice; Q, K, V ``3 (C^2 + [qkv_bias] C)``; output
    projection ``C^2 + C``; MLP ``C * 4C + 4C + 4C * C + C``. Plus token embeddings
    ``V C``, position embeddings ``T_max C``, the final LayerNorm ``2C`` and the head
    ``V C`` (omitted with ``tied_head=True``, the GPT-2 convention, which shares it with
    the token embedding).
    """
    c = cfg.emb_dim
    attention = 3 * (c * c + (c if cfg.qkv_bias else 0)) + c * c + c
    mlp = c * 4 * c + 4 * c + 4 * c * c + c
    block = attention + mlp + 2 * (2 * c)
    embeddings = cfg.vocab_size * c + cfg.context_length * c
    head = 0 if tied_head else cfg.vocab_size * c
    return embeddings + cfg.n_layers * block + 2 * c + head


@torch.no_grad()
def generate(
    model: GPTModel,
    idx: torch.Tensor,
    max_new_tokens: int,
    *,
    temperature: float = 0.0,
    top_k: int | None = None,
    eos_id: int | None = None,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Autoregressive generation without a cache (the whole window is re-encoded per token).

    Args:
        model: the language model; it is used as is (call ``model.eval()`` first to
            disable dropout).
        idx: prompt ids ``(B, T0)``.
        max_new_tokens: how many tokens to append (``>= 0``).
        temperature: ``0.0`` picks the most likely token (greedy decoding); a positive
            value samples from ``softmax(logits / temperature)``.
        top_k: with sampling, keep only the ``top_k`` most likely tokens.
        eos_id: stop early once every row has produced this id; a row that produced it
            before the others is padded with it from then on.
        generator: a ``torch.Generator`` that makes sampling reproducible.

    Returns:
        ``(B, T0 + n)`` ids, the prompt followed by ``n <= max_new_tokens`` new tokens.
        When the sequence grows past ``context_length`` only its last
        ``context_length`` tokens are fed to the model.
    """
    _check_generation_args(
        model, idx, max_new_tokens, temperature=temperature, top_k=top_k, eos_id=eos_id
    )
    cfg = model.cfg
    finished = torch.zeros(idx.shape[0], 1, dtype=torch.bool, device=idx.device)
    for _ in range(max_new_tokens):
        logits = model(idx[:, -cfg.context_length :])[:, -1, :]  # (B, V)
        next_id = _next_token(logits, temperature=temperature, top_k=top_k, generator=generator)
        next_id, finished = _after_eos(next_id, finished, eos_id)
        idx = torch.cat([idx, next_id], dim=1)
        if bool(finished.all()):
            break
    return idx


def _after_eos(
    next_id: torch.Tensor, finished: torch.Tensor, eos_id: int | None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Pad rows that already produced ``eos_id`` with it; mark the rows that produce it now.

    ``next_id`` and ``finished`` are ``(B, 1)``; with ``eos_id=None`` no row ever finishes.
    """
    if eos_id is None:
        return next_id, finished
    next_id = torch.where(finished, torch.full_like(next_id, eos_id), next_id)
    return next_id, finished | (next_id == eos_id)


def _check_generation_args(
    model: GPTModel,
    idx: torch.Tensor,
    max_new_tokens: int,
    *,
    temperature: float,
    top_k: int | None,
    eos_id: int | None = None,
) -> None:
    """The argument checks shared by :func:`generate` and chapter 4's cached generation."""
    if not isinstance(model, GPTModel):
        raise TypeError(f"model must be a GPTModel, got {type(model).__name__}")
    cfg = model.cfg
    _check_token_ids(idx, vocab_size=cfg.vocab_size, max_len=None, name="idx")
    if isinstance(max_new_tokens, bool) or not isinstance(max_new_tokens, int) or max_new_tokens < 0:
        raise ValueError(f"max_new_tokens must be an int >= 0, got {max_new_tokens!r}")
    if not temperature >= 0.0:
        raise ValueError(f"temperature must be >= 0 (0 means greedy), got {temperature!r}")
    if top_k is not None and not (isinstance(top_k, int) and 1 <= top_k <= cfg.vocab_size):
        raise ValueError(f"top_k must be None or an int in [1, {cfg.vocab_size}], got {top_k!r}")
    if eos_id is not None and (
        isinstance(eos_id, bool) or not isinstance(eos_id, int) or not 0 <= eos_id < cfg.vocab_size
    ):
        raise ValueError(f"eos_id must be None or an int in [0, {cfg.vocab_size}), got {eos_id!r}")


def _next_token(
    logits: torch.Tensor,
    *,
    temperature: float,
    top_k: int | None,
    generator: torch.Generator | None,
) -> torch.Tensor:
    """Pick the next ids ``(B, 1)`` from last-position logits ``(B, V)``: greedy or sampled."""
    if temperature == 0.0:
        return logits.argmax(dim=-1, keepdim=True)
    logits = logits / temperature
    if top_k is not None:
        kth = torch.topk(logits, top_k, dim=-1).values[:, -1:]
        logits = logits.masked_fill(logits < kth, float("-inf"))
    probs = torch.softmax(logits, dim=-1)
    return torch.multinomial(probs, num_samples=1, generator=generator)
