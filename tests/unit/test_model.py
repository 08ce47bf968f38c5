"""Tests for tutorial_code.model: shapes, causality, independent references, training."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from tutorial_code.costs import count_parameters, gpt_parameter_count
from tutorial_code.generation import generate
from tutorial_code.model import (
    GPT2_SMALL_CONFIG,
    GPTConfig,
    GPTModel,
    MultiHeadAttention,
)
from tutorial_code.training import lm_loss

SMALL = GPTConfig(
    vocab_size=50, context_length=16, emb_dim=32, n_heads=4, n_layers=2, drop_rate=0.0
)


def make_model(cfg: GPTConfig = SMALL, seed: int = 0) -> GPTModel:
    torch.manual_seed(seed)
    return GPTModel(cfg).eval()


def test_forward_shape() -> None:
    model = make_model()
    idx = torch.randint(0, SMALL.vocab_size, (3, 7))
    assert model(idx).shape == (3, 7, SMALL.vocab_size)


@pytest.mark.parametrize("cut", [1, 5, 15])
def test_future_tokens_never_change_earlier_logits(cut: int) -> None:
    model = make_model()
    g = torch.Generator().manual_seed(cut)
    idx = torch.randint(0, SMALL.vocab_size, (2, 16), generator=g)
    changed = idx.clone()
    changed[:, cut:] = (changed[:, cut:] + 1) % SMALL.vocab_size
    a, b = model(idx), model(changed)
    torch.testing.assert_close(a[:, :cut], b[:, :cut], rtol=0, atol=1e-6)
    assert not torch.allclose(a[:, cut:], b[:, cut:])


def test_causality_by_gradient() -> None:
    """d logits[t] / d input_embedding[s] is exactly zero for every s > t."""
    model = make_model()
    idx = torch.randint(0, SMALL.vocab_size, (1, 10))
    emb = model.tok_emb(idx).detach().requires_grad_(True)
    x = emb + model.pos_emb(torch.arange(10))
    for block in model.trf_blocks:
        x = block(x)
    logits = model.out_head(model.final_norm(x))
    for t in range(10):
        (grad,) = torch.autograd.grad(logits[0, t].sum(), emb, retain_graph=True)
        assert torch.count_nonzero(grad[0, t + 1 :]) == 0
        assert torch.count_nonzero(grad[0, : t + 1]) > 0


@pytest.mark.parametrize("qkv_bias", [False, True])
def test_attention_matches_pytorch_sdpa(qkv_bias: bool) -> None:
    torch.manual_seed(1)
    att = MultiHeadAttention(24, 24, context_length=12, dropout=0.0, num_heads=3, qkv_bias=qkv_bias)
    x = torch.randn(2, 9, 24)
    b, t, _ = x.shape

    def heads(w: torch.nn.Linear) -> torch.Tensor:
        return w(x).view(b, t, 3, 8).transpose(1, 2)

    ref = F.scaled_dot_product_attention(
        heads(att.W_query), heads(att.W_key), heads(att.W_value), is_causal=True
    )
    ref = att.out_proj(ref.transpose(1, 2).reshape(b, t, 24))
    torch.testing.assert_close(att(x), ref, rtol=1e-5, atol=1e-6)


def test_deterministic_forward_value() -> None:
    """A fixed seed gives a fixed output (pinned with torch 2.13, tolerance for CPU ISA)."""
    model = make_model(seed=123)
    idx = torch.arange(16).remainder(SMALL.vocab_size).view(1, 16)
    logits = model(idx)
    assert logits.sum().item() == pytest.approx(EXPECTED_SUM, rel=1e-4, abs=1e-4)
    assert logits[0, -1, :3].tolist() == pytest.approx(EXPECTED_LAST, rel=1e-4, abs=1e-5)


EXPECTED_SUM = -16.02502
EXPECTED_LAST = [-0.176021, 0.364024, 0.152618]


def test_overfits_one_batch() -> None:
    torch.manual_seed(0)
    model = GPTModel(SMALL)
    g = torch.Generator().manual_seed(0)
    x = torch.randint(0, SMALL.vocab_size, (4, 16), generator=g)
    y = torch.roll(x, -1, dims=1)
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3)
    first = lm_loss(model, x, y).item()
    for _ in range(150):
        loss = lm_loss(model, x, y)
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert first > 3.5  # about ln(50) = 3.9 at initialisation
    assert loss.item() < 0.05


@pytest.mark.parametrize(
    "cfg",
    [
        SMALL,
        GPTConfig(vocab_size=7, context_length=3, emb_dim=8, n_heads=2, n_layers=1, qkv_bias=True),
        GPTConfig(vocab_size=100, context_length=40, emb_dim=48, n_heads=6, n_layers=3),
    ],
)
def test_parameter_count_formula_matches_model(cfg: GPTConfig) -> None:
    model = GPTModel(cfg)
    assert count_parameters(model) == gpt_parameter_count(cfg)
    assert (
        gpt_parameter_count(cfg, tied_head=True)
        == count_parameters(model) - model.out_head.weight.numel()
    )


def test_gpt2_small_count_matches_published_number() -> None:
    """Published: the released GPT-2 small checkpoint (Hugging Face ``gpt2``, LM head tied to
    the token embedding) has 124,439,808 parameters; the paper's table 2 rounds to "117M"."""
    assert gpt_parameter_count(GPT2_SMALL_CONFIG, tied_head=True) == 124_439_808
    assert gpt_parameter_count(GPT2_SMALL_CONFIG) == 124_439_808 + 50257 * 768


def test_count_parameters_trainable_only_and_shared() -> None:
    model = make_model()
    model.tok_emb.weight.requires_grad_(False)
    assert count_parameters(model, trainable_only=True) == count_parameters(model) - 50 * 32
    model.out_head.weight = model.tok_emb.weight  # tie: counted once
    assert count_parameters(model) == gpt_parameter_count(SMALL, tied_head=True)


def test_greedy_generation_equals_manual_argmax_loop() -> None:
    model = make_model()
    prompt = torch.tensor([[1, 2, 3], [4, 5, 6]])
    out = generate(model, prompt, 20)
    ids = prompt
    for _ in range(20):
        nxt = model(ids[:, -SMALL.context_length :])[:, -1].argmax(-1, keepdim=True)
        ids = torch.cat([ids, nxt], 1)
    assert torch.equal(out, ids)
    assert out.shape == (2, 23)  # runs past context_length (16) by cropping the window


def test_sampling_is_reproducible_with_a_generator() -> None:
    model = make_model()
    prompt = torch.tensor([[1, 2, 3]])
    a = generate(
        model, prompt, 10, temperature=1.0, top_k=5, generator=torch.Generator().manual_seed(7)
    )
    b = generate(
        model, prompt, 10, temperature=1.0, top_k=5, generator=torch.Generator().manual_seed(7)
    )
    assert torch.equal(a, b)


def test_top_k_one_is_greedy() -> None:
    model = make_model()
    prompt = torch.tensor([[3, 1]])
    sampled = generate(
        model, prompt, 8, temperature=0.7, top_k=1, generator=torch.Generator().manual_seed(0)
    )
    assert torch.equal(sampled, generate(model, prompt, 8))


def test_eos_stops_generation() -> None:
    model = make_model()
    prompt = torch.tensor([[1, 2]])
    first = int(generate(model, prompt, 1)[0, -1])
    out = generate(model, prompt, 10, eos_id=first)
    assert out.shape == (1, 3)


@pytest.mark.parametrize(
    ("kwargs", "message", "error"),
    [
        ({"vocab_size": 0}, "vocab_size", ValueError),
        ({"n_heads": 5}, "divisible", ValueError),
        ({"drop_rate": 1.0}, "drop_rate", ValueError),
        ({"context_length": 2.5}, "context_length must be an int", TypeError),
        ({"qkv_bias": 1}, "qkv_bias must be a bool", TypeError),
    ],
)
def test_bad_config_raises(kwargs: dict, message: str, error: type) -> None:
    with pytest.raises(error, match=message):
        GPTConfig(**{**SMALL.__dict__, **kwargs})


@pytest.mark.parametrize(
    ("idx", "message"),
    [
        (torch.zeros(5, dtype=torch.long), "shape"),
        (torch.zeros(1, 17, dtype=torch.long), "context_length"),
        (torch.full((1, 3), 50), "outside"),
        (torch.zeros(1, 3), "dtype"),
    ],
)
def test_bad_input_raises(idx: torch.Tensor, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        make_model()(idx)


def test_bad_generation_arguments_raise() -> None:
    model = make_model()
    prompt = torch.tensor([[1]])
    with pytest.raises(ValueError, match="max_new_tokens"):
        generate(model, prompt, -1)
    with pytest.raises(ValueError, match="temperature"):
        generate(model, prompt, 1, temperature=-0.5)
    with pytest.raises(ValueError, match="top_k"):
        generate(model, prompt, 1, temperature=1.0, top_k=51)


def test_eos_waits_for_every_row_and_pads_finished_rows() -> None:
    """Rows reaching ``eos_id`` at different steps: generation runs until the last one does."""
    model = make_model(seed=3)
    prompts = torch.tensor([[1, 2, 3], [7, 8, 9]])
    full = generate(model, prompts, 12)[:, 3:]
    # an id that both rows produce, first at different steps
    firsts = {}
    for t in set(full[0].tolist()) & set(full[1].tolist()):
        a, b = (row.tolist().index(t) for row in full)
        if a != b:
            firsts[t] = (a, b)
    assert firsts, "no suitable eos id in this stream; change the seed"
    eos, (a, b) = min(firsts.items())
    early, late = (0, 1) if a < b else (1, 0)
    out = generate(model, prompts, 12, eos_id=eos)[:, 3:]
    assert out.shape[1] == max(a, b) + 1
    assert torch.equal(out[late], full[late, : max(a, b) + 1])
    assert torch.equal(out[early, : min(a, b) + 1], full[early, : min(a, b) + 1])
    assert bool((out[early, min(a, b) :] == eos).all())


def test_generate_rejects_a_bad_eos_id_and_a_model_that_is_not_a_gpt() -> None:
    model = make_model()
    with pytest.raises(ValueError, match=r"eos_id must be an int in \[0, 49\]"):
        generate(model, torch.tensor([[1]]), 2, eos_id=SMALL.vocab_size)
    with pytest.raises(TypeError, match="model must be a GPTModel, got Linear"):
        generate(torch.nn.Linear(2, 2), torch.tensor([[1]]), 2)  # type: ignore[arg-type]


# --------------------------------------------------------------------------------------
# Padding (attention_mask), hidden states, GPT-2 initialisation
# --------------------------------------------------------------------------------------


def test_position_ids_from_attention_mask_by_hand() -> None:
    from tutorial_code.model import position_ids_from_attention_mask

    mask = torch.tensor([[0, 0, 1, 1, 1], [1, 1, 1, 1, 1], [0, 0, 0, 0, 1]])
    assert position_ids_from_attention_mask(mask).tolist() == [
        [0, 0, 0, 1, 2],
        [0, 1, 2, 3, 4],
        [0, 0, 0, 0, 0],
    ]


@pytest.mark.parametrize("pad", [1, 4, 9])
def test_left_padded_logits_equal_the_sequence_run_alone(pad: int) -> None:
    """Reference: the unpadded sequence in its own forward pass."""
    model = make_model(seed=5)
    seq = torch.randint(
        0, SMALL.vocab_size, (1, 16 - pad), generator=torch.Generator().manual_seed(pad)
    )
    padded = torch.cat([torch.zeros(1, pad, dtype=torch.long), seq], dim=1)
    mask = torch.cat([torch.zeros(1, pad, dtype=torch.long), torch.ones_like(seq)], dim=1)
    torch.testing.assert_close(
        model(padded, attention_mask=mask)[:, pad:], model(seq), rtol=0, atol=1e-5
    )


def test_padding_rows_stay_finite_and_do_not_leak_into_real_tokens() -> None:
    """A row that is all padding and the padding positions give finite logits and gradients."""
    torch.manual_seed(0)
    model = GPTModel(SMALL)
    ids = torch.randint(0, SMALL.vocab_size, (3, 8))
    mask = torch.tensor([[0] * 8, [0, 0, 0, 1, 1, 1, 1, 1], [1] * 8])
    logits = model(ids, attention_mask=mask)
    assert torch.isfinite(logits).all()
    (logits * mask[..., None]).sum().backward()
    assert all(torch.isfinite(p.grad).all() for p in model.parameters() if p.grad is not None)
    # changing a padding token changes nothing at the real positions
    other = ids.clone()
    other[1, :3] = (other[1, :3] + 1) % SMALL.vocab_size
    torch.testing.assert_close(
        model.eval()(other, attention_mask=mask)[1, 3:], model(ids, attention_mask=mask)[1, 3:]
    )


def test_attention_mask_with_a_cache_continues_positions_per_row() -> None:
    """Prefill a padded batch into a cache, then one token: equals the full padded forward."""
    from tutorial_code.kv_cache import PreallocatedKVCache

    model = make_model(seed=6)
    ids = torch.randint(0, SMALL.vocab_size, (2, 7), generator=torch.Generator().manual_seed(0))
    mask = torch.tensor([[0, 0, 1, 1, 1, 1, 1], [1] * 7])
    cache = PreallocatedKVCache(SMALL, batch_size=2)
    model(ids[:, :6], attention_mask=mask[:, :6], kv_cache=cache)
    last = model(ids[:, 6:], attention_mask=mask, kv_cache=cache)[:, -1]
    torch.testing.assert_close(last, model(ids, attention_mask=mask)[:, -1], rtol=0, atol=1e-5)
    with pytest.raises(ValueError, match=r"attention_mask must have shape \(B, S\) = \(2, 8\)"):
        model(ids[:, :1], attention_mask=mask, kv_cache=cache)


@pytest.mark.parametrize(
    ("mask", "error", "message"),
    [
        (torch.ones(2, 6), ValueError, "only 0 and 1"),
        (torch.full((2, 6), 2), ValueError, "only 0 and 1"),
        (torch.ones(2, 5, dtype=torch.long), ValueError, r"shape \(B, S\) = \(2, 6\)"),
        ([[1] * 6] * 2, TypeError, "attention_mask must be a torch.Tensor"),
    ],
)
def test_bad_attention_mask_raises(mask, error: type, message: str) -> None:
    with pytest.raises(error, match=message):
        make_model()(torch.zeros(2, 6, dtype=torch.long), attention_mask=mask)


def test_hidden_states_are_what_the_head_reads() -> None:
    model = make_model()
    idx = torch.randint(0, SMALL.vocab_size, (2, 9))
    hidden = model.hidden_states(idx)
    assert hidden.shape == (2, 9, SMALL.emb_dim)
    assert torch.equal(model.out_head(hidden), model(idx))


def test_feed_forward_linears_have_stable_names() -> None:
    names = {n for n, m in make_model().named_modules() if isinstance(m, torch.nn.Linear)}
    for i in range(SMALL.n_layers):
        for leaf in ("att.W_query", "att.W_key", "att.W_value", "att.out_proj", "ff.fc1", "ff.fc2"):
            assert f"trf_blocks.{i}.{leaf}" in names
    assert "out_head" in names


def test_gpt2_init_statistics() -> None:
    """Hand-derived: std 0.02, residual projections 0.02 / sqrt(2 L), zero biases."""
    from tutorial_code.model import gpt2_init_

    cfg = GPTConfig(vocab_size=500, context_length=64, emb_dim=128, n_heads=4, n_layers=8)
    torch.manual_seed(0)
    model = gpt2_init_(GPTModel(cfg))
    block = model.trf_blocks[0]
    assert block.att.W_query.weight.std().item() == pytest.approx(0.02, rel=0.05)
    assert model.tok_emb.weight.std().item() == pytest.approx(0.02, rel=0.05)
    residual = 0.02 / (2 * cfg.n_layers) ** 0.5
    assert block.ff.fc2.weight.std().item() == pytest.approx(residual, rel=0.05)
    assert block.att.out_proj.weight.std().item() == pytest.approx(residual, rel=0.05)
    assert block.ff.fc1.bias.abs().sum().item() == 0
    assert torch.equal(block.norm1.weight, torch.ones(cfg.emb_dim))
    with pytest.raises(TypeError, match="model must be a GPTModel"):
        gpt2_init_(torch.nn.Linear(2, 2))  # type: ignore[arg-type]


# --------------------------------------------------------------------------------------
# What chapter 0 reads from the trained model and asks in its exercises
# --------------------------------------------------------------------------------------


def _capture_attention_weights(model: GPTModel, idx: torch.Tensor) -> dict[int, torch.Tensor]:
    """Chapter 0's recipe: a forward hook on each block's ``att.dropout``."""
    weights: dict[int, torch.Tensor] = {}
    hooks = [
        block.att.dropout.register_forward_hook(
            lambda module, inputs, output, i=i: weights.__setitem__(i, output.detach())
        )
        for i, block in enumerate(model.trf_blocks)
    ]
    try:
        with torch.no_grad():
            model(idx)
    finally:
        for hook in hooks:
            hook.remove()
    return weights


def test_attention_hook_on_dropout_reads_the_softmax_weights() -> None:
    """Reference: softmax(Q K^T / sqrt(D) + M) computed by hand from the block's own
    projections of its LayerNorm output; and weights @ V equals PyTorch's
    scaled_dot_product_attention. In training mode with dropout the hook sees dropped-out,
    rescaled weights whose rows no longer sum to 1."""
    cfg = GPTConfig(
        vocab_size=50, context_length=16, emb_dim=32, n_heads=4, n_layers=2, drop_rate=0.5
    )
    torch.manual_seed(0)
    model = GPTModel(cfg).eval()
    idx = torch.randint(0, cfg.vocab_size, (2, 11), generator=torch.Generator().manual_seed(1))
    weights = _capture_attention_weights(model, idx)
    assert sorted(weights) == [0, 1] and weights[0].shape == (2, 4, 11, 11)

    block = model.trf_blocks[0]
    with torch.no_grad():
        x = block.norm1(model.tok_emb(idx) + model.pos_emb(torch.arange(11)))

        def heads(linear: torch.nn.Linear) -> torch.Tensor:
            return linear(x).view(2, 11, 4, 8).transpose(1, 2)

        q, k, v = heads(block.att.W_query), heads(block.att.W_key), heads(block.att.W_value)
        scores = q @ k.transpose(-2, -1) / 8**0.5
        causal = torch.ones(11, 11, dtype=torch.bool).triu(1)
        by_hand = torch.softmax(scores.masked_fill(causal, float("-inf")), dim=-1)
        sdpa = F.scaled_dot_product_attention(q, k, v, is_causal=True)
    torch.testing.assert_close(weights[0], by_hand, rtol=0, atol=1e-6)
    torch.testing.assert_close(weights[0] @ v, sdpa, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(weights[0].sum(-1), torch.ones(2, 4, 11))
    assert not weights[0].triu(1).any()

    model.train()  # the pitfall: dropout is active and the hook sees its output
    dropped = _capture_attention_weights(model, idx)[0]
    assert (dropped == 0).sum() > (weights[0] == 0).sum()
    assert not torch.allclose(dropped.sum(-1), torch.ones(2, 4, 11))


def test_one_block_has_12_c_squared_plus_13_c_parameters() -> None:
    """Hand-derived (chapter 0, exercise 2): attention 4C^2 + 4C with qkv_bias, MLP
    8C^2 + 5C, two LayerNorms 4C."""
    from tutorial_code.model import TransformerBlock

    c = GPT2_SMALL_CONFIG.emb_dim
    assert count_parameters(TransformerBlock(GPT2_SMALL_CONFIG)) == 12 * c * c + 13 * c


def test_tying_the_head_to_a_default_initialised_embedding_inflates_the_initial_loss() -> None:
    """Hand-derived (chapter 0, exercise 3): PyTorch initialises nn.Embedding with N(0, 1), so a
    head tied to it gives logits of standard deviation about sqrt(C) and an initial loss far
    above ln V; with gpt2_init_ (std 0.02) the loss starts near ln V."""
    import math

    from tutorial_code.model import gpt2_init_

    cfg = GPTConfig(
        vocab_size=40, context_length=16, emb_dim=64, n_heads=4, n_layers=2, drop_rate=0.0
    )
    idx = torch.randint(0, cfg.vocab_size, (8, 16), generator=torch.Generator().manual_seed(0))
    losses = {}
    for init in ("default", "gpt2"):
        torch.manual_seed(0)
        model = GPTModel(cfg)
        if init == "gpt2":
            gpt2_init_(model)
        model.out_head.weight = model.tok_emb.weight
        assert count_parameters(model) == gpt_parameter_count(cfg, tied_head=True)
        with torch.no_grad():
            losses[init] = lm_loss(model, idx[:, :-1], idx[:, 1:]).item()
    assert losses["default"] > 3 * math.log(cfg.vocab_size)
    assert abs(losses["gpt2"] - math.log(cfg.vocab_size)) < 0.1
