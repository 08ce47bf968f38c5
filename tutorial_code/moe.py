"""Sparse mixture of experts (MoE): a top-k router, SwiGLU experts and the load-balancing loss.

A mixture-of-experts layer replaces one feed-forward network by ``E`` of them, the
**experts**, and a **router** that sends each token to only ``k`` of them (Shazeer et al.,
2017, "Outrageously Large Neural Networks"). The layer holds ``E`` experts' parameters but
each token pays for ``k``: parameters and compute per token are decoupled. The block here is
Mixtral's (Jiang et al., 2024, "Mixtral of Experts", section 2.1):

* :class:`TopKRouter`: ``router_logits = x W_g^T`` (no bias), ``p = softmax(router_logits)``
  over all ``E`` experts in float32, the ``k`` largest kept and renormalised to sum to 1
  (equal to a softmax over the top-``k`` logits alone, Mixtral's eq. 1-2);
* :class:`SwiGLUFeedForward`: each expert is ``down(silu(gate(x)) * up(x))`` (Shazeer,
  2020, "GLU Variants Improve Transformer"), three bias-free linears;
* :class:`SparseMoE`: ``y = sum_{i in top-k(x)} w_i(x) * expert_i(x)``, computed expert by
  expert: gather the tokens routed to an expert, one matmul per expert, scatter-add back;
* :func:`load_balancing_loss`: Switch Transformer's auxiliary loss (Fedus et al., 2021,
  eq. 4-6) ``E * sum_e f_e P_e``, as ``transformers.load_balancing_loss_func`` computes it,
  which is ``k`` (not 1) when routing is uniform;
* :func:`apply_moe` swaps the book GPT's feed-forward blocks for :class:`SparseMoE` through
  :func:`tutorial_code.modules.replace_modules`; :func:`moe_lm_loss` adds
  ``router_aux_loss_coef * aux`` to the language-model loss.

Shapes: ``N`` tokens (any leading dimensions are flattened), ``C`` the model width
(``d_model``), ``H`` an expert's hidden width (``d_hidden``), ``E`` experts, ``k = top_k``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from tutorial_code.checks import check_float, check_int, check_module, check_tensor
from tutorial_code.model import FeedForward
from tutorial_code.modules import replace_modules
from tutorial_code.training import lm_loss

__all__ = [
    "MoEFeedForward",
    "SparseMoE",
    "SwiGLUFeedForward",
    "TopKRouter",
    "apply_moe",
    "load_balancing_loss",
    "moe_dense_reference",
    "moe_layers",
    "moe_lm_loss",
    "router_logits_of",
    "routing_fractions",
]


class TopKRouter(nn.Module):
    """Mixtral's router: a bias-free linear, a softmax over all experts, top-k, renormalise.

    ``forward(x)``: ``x`` ``(..., C)`` -> ``(router_logits, weights, expert_indices)`` with
    shapes ``(..., E)``, ``(..., k)`` and ``(..., k)``. ``weights`` are the renormalised
    top-``k`` probabilities (float32, each row sums to 1); ``expert_indices`` are in
    descending order of probability. The weight ``W_g`` is the parameter ``weight`` ``(E, C)``,
    stored as ``transformers``' ``MixtralTopKRouter`` stores it (and not as an ``nn.Linear``,
    so LoRA's ``"all-linear"`` does not wrap the router).
    """

    def __init__(self, d_model: int, num_experts: int, top_k: int) -> None:
        super().__init__()
        check_int("d_model", d_model, low=1)
        check_int("num_experts", num_experts, low=1)
        check_int("top_k", top_k, low=1, high=num_experts)
        self.d_model, self.num_experts, self.top_k = d_model, num_experts, top_k
        self.weight = nn.Parameter(torch.empty(num_experts, d_model))
        nn.init.kaiming_uniform_(self.weight, a=math.sqrt(5))  # nn.Linear's default

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        if x.shape[-1] != self.d_model:
            raise ValueError(f"x must have shape (..., {self.d_model}), got {tuple(x.shape)}")
        router_logits = F.linear(x, self.weight)  # x W_g^T: (..., E)
        probs = torch.softmax(router_logits.float(), dim=-1)  # over all E experts, in float32
        top_probs, expert_indices = torch.topk(probs, self.top_k, dim=-1)  # (..., k)
        weights = top_probs / top_probs.sum(dim=-1, keepdim=True)  # renormalise to sum to 1
        return router_logits, weights, expert_indices

    def extra_repr(self) -> str:
        return f"d_model={self.d_model}, num_experts={self.num_experts}, top_k={self.top_k}"


class SwiGLUFeedForward(nn.Module):
    """A SwiGLU feed-forward network: ``down(silu(gate(x)) * up(x))``, no biases.

    ``gate`` and ``up`` map ``C -> H``, ``down`` maps ``H -> C``: ``3 C H`` parameters
    (Shazeer, 2020, eq. 6; Mixtral's experts and LLaMA's MLP). ``x``: ``(..., C)`` ->
    ``(..., C)``. Also the dense baseline that the chapter compares a mixture against.
    """

    def __init__(self, d_model: int, d_hidden: int) -> None:
        super().__init__()
        check_int("d_model", d_model, low=1)
        check_int("d_hidden", d_hidden, low=1)
        self.gate = nn.Linear(d_model, d_hidden, bias=False)
        self.up = nn.Linear(d_model, d_hidden, bias=False)
        self.down = nn.Linear(d_hidden, d_model, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.down(F.silu(self.gate(x)) * self.up(x))


class SparseMoE(nn.Module):
    """A sparse mixture-of-experts block (Mixtral's ``MixtralSparseMoeBlock``).

    ``y(x) = sum_{i in top-k(x)} w_i(x) expert_i(x)`` with ``w`` from :class:`TopKRouter`
    and ``E`` :class:`SwiGLUFeedForward` experts of hidden width ``d_hidden``.

    ``forward(x)``: ``x`` ``(..., C)`` -> ``(y, router_logits)`` with ``y`` ``(..., C)`` and
    ``router_logits`` ``(..., E)``. The dispatch loops over experts, never over tokens:
    the ``N k`` (token, expert) assignments are sorted by expert, each expert runs once on the
    rows routed to it, and ``index_add_`` scatters the weighted outputs back. The logits of the
    last call are also kept in ``self.router_logits`` so that a loss can read every layer's
    after a forward pass of a whole model (:func:`router_logits_of`).
    """

    def __init__(self, d_model: int, d_hidden: int, num_experts: int, top_k: int) -> None:
        super().__init__()
        self.router = TopKRouter(d_model, num_experts, top_k)
        self.experts = nn.ModuleList(
            SwiGLUFeedForward(d_model, d_hidden) for _ in range(num_experts)
        )
        self.num_experts, self.top_k = num_experts, top_k
        self.router_logits: torch.Tensor | None = None

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        shape = x.shape
        h = x.reshape(-1, shape[-1])  # (N, C)
        router_logits, weights, expert_indices = self.router(h)  # (N, E), (N, k), (N, k)
        flat_experts = expert_indices.flatten()  # (N k,): assignment j is token j // k
        order = torch.argsort(flat_experts, stable=True)  # assignments grouped by expert
        tokens = order // self.top_k  # (N k,) the token of each sorted assignment
        token_weights = weights.flatten()[order].to(x.dtype)  # (N k,)
        counts = torch.bincount(flat_experts, minlength=self.num_experts).tolist()
        out = torch.zeros_like(h)
        for expert, rows, w in zip(
            self.experts, tokens.split(counts), token_weights.split(counts), strict=True
        ):
            if rows.numel():  # gather, one matmul chain per expert, weight, scatter-add
                out.index_add_(0, rows, expert(h[rows]) * w[:, None])
        self.router_logits = router_logits
        return out.reshape(shape), router_logits.reshape(*shape[:-1], self.num_experts)


class MoEFeedForward(nn.Module):
    """A GPT block's ``ff`` made of a :class:`SparseMoE` (attribute ``moe``).

    The block needs a module mapping ``(B, T, C)`` to ``(B, T, C)``; this one returns the
    mixture's output and leaves its router logits in ``moe.router_logits``.
    """

    def __init__(self, moe: SparseMoE) -> None:
        super().__init__()
        self.moe = moe

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.moe(x)[0]


@torch.no_grad()
def moe_dense_reference(moe: SparseMoE, x: torch.Tensor) -> torch.Tensor:
    """The same output computed densely: every expert on every token, then the sparse weights.

    ``sum_e g_e(x) expert_e(x)`` with ``g_e`` the renormalised router weight if ``e`` is in the
    token's top-k and 0 otherwise. ``E / k`` times the expert compute of :class:`SparseMoE`;
    a slow reference for tests and for the chapter.
    """
    check_module("moe", moe, SparseMoE)
    _, weights, expert_indices = moe.router(x)
    gates = torch.zeros(*x.shape[:-1], moe.num_experts, dtype=weights.dtype, device=x.device)
    gates.scatter_(-1, expert_indices, weights)  # (..., E), zero outside the top-k
    outputs = torch.stack([expert(x) for expert in moe.experts], dim=-1)  # (..., C, E)
    return (outputs * gates.unsqueeze(-2).to(x.dtype)).sum(dim=-1)


def _flatten_logits(
    router_logits: torch.Tensor | Sequence[torch.Tensor], num_experts: int
) -> list[torch.Tensor]:
    tensors = [router_logits] if isinstance(router_logits, torch.Tensor) else list(router_logits)
    if not tensors:
        raise ValueError("router_logits must be a tensor or a non-empty sequence of tensors")
    flat = []
    for i, t in enumerate(tensors):
        check_tensor(f"router_logits[{i}]", t, dtype="float")
        if t.shape[-1] != num_experts:
            raise ValueError(
                f"router_logits[{i}] must have shape (..., num_experts={num_experts}), "
                f"got {tuple(t.shape)}"
            )
        flat.append(t.reshape(-1, num_experts))
    rows = {t.shape[0] for t in flat}
    if len(rows) != 1:
        raise ValueError(f"every layer's router_logits must cover the same tokens, got {rows}")
    return flat


def routing_fractions(
    router_logits: torch.Tensor | Sequence[torch.Tensor],
    num_experts: int,
    top_k: int,
    attention_mask: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """``(f, P)``, each ``(E,)``: the two factors of the load-balancing loss.

    ``f_e = (1/N) sum_t 1[e in top-k(t)]`` is the fraction of tokens routed to expert ``e``
    (a token counts once for each of its ``k`` experts, so ``sum_e f_e = k``), and
    ``P_e = (1/N) sum_t p_e(t)`` the mean router probability of ``e`` (``sum_e P_e = 1``).
    Tokens are pooled over all layers given (``N`` = layers x tokens) and padding is left out
    (``attention_mask`` ``(B, T)``, 1 for real tokens, matching logits of shape
    ``(B, T, E)`` or ``(B T, E)``). ``f`` has no gradient (top-k is piecewise constant);
    ``P`` does, which is how the loss reaches the router.
    """
    check_int("num_experts", num_experts, low=1)
    check_int("top_k", top_k, low=1, high=num_experts)
    layers = _flatten_logits(router_logits, num_experts)
    n = layers[0].shape[0]
    if attention_mask is None:
        mask = torch.ones(n, device=layers[0].device)
    else:
        check_tensor("attention_mask", attention_mask)
        if attention_mask.numel() != n:
            raise ValueError(
                f"attention_mask has {attention_mask.numel()} entries but router_logits cover "
                f"{n} tokens per layer"
            )
        mask = attention_mask.reshape(-1).to(device=layers[0].device, dtype=torch.float32)
    counts = torch.zeros(num_experts, device=mask.device)
    prob_sums = torch.zeros(num_experts, device=mask.device)
    for logits in layers:
        probs = torch.softmax(logits.float(), dim=-1)  # (N, E)
        chosen = torch.topk(probs, top_k, dim=-1).indices  # (N, k)
        counts = counts.scatter_add(0, chosen.flatten(), mask.repeat_interleave(top_k))
        prob_sums = prob_sums + (probs * mask[:, None]).sum(dim=0)
    total = mask.sum() * len(layers)
    if total == 0:
        raise ValueError("attention_mask hides every token")
    return counts / total, prob_sums / total


def load_balancing_loss(
    router_logits: torch.Tensor | Sequence[torch.Tensor],
    num_experts: int,
    top_k: int,
    attention_mask: torch.Tensor | None = None,
) -> torch.Tensor:
    """Switch Transformer's auxiliary loss ``E * sum_e f_e P_e`` (Fedus et al., 2021, eq. 4).

    ``f`` and ``P`` are :func:`routing_fractions`. The loss is smallest when the load is
    spread evenly: with uniform routing ``f_e = k / E`` and ``P_e = 1 / E``, so the loss is
    ``E * E * (k / E) (1 / E) = k`` exactly (``1`` for Switch's top-1 routing, which is where
    the "perfectly balanced loss is 1" of many write-ups comes from). Accepts one layer's
    logits or a sequence of per-layer logits (tokens pooled over layers, as
    ``transformers.load_balancing_loss_func`` does). Returns a differentiable scalar.
    """
    f, p = routing_fractions(router_logits, num_experts, top_k, attention_mask)
    return num_experts * torch.sum(f * p)


# --------------------------------------------------------------------------------------
# The book's GPT with mixture-of-experts feed-forward blocks
# --------------------------------------------------------------------------------------


def apply_moe(
    model: nn.Module,
    *,
    num_experts: int,
    top_k: int,
    d_hidden: int,
    target_modules: str | Sequence[str] = r"trf_blocks\.\d+\.ff",
) -> list[str]:
    """Replace the GPT's feed-forward blocks by fresh :class:`SparseMoE` layers, in place.

    Each ``trf_blocks.{i}.ff`` (a :class:`tutorial_code.model.FeedForward`) becomes a
    :class:`MoEFeedForward` whose ``moe`` attribute is a
    ``SparseMoE(C, d_hidden, num_experts, top_k)``, on the same device and dtype. Returns the
    replaced names (``trf_blocks.{i}.ff``).
    """
    check_module("model", model)

    def factory(name: str, ff: nn.Module) -> nn.Module:
        reference = ff.fc1.weight
        moe = SparseMoE(ff.fc1.in_features, d_hidden, num_experts, top_k)
        return MoEFeedForward(moe).to(device=reference.device, dtype=reference.dtype)

    return replace_modules(model, target_modules, factory, module_type=FeedForward)


def moe_layers(model: nn.Module) -> list[SparseMoE]:
    """The :class:`SparseMoE` layers of ``model`` in ``named_modules`` order."""
    check_module("model", model)
    return [m for m in model.modules() if isinstance(m, SparseMoE)]


def router_logits_of(model: nn.Module) -> list[torch.Tensor]:
    """Every MoE layer's router logits ``(N, E)`` from the model's last forward pass."""
    layers = moe_layers(model)
    if not layers:
        raise ValueError("model has no SparseMoE layer (see apply_moe)")
    if any(m.router_logits is None for m in layers):
        raise ValueError("run a forward pass first: a SparseMoE layer has no router logits yet")
    return [m.router_logits for m in layers]  # type: ignore[misc]


def moe_lm_loss(
    model: nn.Module,
    inputs: torch.Tensor,
    targets: torch.Tensor,
    *,
    router_aux_loss_coef: float = 0.02,
) -> torch.Tensor:
    """Language-model loss plus ``router_aux_loss_coef * load_balancing_loss`` of all layers.

    As ``MixtralForCausalLM`` adds it: the auxiliary loss pools every layer's tokens. The
    default 0.02 is Mixtral's released configuration (``transformers``' ``MixtralConfig``
    defaults to 0.001; the Switch Transformer used 0.01). Use it as a ``loss_fn`` for
    :func:`tutorial_code.training.train` with ``functools.partial``.
    """
    coef = check_float("router_aux_loss_coef", router_aux_loss_coef, low=0.0)
    loss = lm_loss(model, inputs, targets)
    if coef == 0.0:
        return loss
    layers = moe_layers(model)
    aux = load_balancing_loss(router_logits_of(model), layers[0].num_experts, layers[0].top_k)
    return loss + coef * aux
