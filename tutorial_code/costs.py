"""Cost accounting in one place: parameters, FLOPs and bytes.

Every chapter that quotes a cost computes it here, so the numbers agree across the book:

* parameters: :func:`count_parameters` counts a built model's tensors;
  :func:`gpt_parameter_count` derives the same number from a configuration by hand;
* FLOPs: :func:`forward_flops` counts the matrix multiplies of one forward pass of the book's
  GPT exactly as the code performs them (checked against ``torch.utils.flop_counter``);
  :func:`training_flops` is the ``6 N D`` rule of Kaplan et al. (2020);
  :func:`training_flops_per_token` counts a training token of the book's GPT exactly;
* bytes: :func:`kv_cache_bytes` and :class:`AttentionShape` for KV caches of published models,
  :data:`DTYPE_BYTES` for weights, :func:`training_memory` and
  :func:`activation_bytes_per_layer` for training on many GPUs (ZeRO, tensor and pipeline
  parallelism), :func:`linear_bytes` for a float or quantized linear layer and
  :func:`state_dict_bytes` for what a built model actually stores;
* mixtures of experts: :class:`MoEShape` and :func:`count_active_parameters` separate the
  parameters a model holds from those each token uses.

This module is a leaf: it imports nothing from the rest of the package except the argument
checks, and takes configurations by their attributes (``vocab_size``, ``context_length``,
``emb_dim``, ``n_layers``, ``qkv_bias``), so ``GPTConfig`` and look-alikes both work.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import torch
from torch import nn

from tutorial_code.checks import check_float, check_int

__all__ = [
    "DTYPE_BYTES",
    "PUBLISHED_SHAPES",
    "AttentionShape",
    "GPTShape",
    "MOE_SHAPES",
    "MoEShape",
    "TrainingMemory",
    "activation_bytes_per_layer",
    "count_active_parameters",
    "count_parameters",
    "forward_flops",
    "gpt_parameter_count",
    "kv_cache_bytes",
    "linear_bytes",
    "pipeline_bubble_fraction",
    "state_dict_bytes",
    "training_flops",
    "training_flops_per_token",
    "training_memory",
]


class GPTShape(Protocol):
    """What the formulas here read from a configuration (``GPTConfig`` has all of it)."""

    vocab_size: int
    context_length: int
    emb_dim: int
    n_layers: int
    qkv_bias: bool


#: Bytes per stored value of common weight and activation formats.
DTYPE_BYTES: dict[torch.dtype, float] = {
    torch.float64: 8,
    torch.float32: 4,
    torch.float16: 2,
    torch.bfloat16: 2,
    torch.int8: 1,
    torch.uint8: 1,
}


# --------------------------------------------------------------------------------------
# Parameters
# --------------------------------------------------------------------------------------


def count_parameters(model: nn.Module, *, trainable_only: bool = False) -> int:
    """Number of scalar parameters in ``model`` (a tensor shared by two modules counts once)."""
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    seen: set[int] = set()
    total = 0
    for p in model.parameters():
        if id(p) in seen or (trainable_only and not p.requires_grad):
            continue
        seen.add(id(p))
        total += p.numel()
    return total


def gpt_parameter_count(
    cfg: GPTShape, *, tied_head: bool = False, include_embeddings: bool = True
) -> int:
    """Parameter count of ``GPTModel(cfg)`` derived by hand, without building it.

    Per block: two LayerNorms ``2C`` each; Q, K, V ``3 (C^2 + [qkv_bias] C)``; the output
    projection ``C^2 + C``; the MLP ``C 4C + 4C + 4C C + C``. Plus token embeddings ``V C``,
    position embeddings ``T_max C``, the final LayerNorm ``2C`` and the head ``V C``.

    Args:
        tied_head: leave out the head, as GPT-2 does by sharing it with the token embedding
            (its released checkpoint has 124,439,808 parameters this way).
        include_embeddings: ``False`` drops the token and position embeddings, giving the
            "non-embedding" count ``N`` of Kaplan et al. (2020, section 2.1). The head stays
            in unless ``tied_head`` (Kaplan's models tie it).
    """
    c = cfg.emb_dim
    attention = 3 * (c * c + (c if cfg.qkv_bias else 0)) + c * c + c
    mlp = c * 4 * c + 4 * c + 4 * c * c + c
    block = attention + mlp + 2 * (2 * c)
    embeddings = cfg.vocab_size * c + cfg.context_length * c if include_embeddings else 0
    head = 0 if tied_head else cfg.vocab_size * c
    return embeddings + cfg.n_layers * block + 2 * c + head


# --------------------------------------------------------------------------------------
# FLOPs
# --------------------------------------------------------------------------------------


def forward_flops(cfg: GPTShape, *, num_new: int, num_cached: int = 0) -> int:
    """Matrix-multiply FLOPs of one ``GPTModel`` forward pass (2 per multiply-add).

    ``num_new`` tokens ``T`` go through the model while ``num_cached`` earlier tokens sit in
    a KV cache, so attention runs over ``S = num_cached + num_new`` keys. Per layer: the
    Q, K, V and output projections ``2 T 4C^2``, the MLP ``2 T 8C^2``, the scores
    ``Q K^T`` ``2 T S C`` and ``weights @ V`` ``2 T S C`` (summed over heads, masked
    entries included, since the code computes them); plus the LM head ``2 T C V``, which
    ``GPTModel`` applies at every input position. Element-wise work (LayerNorm, softmax,
    GELU, biases) is left out, as ``torch.utils.flop_counter.FlopCounterMode`` leaves it out.
    """
    check_int("num_new", num_new, low=1)
    check_int("num_cached", num_cached, low=0)
    c, t, s = cfg.emb_dim, num_new, num_cached + num_new
    per_layer = 2 * t * (4 * c * c) + 2 * t * (8 * c * c) + 2 * 2 * t * s * c
    return cfg.n_layers * per_layer + 2 * t * c * cfg.vocab_size


def training_flops(n_params: float, n_tokens: float) -> float:
    """Training compute ``C = 6 N D`` in FLOPs (Kaplan et al., 2020, section 2.1).

    Each parameter takes part in one multiply-add (2 FLOPs) per token in the forward pass and
    two in the backward pass (gradients with respect to activations and to weights), so a
    token costs about ``6 N`` FLOPs. The rule leaves out attention's ``Q K^T`` and
    ``weights @ V`` products, which have no parameters and grow with the context length, and
    it counts embedding lookups (which cost no multiplies) if ``N`` includes them;
    :func:`forward_flops` counts them exactly for the book's GPT.
    """
    n_params = check_float("n_params", n_params, low=0.0, low_open=True)
    n_tokens = check_float("n_tokens", n_tokens, low=0.0, low_open=True)
    return 6.0 * n_params * n_tokens


# --------------------------------------------------------------------------------------
# Bytes
# --------------------------------------------------------------------------------------


def kv_cache_bytes(
    *,
    n_layers: int,
    n_kv_heads: int,
    head_dim: int,
    n_tokens: int,
    batch_size: int = 1,
    bits_per_value: int = 16,
) -> int:
    """Bytes of a KV cache: ``2 * L * H_kv * D * tokens * B * bits / 8``.

    The factor 2 is one key and one value per token, layer and KV head. With multi-head
    attention ``H_kv`` is the number of heads; grouped-query attention (Ainslie et al.,
    2023) shares each key/value head among several query heads, so ``H_kv`` is smaller;
    multi-query attention (Shazeer, 2019) has ``H_kv = 1``. ``bits_per_value`` is 32 for
    float32, 16 for float16/bfloat16, 8 or 4 for quantized caches.
    """
    for name, value in (
        ("n_layers", n_layers),
        ("n_kv_heads", n_kv_heads),
        ("head_dim", head_dim),
        ("batch_size", batch_size),
        ("bits_per_value", bits_per_value),
    ):
        check_int(name, value, low=1)
    check_int("n_tokens", n_tokens, low=0)
    bits = 2 * n_layers * n_kv_heads * head_dim * n_tokens * batch_size * bits_per_value
    return bits // 8


@dataclass(frozen=True)
class AttentionShape:
    """The numbers of a published model that size its KV cache.

    ``sliding_window`` is set for models whose cache keeps only the last ``W`` tokens;
    the cache then never holds more than ``min(context_length, W)`` tokens.
    """

    n_layers: int
    n_heads: int
    n_kv_heads: int
    head_dim: int
    context_length: int
    sliding_window: int | None = None

    def cache_bytes(
        self, *, n_tokens: int | None = None, batch_size: int = 1, bits_per_value: int = 16
    ) -> int:
        """:func:`kv_cache_bytes` for ``n_tokens`` of text (default: the full context)."""
        n = self.context_length if n_tokens is None else n_tokens
        if self.sliding_window is not None:
            n = min(n, self.sliding_window)
        return kv_cache_bytes(
            n_layers=self.n_layers,
            n_kv_heads=self.n_kv_heads,
            head_dim=self.head_dim,
            n_tokens=n,
            batch_size=batch_size,
            bits_per_value=bits_per_value,
        )


#: Attention shapes of published models, from their papers and released configurations:
#: GPT-2 (Radford et al., 2019; small: n_layer=12, n_head=12, n_embd=768; XL: n_layer=48,
#: n_head=25, n_embd=1600; context 1024), Llama 2 (Touvron et al., 2023; 7B: dim 4096,
#: 32 layers, 32 heads; 70B: dim 8192, 80 layers, 64 query heads and 8 key/value heads
#: (GQA); context 4096), Mistral 7B (Jiang et al., 2023, Table 1: 32 layers, 32 heads,
#: 8 key/value heads, head_dim 128, window 4096, context 8192).
PUBLISHED_SHAPES: dict[str, AttentionShape] = {
    "GPT-2 small": AttentionShape(
        n_layers=12, n_heads=12, n_kv_heads=12, head_dim=64, context_length=1024
    ),
    "GPT-2 XL": AttentionShape(
        n_layers=48, n_heads=25, n_kv_heads=25, head_dim=64, context_length=1024
    ),
    "Llama 2 7B": AttentionShape(
        n_layers=32, n_heads=32, n_kv_heads=32, head_dim=128, context_length=4096
    ),
    "Llama 2 70B": AttentionShape(
        n_layers=80, n_heads=64, n_kv_heads=8, head_dim=128, context_length=4096
    ),
    "Mistral 7B": AttentionShape(
        n_layers=32,
        n_heads=32,
        n_kv_heads=8,
        head_dim=128,
        context_length=8192,
        sliding_window=4096,
    ),
}


# --------------------------------------------------------------------------------------
# Training memory per GPU under data, tensor and pipeline parallelism and ZeRO
# --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class TrainingMemory:
    """Bytes per GPU of one training configuration (see :func:`training_memory`)."""

    weights: float
    gradients: float
    optimizer: float
    activations: float

    @property
    def model_states(self) -> float:
        """Weights, gradients and optimizer states: what ZeRO partitions."""
        return self.weights + self.gradients + self.optimizer

    @property
    def total(self) -> float:
        return self.model_states + self.activations


def activation_bytes_per_layer(
    *,
    seq_len: int,
    micro_batch: int,
    hidden: int,
    n_heads: int,
    tensor_parallel: int = 1,
    recompute: str = "none",
) -> float:
    """Activation bytes one transformer layer keeps for the backward pass, 16-bit training.

    Korthikanti et al. (2022), "Reducing Activation Recomputation in Large Transformer
    Models", section 4: without parallelism a layer stores ``s b h (34 + 5 a s / h)`` bytes
    (``s`` sequence length, ``b`` micro-batch, ``h`` hidden size, ``a`` heads; the ``5 a s / h``
    term is the attention scores, softmax and its dropout mask). With tensor parallelism of
    degree ``t`` and sequence parallelism everything is split ``t`` ways (their eq. 4 with
    sequence parallelism): ``s b h (34 + 5 a s / h) / t``. ``recompute="selective"`` recomputes
    the attention scores instead of storing them: ``34 s b h / t``; ``"full"`` keeps only each
    layer's input: ``2 s b h / t`` (the recomputation costs one extra forward pass).
    """
    for name, value in (
        ("seq_len", seq_len),
        ("micro_batch", micro_batch),
        ("hidden", hidden),
        ("n_heads", n_heads),
        ("tensor_parallel", tensor_parallel),
    ):
        check_int(name, value, low=1)
    sbh = seq_len * micro_batch * hidden
    if recompute == "none":
        per_layer = sbh * (34 + 5 * n_heads * seq_len / hidden)
    elif recompute == "selective":
        per_layer = 34 * sbh
    elif recompute == "full":
        per_layer = 2 * sbh
    else:
        raise ValueError(f"recompute must be 'none', 'selective' or 'full', got {recompute!r}")
    return per_layer / tensor_parallel


def training_memory(
    n_params: float,
    *,
    data_parallel: int = 1,
    zero_stage: int = 0,
    tensor_parallel: int = 1,
    pipeline_parallel: int = 1,
    weight_bytes: float = 2,
    grad_bytes: float = 2,
    optimizer_bytes: float = 12,
    activations: float = 0.0,
) -> TrainingMemory:
    """Model-state bytes per GPU for mixed-precision Adam under each parallelism scheme.

    Rajbhandari et al. (2020), "ZeRO", section 3.1: with mixed precision each of the ``Ψ``
    parameters costs 2 bytes of 16-bit weights, 2 of 16-bit gradients and ``K = 12`` of
    optimizer states (a 32-bit master copy, Adam's momentum and variance, 4 bytes each), so
    plain data parallelism keeps ``16 Ψ`` bytes on every GPU. ZeRO partitions them across the
    ``N_d`` data-parallel ranks: stage 1 the optimizer states (``4Ψ + KΨ/N_d``), stage 2 also
    the gradients (``2Ψ + (2 + K)Ψ/N_d``), stage 3 also the weights (``(4 + K)Ψ/N_d``; PyTorch
    FSDP's full sharding). Tensor parallelism (Megatron-LM) of degree ``t`` and pipeline
    parallelism with ``p`` stages each hold ``1/(t p)`` of the model (replicated layer norms and
    the embedding split are ignored). ``activations`` (bytes per GPU, e.g. from
    :func:`activation_bytes_per_layer` times the layers a GPU holds) is added as given.
    """
    psi = check_float("n_params", n_params, low=0.0, low_open=True)
    for name, value in (
        ("data_parallel", data_parallel),
        ("tensor_parallel", tensor_parallel),
        ("pipeline_parallel", pipeline_parallel),
    ):
        check_int(name, value, low=1)
    check_int("zero_stage", zero_stage, low=0, high=3)
    check_float("activations", activations, low=0.0)
    local = psi / (tensor_parallel * pipeline_parallel)  # the parameters this GPU's shard holds
    n_d = data_parallel
    weights = local * weight_bytes / (n_d if zero_stage >= 3 else 1)
    gradients = local * grad_bytes / (n_d if zero_stage >= 2 else 1)
    optimizer = local * optimizer_bytes / (n_d if zero_stage >= 1 else 1)
    return TrainingMemory(weights, gradients, optimizer, float(activations))


def pipeline_bubble_fraction(*, stages: int, micro_batches: int) -> float:
    """Fraction of a pipeline-parallel step that each GPU sits idle: ``(p - 1) / (m + p - 1)``.

    With ``p`` stages and ``m`` micro-batches per step under the GPipe / 1F1B schedules, a
    step lasts ``m + p - 1`` micro-batch slots of which each stage computes in ``m`` (Huang
    et al., 2019, "GPipe", section 2.3; Narayanan et al., 2021, "Efficient Large-Scale Language
    Model Training on GPU Clusters Using Megatron-LM", section 2.2.1). More micro-batches
    shrink the bubble.
    """
    check_int("stages", stages, low=1)
    check_int("micro_batches", micro_batches, low=1)
    return (stages - 1) / (micro_batches + stages - 1)


# Bytes of float and quantized weights
# --------------------------------------------------------------------------------------


def linear_bytes(
    in_features: int,
    out_features: int,
    *,
    bias: bool = True,
    weight_bits: int = 32,
    group_size: int | None = None,
    float_bytes: int = 4,
) -> int:
    """Bytes a linear layer stores: its weight, its quantization scales and its bias.

    ``weight_bits=32`` (or 16) is a float layer with no scales: ``out * in * bits / 8``.
    Below 16 bits the weight is integers plus one float scale per output row
    (``group_size=None``, per channel) or per ``group_size`` inputs of each row (per group,
    ``out * in / group_size`` scales). The bias and the scales take ``float_bytes`` each
    (4 for float32). So an int8 ``4096 x 4096`` layer takes ``4096^2 + 2 * 4 * 4096`` bytes,
    3.996 times less than float32; the scales and bias are what keeps it from 4.
    """
    check_int("in_features", in_features, low=1)
    check_int("out_features", out_features, low=1)
    check_int("weight_bits", weight_bits, low=1, high=32)
    check_int("float_bytes", float_bytes, low=1)
    weight_bits_total = in_features * out_features * weight_bits
    if weight_bits_total % 8:
        raise ValueError(
            f"{out_features} x {in_features} weights of {weight_bits} bits are not whole bytes"
        )
    n_scales = 0
    if weight_bits < 16:
        if group_size is None:
            n_scales = out_features
        else:
            check_int("group_size", group_size, low=1)
            if in_features % group_size:
                raise ValueError(f"group_size {group_size} must divide in_features {in_features}")
            n_scales = out_features * (in_features // group_size)
    elif group_size is not None:
        raise ValueError("group_size applies to quantized weights (weight_bits < 16) only")
    return weight_bits_total // 8 + (n_scales + (out_features if bias else 0)) * float_bytes


def state_dict_bytes(model: nn.Module) -> int:
    """Bytes of the tensors in ``model.state_dict()`` (what a checkpoint of it holds).

    Parameters and persistent buffers count, whatever their dtype (an int8 weight 1 byte per
    value); a tensor shared by two modules counts once.
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    seen: set[tuple[int, int]] = set()
    total = 0
    for tensor in model.state_dict().values():
        key = (tensor.data_ptr(), tensor.numel())
        if key in seen:
            continue
        seen.add(key)
        total += tensor.numel() * tensor.element_size()
    return total


# --------------------------------------------------------------------------------------
# Training FLOPs per token, counted exactly (chapter 1)
# --------------------------------------------------------------------------------------


def training_flops_per_token(cfg: GPTShape, *, context_length: int | None = None) -> int:
    """Matrix-multiply FLOPs of one training token of ``GPTModel``: forward plus backward.

    A training step on windows of ``T`` tokens runs the forward pass of
    :func:`forward_flops` over ``T`` new tokens, then the backward pass, which costs twice
    the forward for every matrix multiply ``Y = X W`` (one product for the gradient with
    respect to ``X``, one for ``W``; the score products ``Q K^T`` and ``weights @ V`` have
    two inputs that both need gradients, so the same factor applies). Every product in the
    model needs both gradients: the embeddings feed LayerNorms whose gains are trained, so
    even the first projection passes a gradient down. Per token::

        3 * forward_flops(T) / T = 3 * (L * (24 C^2 + 4 T C) + 2 C V)

    against Kaplan et al.'s (2020, eq. 2.2 and section 2.1) ``6 N`` with ``N ~ 12 L C^2``
    non-embedding parameters: the rule drops the context term ``12 L T C`` (``6 L T C`` in
    Kaplan's count, whose causal attention computes only half the score matrix; the book's
    model computes all of it and masks) and counts the head ``2 C V`` as it does the other
    matrices. ``context_length`` defaults to ``cfg.context_length``, the window the model
    trains on.
    """
    t = cfg.context_length if context_length is None else context_length
    check_int("context_length", t, low=1)
    return 3 * forward_flops(cfg, num_new=t) // t


# --------------------------------------------------------------------------------------
# Mixtures of experts: total versus active parameters
# --------------------------------------------------------------------------------------


def count_active_parameters(model: nn.Module) -> int:
    """Parameters one token uses: :func:`count_parameters` minus the experts it skips.

    A module with an ``experts`` ``nn.ModuleList`` of equally sized experts and a ``top_k``
    attribute (``tutorial_code.moe.SparseMoE``, found by those attributes so that this
    module stays a leaf) runs ``top_k`` of its ``E`` experts per token, so ``E - top_k``
    experts' parameters are inactive; its router is always active. Every other parameter
    counts as active (the embedding table is a lookup, but it is counted, as the published
    "active parameter" figures count it).
    """
    total = count_parameters(model)
    inactive = 0
    for module in model.modules():
        experts, top_k = getattr(module, "experts", None), getattr(module, "top_k", None)
        if isinstance(experts, nn.ModuleList) and isinstance(top_k, int) and len(experts):
            sizes = {count_parameters(e) for e in experts}
            if len(sizes) != 1:
                raise ValueError("count_active_parameters needs experts of equal size")
            inactive += (len(experts) - top_k) * sizes.pop()
    return total - inactive


@dataclass(frozen=True)
class MoEShape:
    """A decoder-only MoE transformer in Mixtral's layout, for counting its parameters.

    Per layer: attention with ``n_heads`` query heads and ``n_kv_heads`` key/value heads of
    size ``head_dim`` (grouped-query attention, no biases): ``C (H + 2 H_kv) D + H D C``; two
    RMSNorm gains ``2C``; a router ``E C``; ``E`` routed SwiGLU experts of ``3 C h`` each and
    ``num_shared_experts`` always-active ones of the same size (DeepSeekMoE's shared experts).
    Plus token embeddings ``V C``, a final norm ``C`` and an untied output head ``V C``.
    """

    vocab_size: int
    d_model: int
    n_layers: int
    n_heads: int
    n_kv_heads: int
    head_dim: int
    d_hidden: int
    num_experts: int
    top_k: int
    num_shared_experts: int = 0

    def _counts(self, experts_per_token: int) -> int:
        c, d = self.d_model, self.head_dim
        attention = c * (self.n_heads + 2 * self.n_kv_heads) * d + self.n_heads * d * c
        expert = 3 * c * self.d_hidden
        layer = attention + 2 * c + self.num_experts * c + experts_per_token * expert
        return 2 * self.vocab_size * c + c + self.n_layers * layer

    @property
    def total_parameters(self) -> int:
        """Every parameter the model stores."""
        return self._counts(self.num_experts + self.num_shared_experts)

    @property
    def active_parameters(self) -> int:
        """The parameters one token passes through: ``top_k`` routed + the shared experts."""
        return self._counts(self.top_k + self.num_shared_experts)


#: Mixtral 8x7B (Jiang et al., 2024, Table 1 and the released configuration: dim 4096,
#: 32 layers, 32 heads, 8 key/value heads, head_dim 128, hidden_dim 14336, vocabulary 32000,
#: 8 experts, top-2). The paper quotes 47B parameters of which 13B are active.
MOE_SHAPES: dict[str, MoEShape] = {
    "Mixtral 8x7B": MoEShape(
        vocab_size=32000,
        d_model=4096,
        n_layers=32,
        n_heads=32,
        n_kv_heads=8,
        head_dim=128,
        d_hidden=14336,
        num_experts=8,
        top_k=2,
    ),
}
