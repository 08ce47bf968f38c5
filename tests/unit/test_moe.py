"""tutorial_code.moe and the MoE parameter counts of tutorial_code.costs.

References: ``transformers``' ``MixtralSparseMoeBlock``, ``MixtralTopKRouter`` and
``load_balancing_loss_func`` (the pinned version, a test-only dependency) with copied
weights; a dense computation (every expert on every token); values derived by hand on a
4-token, 4-expert example; Mixtral 8x7B's published parameter count.
"""

from __future__ import annotations

import math
from functools import partial

import pytest
import torch
from torch import nn

from tests.paths import ROOT, load_script
from tutorial_code.costs import MOE_SHAPES, MoEShape, count_active_parameters, count_parameters
from tutorial_code.model import GPTConfig, GPTModel
from tutorial_code.moe import (
    MoEFeedForward,
    SparseMoE,
    SwiGLUFeedForward,
    TopKRouter,
    apply_moe,
    load_balancing_loss,
    moe_dense_reference,
    moe_layers,
    moe_lm_loss,
    router_logits_of,
    routing_fractions,
)
from tutorial_code.training import lm_loss

transformers_mixtral = pytest.importorskip("transformers.models.mixtral.modeling_mixtral")

C, H, E, K = 16, 24, 6, 2


def mixtral_pair(seed: int = 0) -> tuple[SparseMoE, nn.Module]:
    """Our SparseMoE and transformers' MixtralSparseMoeBlock holding the same weights."""
    from transformers import MixtralConfig

    torch.manual_seed(seed)
    ours = SparseMoE(C, H, E, K)
    config = MixtralConfig(
        hidden_size=C, intermediate_size=H, num_local_experts=E, num_experts_per_tok=K
    )
    theirs = transformers_mixtral.MixtralSparseMoeBlock(config)
    with torch.no_grad():
        theirs.gate.weight.copy_(ours.router.weight)
        for e, expert in enumerate(ours.experts):
            # gate_up_proj[e] is [gate; up] stacked along the output dimension (2H, C)
            theirs.experts.gate_up_proj[e].copy_(torch.cat([expert.gate.weight, expert.up.weight]))
            theirs.experts.down_proj[e].copy_(expert.down.weight)
    return ours, theirs.eval()


def test_router_equals_mixtrals_router() -> None:
    """Reference: transformers' MixtralTopKRouter (logits, renormalised top-k weights, indices)."""
    ours, theirs = mixtral_pair()
    x = torch.randn(3, 7, C)
    logits, weights, indices = ours.router(x)
    ref_logits, ref_weights, ref_indices = theirs.gate(x)
    torch.testing.assert_close(logits.reshape(-1, E), ref_logits, rtol=0, atol=1e-6)
    torch.testing.assert_close(weights.reshape(-1, K), ref_weights, rtol=0, atol=1e-6)
    assert torch.equal(indices.reshape(-1, K), ref_indices)
    assert weights.dtype == torch.float32
    torch.testing.assert_close(weights.sum(-1), torch.ones(3, 7))


def test_renormalised_top_k_equals_softmax_over_the_top_k_logits() -> None:
    """Reference: softmax restricted to the k largest logits (Mixtral's eq. 2), by hand."""
    torch.manual_seed(1)
    router = TopKRouter(C, E, K)
    logits, weights, indices = router(torch.randn(10, C))
    torch.testing.assert_close(weights, torch.softmax(logits.gather(-1, indices), dim=-1))


def test_sparse_moe_block_equals_mixtrals_block_outputs_and_gradients() -> None:
    """Reference: transformers' MixtralSparseMoeBlock forward and backward, copied weights."""
    ours, theirs = mixtral_pair(seed=2)
    x = torch.randn(4, 9, C)
    x1, x2 = x.clone().requires_grad_(), x.clone().requires_grad_()
    y, logits = ours(x1)
    ref = theirs(x2)
    assert y.shape == x.shape and logits.shape == (4, 9, E)
    torch.testing.assert_close(y, ref, rtol=0, atol=1e-6)
    grad = torch.randn_like(y)
    y.backward(grad)
    ref.backward(grad)
    torch.testing.assert_close(x1.grad, x2.grad, rtol=0, atol=1e-6)
    torch.testing.assert_close(ours.router.weight.grad, theirs.gate.weight.grad, rtol=0, atol=1e-5)
    ours_down = torch.stack([e.down.weight.grad for e in ours.experts])
    torch.testing.assert_close(ours_down, theirs.experts.down_proj.grad, rtol=0, atol=1e-6)


def test_sparse_dispatch_equals_the_dense_reference() -> None:
    """Reference: every expert on every token, weighted by the sparse router weights."""
    torch.manual_seed(3)
    moe = SparseMoE(C, H, E, K)
    x = torch.randn(2, 11, C)
    torch.testing.assert_close(moe(x)[0], moe_dense_reference(moe, x), rtol=0, atol=1e-6)


def test_every_expert_runs_once_on_its_tokens_only() -> None:
    """Reference: the router's own top-k indices, counted by hand (no loop over tokens)."""
    torch.manual_seed(4)
    moe = SparseMoE(C, H, E, K)
    x = torch.randn(5, 8, C)
    calls: dict[int, int] = {}
    rows: dict[int, int] = {}

    def hook(index: int):
        def record(module: nn.Module, args: tuple) -> None:
            calls[index] = calls.get(index, 0) + 1
            rows[index] = args[0].shape[0]

        return record

    for i, expert in enumerate(moe.experts):
        expert.register_forward_pre_hook(hook(i))
    _, _, indices = moe.router(x)
    moe(x)
    expected = torch.bincount(indices.flatten(), minlength=E)
    assert all(count == 1 for count in calls.values())
    assert {i: int(n) for i, n in enumerate(expected) if n} == rows
    assert sum(rows.values()) == 5 * 8 * K


# --------------------------------------------------------------------------------------
# A 4-token, 4-expert example by hand
# --------------------------------------------------------------------------------------


def hand_router(token_logits: list[list[float]]) -> tuple[TopKRouter, torch.Tensor]:
    """A router whose weight is the identity, so each token's logits are the token itself."""
    router = TopKRouter(4, 4, 2)
    with torch.no_grad():
        router.weight.copy_(torch.eye(4))
    return router, torch.tensor(token_logits).log()


def test_four_tokens_four_experts_by_hand() -> None:
    """Reference: probabilities (4, 2, 1, 1) / 8 rotated over four tokens, worked by hand:
    top-2 weights 2/3 and 1/3; every expert gets 2 of the 8 assignments (f_e = 1/2, counting a
    token once per chosen expert) and mean probability P_e = 1/4; loss 4 * 4 * (1/2)(1/4) = 2."""
    router, x = hand_router([[4, 2, 1, 1], [1, 4, 2, 1], [1, 1, 4, 2], [2, 1, 1, 4]])
    logits, weights, indices = router(x)
    assert indices.tolist() == [[0, 1], [1, 2], [2, 3], [3, 0]]
    torch.testing.assert_close(weights, torch.tensor([[2 / 3, 1 / 3]] * 4))
    f, p = routing_fractions(logits, 4, 2)
    torch.testing.assert_close(f, torch.full((4,), 0.5))
    torch.testing.assert_close(p, torch.full((4,), 0.25))
    assert load_balancing_loss(logits, 4, 2).item() == pytest.approx(2.0)


def test_collapsed_routing_by_hand() -> None:
    """Reference: every token routed to experts 0 and 1 with p = (1/2, 1/4, 1/8, 1/8):
    f = (1, 1, 0, 0), P = p, loss = 4 (1/2 + 1/4) = 3 > top_k = 2."""
    router, x = hand_router([[4, 2, 1, 1]] * 4)
    logits, _, _ = router(x)
    f, p = routing_fractions(logits, 4, 2)
    torch.testing.assert_close(f, torch.tensor([1.0, 1.0, 0.0, 0.0]))
    torch.testing.assert_close(p, torch.tensor([0.5, 0.25, 0.125, 0.125]))
    assert load_balancing_loss(logits, 4, 2).item() == pytest.approx(3.0)


@pytest.mark.parametrize("top_k", [1, 2, 3])
def test_uniform_router_probabilities_give_exactly_top_k(top_k: int) -> None:
    """Reference: P_e = 1/E makes the loss E * sum_e f_e / E = sum_e f_e = k, by hand
    (1 only for Switch's top-1), whatever experts the ties pick."""
    logits = torch.zeros(50, 8)
    assert load_balancing_loss(logits, 8, top_k).item() == pytest.approx(top_k)


# --------------------------------------------------------------------------------------
# The auxiliary loss against transformers
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize("top_k", [1, 2, 4])
def test_aux_loss_equals_transformers_over_layers(top_k: int) -> None:
    """Reference: transformers.load_balancing_loss_func on a tuple of per-layer logits,
    value and gradient."""
    torch.manual_seed(5)
    layers = [torch.randn(6 * 10, E, requires_grad=True) for _ in range(3)]
    ours = load_balancing_loss(layers, E, top_k)
    ref_layers = [t.detach().clone().requires_grad_() for t in layers]
    ref = transformers_mixtral.load_balancing_loss_func(tuple(ref_layers), E, top_k)
    torch.testing.assert_close(ours, ref, rtol=0, atol=1e-6)
    ours.backward()
    ref.backward()
    for a, b in zip(layers, ref_layers):
        torch.testing.assert_close(a.grad, b.grad, rtol=0, atol=1e-7)


def test_aux_loss_with_padding_equals_transformers() -> None:
    """Reference: transformers.load_balancing_loss_func with an attention mask."""
    torch.manual_seed(6)
    batch, length = 3, 7
    layers = [torch.randn(batch * length, E) for _ in range(2)]
    mask = torch.ones(batch, length, dtype=torch.long)
    mask[0, :3] = 0
    mask[2, :5] = 0
    ours = load_balancing_loss([t.view(batch, length, E) for t in layers], E, K, mask)
    ref = transformers_mixtral.load_balancing_loss_func(tuple(layers), E, K, mask)
    torch.testing.assert_close(ours, ref, rtol=0, atol=1e-6)
    # padding changes nothing only if it is excluded: the unmasked loss differs
    assert abs(load_balancing_loss(layers, E, K).item() - ours.item()) > 1e-4


def test_aux_loss_gradient_reaches_the_router_only_through_p() -> None:
    """Reference: autograd of E * sum f_e P_e with f held constant (f is a count)."""
    torch.manual_seed(7)
    logits = torch.randn(20, E, requires_grad=True)
    load_balancing_loss(logits, E, K).backward()
    f, _ = routing_fractions(logits.detach(), E, K)
    other = logits.detach().clone().requires_grad_()
    (E * (f * torch.softmax(other, -1).mean(0)).sum()).backward()
    torch.testing.assert_close(logits.grad, other.grad)


# --------------------------------------------------------------------------------------
# The GPT with MoE feed-forward blocks
# --------------------------------------------------------------------------------------

CFG = GPTConfig(vocab_size=30, context_length=12, emb_dim=C, n_heads=2, n_layers=3, drop_rate=0.0)


def moe_gpt() -> GPTModel:
    torch.manual_seed(8)
    model = GPTModel(CFG)
    apply_moe(model, num_experts=E, top_k=K, d_hidden=H)
    return model


def test_apply_moe_swaps_every_feed_forward_block() -> None:
    """Reference: the GPT's stable names, listed by hand."""
    torch.manual_seed(8)
    model = GPTModel(CFG)
    names = apply_moe(model, num_experts=E, top_k=K, d_hidden=H)
    assert names == [f"trf_blocks.{i}.ff" for i in range(3)]
    assert all(isinstance(b.ff, MoEFeedForward) for b in model.trf_blocks)
    assert len(moe_layers(model)) == 3
    assert isinstance(model.trf_blocks[0].ff.moe.experts[0].gate, nn.Linear)
    x = torch.randint(0, 30, (2, 12))
    assert model(x).shape == (2, 12, 30)
    assert [t.shape for t in router_logits_of(model)] == [(24, E)] * 3


def test_moe_lm_loss_adds_the_pooled_aux_loss() -> None:
    """Reference: lm_loss + coef * load_balancing_loss of the three layers' logits, by hand;
    coefficient 0 gives lm_loss exactly."""
    model = moe_gpt()
    x, y = torch.randint(0, 30, (2, 12)), torch.randint(0, 30, (2, 12))
    total = moe_lm_loss(model, x, y, router_aux_loss_coef=0.02)
    base = lm_loss(model, x, y)
    aux = load_balancing_loss(router_logits_of(model), E, K)
    torch.testing.assert_close(total, base + 0.02 * aux)
    assert moe_lm_loss(model, x, y, router_aux_loss_coef=0.0).item() == base.item()
    loss_fn = partial(moe_lm_loss, router_aux_loss_coef=0.01)
    loss_fn(model, x, y).backward()
    assert all(m.router.weight.grad is not None for m in moe_layers(model))


def test_active_and_total_parameters_of_a_built_moe_gpt() -> None:
    """Reference: the built model's tensors; one token uses top_k of the E experts."""
    model = moe_gpt()
    total = count_parameters(model)
    expert = count_parameters(model.trf_blocks[0].ff.moe.experts[0])
    assert expert == 3 * C * H
    assert count_active_parameters(model) == total - 3 * (E - K) * expert
    assert count_active_parameters(GPTModel(CFG)) == count_parameters(GPTModel(CFG))


def test_mixtral_8x7b_published_parameter_counts() -> None:
    """Reference: Mixtral 8x7B's released checkpoint holds 46,702,792,704 parameters (the
    paper's "47B"); 12,879,925,248 are active per token (the paper's "13B"), derived by hand
    from the configuration."""
    shape = MOE_SHAPES["Mixtral 8x7B"]
    assert shape.total_parameters == 46_702_792_704
    assert shape.active_parameters == 12_879_925_248
    assert round(shape.total_parameters / 1e9) == 47 and round(shape.active_parameters / 1e9) == 13


def test_moe_shape_equals_a_built_model_with_shared_experts() -> None:
    """Reference: the tensors of a tiny model built to the same layout by hand."""
    shape = MoEShape(
        vocab_size=11, d_model=8, n_layers=2, n_heads=4, n_kv_heads=2, head_dim=2,
        d_hidden=5, num_experts=3, top_k=1, num_shared_experts=1,
    )  # fmt: skip
    layer = nn.ModuleDict(
        {
            "q": nn.Linear(8, 8, bias=False), "k": nn.Linear(8, 4, bias=False),
            "v": nn.Linear(8, 4, bias=False), "o": nn.Linear(8, 8, bias=False),
            "norms": nn.ParameterList([nn.Parameter(torch.ones(8)) for _ in range(2)]),
            "moe": SparseMoE(8, 5, 3, 1), "shared": SwiGLUFeedForward(8, 5),
        }
    )  # fmt: skip
    per_layer = count_parameters(layer)
    assert shape.total_parameters == 2 * 11 * 8 + 8 + 2 * per_layer
    active = per_layer - 2 * count_parameters(SwiGLUFeedForward(8, 5))
    assert shape.active_parameters == 2 * 11 * 8 + 8 + 2 * active


# --------------------------------------------------------------------------------------
# Bad inputs
# --------------------------------------------------------------------------------------


def test_bad_arguments_raise_clear_errors() -> None:
    """Reference: the argument checks' documented messages."""
    with pytest.raises(ValueError, match=r"top_k must be an int in \[1, 4\]"):
        TopKRouter(8, 4, 5)
    with pytest.raises(TypeError, match="num_experts must be an int"):
        SparseMoE(8, 8, 4.0, 2)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="x must have shape"):
        TopKRouter(8, 4, 2)(torch.randn(3, 7))
    with pytest.raises(ValueError, match="num_experts=4"):
        load_balancing_loss(torch.randn(5, 3), 4, 2)
    with pytest.raises(ValueError, match="same tokens"):
        load_balancing_loss([torch.randn(5, 4), torch.randn(6, 4)], 4, 2)
    with pytest.raises(ValueError, match="non-empty"):
        load_balancing_loss([], 4, 2)
    with pytest.raises(ValueError, match="attention_mask has 3 entries"):
        load_balancing_loss(torch.randn(5, 4), 4, 2, torch.ones(3))
    with pytest.raises(ValueError, match="hides every token"):
        load_balancing_loss(torch.randn(5, 4), 4, 2, torch.zeros(5))
    with pytest.raises(ValueError, match="router_aux_loss_coef must be >= 0"):
        moe_lm_loss(
            moe_gpt(),
            torch.zeros(1, 2, dtype=torch.long),
            torch.zeros(1, 2, dtype=torch.long),
            router_aux_loss_coef=-1.0,
        )
    with pytest.raises(ValueError, match="no SparseMoE layer"):
        router_logits_of(GPTModel(CFG))
    with pytest.raises(ValueError, match="forward pass first"):
        router_logits_of(moe_gpt())
    with pytest.raises(ValueError, match="matched no FeedForward"):
        apply_moe(moe_gpt(), num_experts=E, top_k=K, d_hidden=H)
    assert math.isfinite(load_balancing_loss(torch.randn(5, 4), 4, 2).item())


# --------------------------------------------------------------------------------------
# The stored experiment (experiments/moe.py) against a short re-run
# --------------------------------------------------------------------------------------


def test_stored_moe_experiment_matches_a_short_rerun() -> None:
    """Reference: experiments/results/moe.json. The first five steps of seed 0's mixture
    (same data, initial weights, batches and schedule) reproduce the stored losses; the stored
    runs are complete and consistent with the parameter counts computed here."""
    import json

    script = load_script("experiments/moe.py")
    stored = json.loads((ROOT / "experiments" / "results" / "moe.json").read_text(encoding="utf-8"))
    data = script.corpus()
    assert stored["vocab_size"] == data["vocab_size"]
    torch.set_num_threads(1)
    rerun = script.run("moe", 0, data, total_steps=stored["steps"], max_steps=5)
    (run,) = [r for r in stored["runs"] if r["variant"] == "moe" and r["seed"] == 0]
    assert rerun["train_loss"] == pytest.approx(run["train_loss"][:5], rel=1e-4)
    assert rerun["aux_loss"] == pytest.approx(run["aux_loss"][:5], rel=1e-4)
    assert rerun["parameters"] == run["parameters"]
    assert rerun["active_parameters"] == run["active_parameters"]
    assert {(r["variant"], r["seed"]) for r in stored["runs"]} == {
        (v, s) for v in script.VARIANTS for s in stored["seeds"]
    }
    for r in stored["runs"]:
        assert len(r["train_loss"]) == stored["steps"]
        assert r["eval_steps"][-1] == stored["steps"]
