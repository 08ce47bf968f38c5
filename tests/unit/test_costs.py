"""tutorial_code.costs: parameter, FLOP and byte counts.

References: a built model's tensors (``count_parameters``), PyTorch's
``torch.utils.flop_counter.FlopCounterMode``, and values derived by hand (GPT-2 small's
124,439,808 parameters of its released tied checkpoint and its 85,056,000 non-embedding
parameters; 6 N D for Chinchilla's 70B on 1.4T tokens).
"""

from __future__ import annotations

import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

from tutorial_code.costs import (
    count_parameters,
    forward_flops,
    gpt_parameter_count,
    kv_cache_bytes,
    training_flops,
)
from tutorial_code.model import GPT2_SMALL_CONFIG, GPTConfig, GPTModel

SMALL = GPTConfig(vocab_size=37, context_length=12, emb_dim=24, n_heads=3, n_layers=2, drop_rate=0.0)


def test_gpt2_small_counts_by_hand() -> None:
    embeddings = 50257 * 768 + 1024 * 768  # 39,383,808
    assert gpt_parameter_count(GPT2_SMALL_CONFIG, tied_head=True) == 124_439_808
    assert gpt_parameter_count(GPT2_SMALL_CONFIG, tied_head=True, include_embeddings=False) == (
        124_439_808 - embeddings
    ) == 85_056_000


@pytest.mark.parametrize("qkv_bias", [False, True])
def test_formula_equals_the_built_models_tensors(qkv_bias: bool) -> None:
    cfg = GPTConfig(vocab_size=37, context_length=12, emb_dim=24, n_heads=3, n_layers=2, qkv_bias=qkv_bias)
    model = GPTModel(cfg)
    assert count_parameters(model) == gpt_parameter_count(cfg)
    emb = model.tok_emb.weight.numel() + model.pos_emb.weight.numel()
    assert gpt_parameter_count(cfg, include_embeddings=False) == count_parameters(model) - emb


def test_count_parameters_counts_shared_tensors_once_and_skips_frozen() -> None:
    model = GPTModel(SMALL)
    model.out_head.weight = model.tok_emb.weight
    assert count_parameters(model) == gpt_parameter_count(SMALL, tied_head=True)
    model.tok_emb.weight.requires_grad_(False)
    assert count_parameters(model, trainable_only=True) == count_parameters(model) - 37 * 24
    with pytest.raises(TypeError, match="model must be a torch.nn.Module"):
        count_parameters([1, 2])  # type: ignore[arg-type]


@pytest.mark.parametrize(("num_new", "num_cached"), [(12, 0), (1, 11), (5, 3)])
def test_forward_flops_equal_pytorchs_counter(num_new: int, num_cached: int) -> None:
    from tutorial_code.kv_cache import ConcatKVCache

    model = GPTModel(SMALL).eval()
    cache = ConcatKVCache(SMALL)
    with torch.no_grad():
        if num_cached:
            model(torch.zeros(1, num_cached, dtype=torch.long), kv_cache=cache)
        with FlopCounterMode(display=False) as counter:
            model(torch.zeros(1, num_new, dtype=torch.long), kv_cache=cache)
    assert counter.get_total_flops() == forward_flops(SMALL, num_new=num_new, num_cached=num_cached)


def test_training_flops_is_six_n_d() -> None:
    # Chinchilla: 70B parameters on 1.4T tokens -> 5.88e23 FLOPs by 6ND.
    assert training_flops(70e9, 1.4e12) == pytest.approx(5.88e23)
    assert training_flops(1, 1) == 6.0
    with pytest.raises(ValueError, match="n_params must be > 0.0"):
        training_flops(0, 10)
    with pytest.raises(TypeError, match="n_tokens must be a number"):
        training_flops(10, "1e9")


def test_kv_cache_bytes_by_hand_and_errors() -> None:
    # GPT-2 small, one token, fp16: 2 (K and V) * 12 layers * 12 heads * 64 * 2 bytes.
    assert kv_cache_bytes(n_layers=12, n_kv_heads=12, head_dim=64, n_tokens=1) == 36_864
    with pytest.raises(ValueError, match="n_tokens must be an int >= 0"):
        kv_cache_bytes(n_layers=1, n_kv_heads=1, head_dim=1, n_tokens=-1)
    with pytest.raises(TypeError, match="head_dim must be an int"):
        kv_cache_bytes(n_layers=1, n_kv_heads=1, head_dim=1.5, n_tokens=1)  # type: ignore[arg-type]


def test_training_memory_reproduces_the_zero_papers_figure_1() -> None:
    """Rajbhandari et al. (2020), Figure 1: Ψ = 7.5B, N_d = 64, K = 12 ->
    120 GB, 31.4 GB, 16.6 GB and 1.9 GB per device for DP, ZeRO-1, ZeRO-2 and ZeRO-3."""
    from tutorial_code.costs import training_memory

    gb = [training_memory(7.5e9, data_parallel=64, zero_stage=s).model_states / 1e9 for s in range(4)]
    assert gb == pytest.approx([120.0, 31.40625, 16.640625, 1.875])
    assert [round(x, 1) for x in gb] == [120.0, 31.4, 16.6, 1.9]


def test_training_memory_splits_model_states_over_tensor_and_pipeline_ranks() -> None:
    from tutorial_code.costs import training_memory

    one = training_memory(1e9)
    assert (one.weights, one.gradients, one.optimizer) == (2e9, 2e9, 12e9)
    split = training_memory(1e9, tensor_parallel=4, pipeline_parallel=2, activations=5.0)
    assert split.model_states == pytest.approx(16e9 / 8) and split.total == pytest.approx(2e9 + 5)
    with pytest.raises(ValueError, match="zero_stage must be an int in \\[0, 3\\]"):
        training_memory(1e9, zero_stage=4)


def test_activation_bytes_follow_korthikanti_et_al() -> None:
    """Section 4 of Korthikanti et al. (2022), by hand for s=2048, b=1, h=4096, a=32."""
    from tutorial_code.costs import activation_bytes_per_layer

    s, b, h, a = 2048, 1, 4096, 32
    full = activation_bytes_per_layer(seq_len=s, micro_batch=b, hidden=h, n_heads=a)
    assert full == s * b * h * (34 + 5 * a * s / h) == 2048 * 4096 * 114
    tp = activation_bytes_per_layer(seq_len=s, micro_batch=b, hidden=h, n_heads=a, tensor_parallel=8)
    assert tp == full / 8
    sel = activation_bytes_per_layer(seq_len=s, micro_batch=b, hidden=h, n_heads=a, recompute="selective")
    assert sel == 34 * s * b * h
    with pytest.raises(ValueError, match="recompute must be"):
        activation_bytes_per_layer(seq_len=s, micro_batch=b, hidden=h, n_heads=a, recompute="some")


def test_pipeline_bubble_by_hand() -> None:
    """GPipe's bubble (p - 1) / (m + p - 1): 4 stages, 4 micro-batches idle 3/7 of the time."""
    from tutorial_code.costs import pipeline_bubble_fraction

    assert pipeline_bubble_fraction(stages=4, micro_batches=4) == 3 / 7
    assert pipeline_bubble_fraction(stages=1, micro_batches=8) == 0.0
    assert pipeline_bubble_fraction(stages=8, micro_batches=64) == pytest.approx(7 / 71)
    with pytest.raises(ValueError, match="micro_batches must be an int >= 1"):
        pipeline_bubble_fraction(stages=2, micro_batches=0)


@pytest.mark.parametrize(("prompt_length", "completion_length"), [(3, 1), (4, 6), (1, 11)])
def test_generation_flops_equal_pytorchs_counter_on_cached_greedy_decoding(
    prompt_length: int, completion_length: int
) -> None:
    """Reference: FlopCounterMode around tutorial_code.generation.generate with a concat cache
    (one prompt pass, then one pass per further token)."""
    from tutorial_code.costs import generation_flops
    from tutorial_code.generation import generate

    model = GPTModel(SMALL).eval()
    prompt = torch.zeros(1, prompt_length, dtype=torch.long)
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        generate(model, prompt, completion_length, kv_cache="concat")
    want = counter.get_total_flops()
    got = generation_flops(SMALL, prompt_length=prompt_length, completion_length=completion_length)
    assert got == want


def test_generation_flops_rejects_empty_lengths() -> None:
    from tutorial_code.costs import generation_flops

    with pytest.raises(ValueError, match="completion_length"):
        generation_flops(SMALL, prompt_length=3, completion_length=0)
    with pytest.raises(TypeError, match="prompt_length"):
        generation_flops(SMALL, prompt_length=3.0, completion_length=2)
