"""Tests for tutorial_code.kv_cache: exact cached generation, the sliding window, pitfalls, formulas."""

from __future__ import annotations

import json
import math
import statistics
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from torch.utils.flop_counter import FlopCounterMode

from tests.paths import load_script
from tutorial_code.costs import PUBLISHED_SHAPES, forward_flops, kv_cache_bytes
from tutorial_code.generation import generate
from tutorial_code.kv_cache import (
    ConcatKVCache,
    KVCache,
    PreallocatedKVCache,
    causal_mask,
)
from tutorial_code.model import GPT2_SMALL_CONFIG, GPTConfig, GPTModel

ROOT = Path(__file__).resolve().parents[2]
KINDS = ["concat", "preallocated"]

SMALL = GPTConfig(vocab_size=50, context_length=16, emb_dim=32, n_heads=4, n_layers=2, drop_rate=0.0)
CONFIGS = [
    SMALL,
    GPTConfig(vocab_size=7, context_length=5, emb_dim=8, n_heads=2, n_layers=1, drop_rate=0.0, qkv_bias=True),
    GPTConfig(vocab_size=97, context_length=24, emb_dim=48, n_heads=6, n_layers=3, drop_rate=0.0, qkv_bias=True),
]


@pytest.fixture(autouse=True, scope="module")
def one_torch_thread():
    """These models are tiny: a second thread only adds synchronisation, and on a busy machine
    each small parallel region can stall for milliseconds (tens of times the work)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def make_model(cfg: GPTConfig = SMALL, seed: int = 0) -> GPTModel:
    torch.manual_seed(seed)
    return GPTModel(cfg).eval()


def make_cache(kind: str, cfg: GPTConfig, batch_size: int, max_cache_len: int | None = None) -> KVCache:
    if kind == "concat":
        return ConcatKVCache(cfg, max_cache_len=max_cache_len)
    return PreallocatedKVCache(cfg, batch_size=batch_size, max_cache_len=max_cache_len)


def prompt_ids(cfg: GPTConfig, batch: int, length: int, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, cfg.vocab_size, (batch, length), generator=g)


@torch.no_grad()
def step_logits(model: GPTModel, ids: torch.Tensor, cache: KVCache) -> torch.Tensor:
    """Teacher forcing through the cache: the whole first chunk that fits, then one token per call.

    Returns logits ``(B, N, V)`` for every position of ``ids`` ``(B, N)``.
    """
    cache.reset()
    first = min(ids.shape[1], cache.max_cache_len)
    out = [model(ids[:, :first], kv_cache=cache)]
    for i in range(first, ids.shape[1]):
        out.append(model(ids[:, i : i + 1], kv_cache=cache))
    return torch.cat(out, dim=1)


@torch.no_grad()
def sliding_window_reference(model: GPTModel, ids: torch.Tensor, window: int) -> torch.Tensor:
    """The documented semantics computed without a cache, in one pass over the whole stream.

    Token n sits at position min(n, context_length - 1) and, in every layer, attends to
    tokens n - window + 1 .. n (a banded causal mask). Built from the model's weights with
    PyTorch's own scaled_dot_product_attention, independently of the cache code.
    """
    cfg = model.cfg
    b, n = ids.shape
    h, d = cfg.n_heads, cfg.emb_dim // cfg.n_heads
    positions = torch.arange(n).clamp(max=cfg.context_length - 1)
    x = model.tok_emb(ids) + model.pos_emb(positions)
    i = torch.arange(n)
    allowed = (i[None, :] <= i[:, None]) & (i[None, :] > i[:, None] - window)  # (query, key)
    for block in model.trf_blocks:
        att, y = block.att, block.norm1(x)
        q, k, v = (w(y).view(b, n, h, d).transpose(1, 2) for w in (att.W_query, att.W_key, att.W_value))
        o = F.scaled_dot_product_attention(q, k, v, attn_mask=allowed)
        x = x + att.out_proj(o.transpose(1, 2).reshape(b, n, cfg.emb_dim))
        x = x + block.ff(block.norm2(x))
    return model.out_head(model.final_norm(x))


def crop_reference(model: GPTModel, ids: torch.Tensor) -> torch.Tensor:
    """What tutorial_code.model.generate computes: logits of position t from the last context_length tokens."""
    ctx = model.cfg.context_length
    with torch.no_grad():
        return torch.stack([model(ids[:, max(0, t + 1 - ctx) : t + 1])[:, -1] for t in range(ids.shape[1])], dim=1)


# --------------------------------------------------------------------------- exactness


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("cfg", CONFIGS, ids=["small", "tiny-bias", "wide-bias"])
@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("batch", [1, 3])
def test_greedy_tokens_equal_uncached_for_prompt_lengths_up_to_the_context(kind: str, cfg: GPTConfig, seed: int, batch: int) -> None:
    model = make_model(cfg, seed)
    ctx = cfg.context_length
    for length in sorted({1, 2, ctx // 2, ctx - 1, ctx}):
        prompt = prompt_ids(cfg, batch, length, seed=100 * seed + length)
        n_new = ctx - length + 1  # the most tokens that stay within the context
        expected = generate(model, prompt, n_new)
        got = generate(model, prompt, n_new, kv_cache=kind)
        assert torch.equal(got, expected), f"prompt length {length}"


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("cfg", CONFIGS, ids=["small", "tiny-bias", "wide-bias"])
def test_teacher_forced_logits_match_the_uncached_forward(kind: str, cfg: GPTConfig) -> None:
    """Every position's logits, fed through the cache token by token, match one uncached forward."""
    model = make_model(cfg, seed=3)
    ids = prompt_ids(cfg, 2, cfg.context_length, seed=3)
    cache = make_cache(kind, cfg, batch_size=2, max_cache_len=cfg.context_length)
    cache.reset()
    cached = torch.cat([model(ids[:, i : i + 1], kv_cache=cache) for i in range(ids.shape[1])], dim=1)
    with torch.no_grad():
        torch.testing.assert_close(cached, model(ids), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("kind", KINDS)
def test_sampling_with_a_generator_equals_uncached(kind: str) -> None:
    model = make_model(seed=4)
    prompt = prompt_ids(SMALL, 2, 3, seed=4)
    options = dict(temperature=1.0, top_k=10)
    a = generate(model, prompt, 14, generator=torch.Generator().manual_seed(9), **options)
    b = generate(model, prompt, 14, kv_cache=kind, generator=torch.Generator().manual_seed(9), **options)
    assert torch.equal(a, b)
    assert len(set(a[0, 3:].tolist())) > 3  # a varied stream, not one repeated token


@pytest.mark.parametrize("kind", KINDS)
def test_eos_stops_like_uncached(kind: str) -> None:
    model = make_model(seed=5)
    prompt = prompt_ids(SMALL, 1, 4, seed=5)
    full = generate(model, prompt, 8)
    eos = int(full[0, 6])  # the third generated token
    a = generate(model, prompt, 8, eos_id=eos)
    b = generate(model, prompt, 8, kv_cache=kind, eos_id=eos)
    assert torch.equal(a, b)
    assert b.shape[1] <= 7


@pytest.mark.parametrize("kind", KINDS)
def test_eos_in_a_batch_like_uncached(kind: str) -> None:
    """Rows that finish at different steps: padded and stopped exactly as ``generate`` does."""
    model = make_model(seed=5)
    prompts = prompt_ids(SMALL, 3, 4, seed=5)
    full = generate(model, prompts, 10)
    eos = int(full[0, 6])  # row 0's third token; the other rows finish elsewhere or not at all
    a = generate(model, prompts, 10, eos_id=eos)
    b = generate(model, prompts, 10, kv_cache=kind, eos_id=eos)
    assert torch.equal(a, b)
    assert bool((b[0, 6:] == eos).all())


@pytest.mark.parametrize("kind", KINDS)
def test_batched_prompts_equal_one_prompt_at_a_time(kind: str) -> None:
    model = make_model(seed=6)
    prompts = prompt_ids(SMALL, 4, 5, seed=6)
    batched = generate(model, prompts, 10, kv_cache=kind)
    for row in range(4):
        assert torch.equal(batched[row : row + 1], generate(model, prompts[row : row + 1], 10, kv_cache=kind))


def test_zero_new_tokens_returns_the_prompt() -> None:
    model = make_model()
    prompt = prompt_ids(SMALL, 2, 4, seed=0)
    assert torch.equal(generate(model, prompt, 0, kv_cache="preallocated"), prompt)


def test_works_under_inference_mode_with_a_cache_built_outside() -> None:
    model = make_model(seed=7)
    cache = PreallocatedKVCache(SMALL, batch_size=1)
    prompt = prompt_ids(SMALL, 1, 3, seed=7)
    with torch.inference_mode():
        got = generate(model, prompt, 6, kv_cache=cache)
    assert torch.equal(got, generate(model, prompt, 6))


# --------------------------------------------------------------------------- past the context


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("window", [None, 6])
def test_runs_past_the_context_without_error(kind: str, window: int | None) -> None:
    """Regression: a position counter that grows past context_length indexed out of the table."""
    cfg = SMALL
    model = make_model(cfg, seed=9)
    prompt = prompt_ids(cfg, 2, 5, seed=9)
    cache = make_cache(kind, cfg, batch_size=2, max_cache_len=window)
    out = generate(model, prompt, 3 * cfg.context_length, kv_cache=cache)
    assert out.shape == (2, 5 + 3 * cfg.context_length)
    assert cache.seen_tokens == 5 + 3 * cfg.context_length - 1
    assert cache.get_seq_length() == (window or cfg.context_length)
    positions = cache.positions(1)
    assert positions.tolist() == [cfg.context_length - 1]


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize(
    ("cfg", "window", "prompt_len"),
    [(SMALL, 16, 5), (SMALL, 16, 16), (SMALL, 6, 3), (SMALL, 6, 11), (CONFIGS[2], 24, 7), (CONFIGS[2], 9, 20)],
)
def test_past_the_context_matches_the_sliding_window_reference(
    kind: str, cfg: GPTConfig, window: int, prompt_len: int
) -> None:
    model = make_model(cfg, seed=10)
    prompt = prompt_ids(cfg, 2, prompt_len, seed=10)
    n_new = 2 * cfg.context_length + 3
    cache = make_cache(kind, cfg, batch_size=2, max_cache_len=window)
    out = generate(model, prompt, n_new, kv_cache=cache, temperature=1.0, generator=torch.Generator().manual_seed(1))
    stream = out[:, :-1]  # every token that was fed to the model
    reference = sliding_window_reference(model, stream, window)
    cached = step_logits(model, stream, make_cache(kind, cfg, batch_size=2, max_cache_len=window))
    torch.testing.assert_close(cached, reference, rtol=1e-4, atol=1e-4)
    # and greedy decoding picks the reference's argmax wherever it is not a near tie
    greedy = generate(model, prompt, n_new, kv_cache=make_cache(kind, cfg, batch_size=2, max_cache_len=window))
    ref = sliding_window_reference(model, greedy[:, :-1], window)[:, prompt_len - 1 :]
    top2 = ref.topk(2, dim=-1).values
    clear = (top2[..., 0] - top2[..., 1]) > 1e-4
    assert torch.equal(ref.argmax(-1)[clear], greedy[:, prompt_len:][clear])
    assert clear.float().mean() > 0.9


def test_the_sliding_window_reference_is_the_model_within_the_context() -> None:
    """The reference itself: with no token past the context it is exactly GPTModel.forward."""
    model = make_model(CONFIGS[2], seed=11)
    ids = prompt_ids(CONFIGS[2], 3, CONFIGS[2].context_length, seed=11)
    with torch.no_grad():
        torch.testing.assert_close(
            sliding_window_reference(model, ids, CONFIGS[2].context_length), model(ids), rtol=1e-5, atol=1e-5
        )


def test_sliding_window_is_not_the_crop_of_generate() -> None:
    """Pitfall: past the context, the cache and generate's crop-and-re-encode disagree.

    They agree on every position whose window starts at token 0, and differ afterwards,
    because the crop shifts every token's position (and re-encodes it from a shorter past).
    """
    cfg = SMALL
    model = make_model(cfg, seed=12)
    ids = prompt_ids(cfg, 1, 3 * cfg.context_length, seed=12)
    sliding = step_logits(model, ids, ConcatKVCache(cfg))
    crop = crop_reference(model, ids)
    ctx = cfg.context_length
    torch.testing.assert_close(sliding[:, :ctx], crop[:, :ctx], rtol=1e-5, atol=1e-5)
    assert (sliding[:, ctx:] - crop[:, ctx:]).abs().amax(dim=-1).min() > 1e-3  # every later position differs


def test_a_smaller_window_changes_the_output_only_after_it_fills() -> None:
    cfg = SMALL
    model = make_model(cfg, seed=13)
    ids = prompt_ids(cfg, 1, cfg.context_length, seed=13)
    full = step_logits(model, ids, PreallocatedKVCache(cfg, batch_size=1))
    small = step_logits(model, ids, PreallocatedKVCache(cfg, batch_size=1, max_cache_len=6))
    torch.testing.assert_close(full[:, :6], small[:, :6], rtol=1e-5, atol=1e-5)
    assert (full[:, 6:] - small[:, 6:]).abs().amax(dim=-1).min() > 1e-4


@pytest.mark.parametrize("window", [16, 5])
def test_preallocated_ring_buffer_equals_the_concatenating_cache(window: int) -> None:
    model = make_model(CONFIGS[2], seed=14)
    ids = prompt_ids(CONFIGS[2], 2, 3 * CONFIGS[2].context_length, seed=14)
    a = step_logits(model, ids, ConcatKVCache(CONFIGS[2], max_cache_len=window))
    b = step_logits(model, ids, PreallocatedKVCache(CONFIGS[2], batch_size=2, max_cache_len=window))
    torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-5)


def recompute_reference(model: GPTModel, prompt: torch.Tensor, n_new: int, window: int, keep: int) -> torch.Tensor:
    """Greedy decoding without a cache under overflow="recompute": token n is predicted by an
    uncached forward over tokens r..n, where r jumps to n - keep + 1 whenever n - r + 1 > window."""
    ids = prompt[:, -model.cfg.context_length :]
    r = 0  # the first `window` prompt tokens are encoded together; later ones follow the rule
    for n in range(window, ids.shape[1]):
        if n - r + 1 > window:
            r = n - keep + 1
    out = prompt
    with torch.no_grad():
        for _ in range(n_new):
            n = ids.shape[1] - 1
            if n - r + 1 > window:
                r = n - keep + 1
            next_id = model(ids[:, r:])[:, -1].argmax(-1, keepdim=True)
            ids = torch.cat([ids, next_id], dim=1)
            out = torch.cat([out, next_id], dim=1)
    return out


@pytest.mark.parametrize("kind", KINDS)
def test_recompute_keeping_the_whole_context_is_exactly_generate(kind: str) -> None:
    """overflow="recompute" with recompute_keep == context_length re-encodes at every step: generate's crop."""
    model = make_model(seed=25)
    prompt = prompt_ids(SMALL, 2, 5, seed=25)
    ctx = SMALL.context_length
    got = generate(model, prompt, 3 * ctx, kv_cache=kind, overflow="recompute", recompute_keep=ctx)
    assert torch.equal(got, generate(model, prompt, 3 * ctx))
    sampled = dict(temperature=1.0, top_k=10)
    a = generate(model, prompt, 2 * ctx, generator=torch.Generator().manual_seed(3), **sampled)
    b = generate(
        model, prompt, 2 * ctx, kv_cache=kind, overflow="recompute", recompute_keep=ctx,
        generator=torch.Generator().manual_seed(3), **sampled,
    )
    assert torch.equal(a, b)


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize(("window", "keep", "prompt_len"), [(16, 8, 5), (16, 1, 5), (10, 4, 3), (10, 7, 14), (16, 15, 16)])
def test_recompute_matches_its_uncached_reference(kind: str, window: int, keep: int, prompt_len: int) -> None:
    model = make_model(SMALL, seed=26)
    prompt = prompt_ids(SMALL, 2, prompt_len, seed=26)
    cache = make_cache(kind, SMALL, batch_size=2, max_cache_len=window)
    got = generate(model, prompt, 3 * SMALL.context_length, kv_cache=cache, overflow="recompute", recompute_keep=keep)
    assert torch.equal(got, recompute_reference(model, prompt, 3 * SMALL.context_length, window, keep))


def test_a_prompt_longer_than_the_context_is_cropped_as_generate_does() -> None:
    model = make_model(seed=15)
    prompt = prompt_ids(SMALL, 2, 40, seed=15)
    assert torch.equal(generate(model, prompt, 1, kv_cache="preallocated"), generate(model, prompt, 1))
    assert generate(model, prompt, 5, kv_cache="preallocated").shape == (2, 45)


# --------------------------------------------------------------------------- pitfalls


@pytest.mark.parametrize("kind", KINDS)
def test_a_second_prompt_does_not_see_the_first_prompts_cache(kind: str) -> None:
    model = make_model(seed=16)
    first, second = prompt_ids(SMALL, 2, 6, seed=1), prompt_ids(SMALL, 2, 4, seed=2)
    cache = make_cache(kind, SMALL, batch_size=2)
    generate(model, first, 5, kv_cache=cache)
    reused = generate(model, second, 8, kv_cache=cache)
    assert torch.equal(reused, generate(model, second, 8, kv_cache=kind))
    assert torch.equal(reused, generate(model, second, 8))


@pytest.mark.parametrize("kind", KINDS)
def test_pitfall_without_reset_the_stale_cache_changes_the_answer(kind: str) -> None:
    model = make_model(seed=17)
    first, second = prompt_ids(SMALL, 1, 6, seed=1), prompt_ids(SMALL, 1, 4, seed=2)
    cache = make_cache(kind, SMALL, batch_size=1)
    with torch.no_grad():
        model(first, kv_cache=cache)
        stale = model(second, kv_cache=cache)[:, -1]  # forgot cache.reset()
        cache.reset()
        fresh = model(second, kv_cache=cache)[:, -1]
        assert not torch.allclose(stale, fresh, atol=1e-3)
        torch.testing.assert_close(fresh, model(second)[:, -1], rtol=1e-5, atol=1e-5)


def test_preallocated_reset_never_reads_the_stale_slots() -> None:
    model = make_model(seed=18)
    cache = PreallocatedKVCache(SMALL, batch_size=1)
    prompt = prompt_ids(SMALL, 1, 5, seed=18)
    generate(model, prompt, 20, kv_cache=cache)
    for layer in cache.layers:  # poison every slot; reset only rewinds the counter
        layer.keys.fill_(float("nan"))
        layer.values.fill_(float("nan"))
    assert torch.equal(generate(model, prompt, 20, kv_cache=cache), generate(model, prompt, 20, kv_cache="preallocated"))


class RestartingPositions(ConcatKVCache):
    """The pitfall: a cache whose new tokens start again at position 0."""

    def positions(self, num_new: int, *, device: torch.device | str | None = None) -> torch.Tensor:
        return torch.arange(num_new, device=device)


class UnboundedPositions(ConcatKVCache):
    """A naive counter: keeps counting past the position table."""

    def positions(self, num_new: int, *, device: torch.device | str | None = None) -> torch.Tensor:
        return torch.arange(self.seen_tokens, self.seen_tokens + num_new, device=device)


def test_positions_continue_after_the_cached_tokens() -> None:
    cache = ConcatKVCache(SMALL)
    model = make_model()
    assert cache.positions(4).tolist() == [0, 1, 2, 3]
    with torch.no_grad():
        model(prompt_ids(SMALL, 1, 4, seed=0), kv_cache=cache)
    assert cache.positions(1).tolist() == [4]
    assert cache.positions(3).tolist() == [4, 5, 6]


def test_pitfall_restarting_the_position_counter_changes_the_answer() -> None:
    model = make_model(seed=19)
    ids = prompt_ids(SMALL, 1, 10, seed=19)
    with torch.no_grad():
        expected = model(ids)[:, 4:]
    logits = {}
    for name, cache in [("right", ConcatKVCache(SMALL)), ("wrong", RestartingPositions(SMALL))]:
        with torch.no_grad():
            model(ids[:, :4], kv_cache=cache)  # the prompt chunk gets positions 0..3 either way
            logits[name] = torch.cat([model(ids[:, i : i + 1], kv_cache=cache) for i in range(4, 10)], dim=1)
    torch.testing.assert_close(logits["right"], expected, rtol=1e-5, atol=1e-5)
    assert (logits["wrong"] - expected).abs().amax(dim=-1).min() > 1e-3  # every later token is off


def test_pitfall_an_unbounded_counter_indexes_past_the_position_table() -> None:
    model = make_model(seed=21)
    prompt = prompt_ids(SMALL, 1, 4, seed=21)
    with pytest.raises(IndexError):
        generate(model, prompt, SMALL.context_length + 5, kv_cache=UnboundedPositions(SMALL))
    generate(model, prompt, SMALL.context_length + 5, kv_cache=ConcatKVCache(SMALL))  # ours: no error


def test_positions_clamp_to_the_last_row_of_the_table() -> None:
    cache = PreallocatedKVCache(SMALL, batch_size=1, max_cache_len=4)
    for layer in cache.layers:
        layer.seen_tokens = 30
    assert cache.positions(1).tolist() == [SMALL.context_length - 1]
    for layer in cache.layers:
        layer.seen_tokens = 2
    assert cache.positions(2).tolist() == [2, 3]


@pytest.mark.parametrize("kind", KINDS)
def test_a_chunk_that_does_not_fit_raises_and_leaves_the_cache_intact(kind: str) -> None:
    model = make_model(seed=22)
    cache = make_cache(kind, SMALL, batch_size=1, max_cache_len=8)
    with torch.no_grad():
        model(prompt_ids(SMALL, 1, 6, seed=22), kv_cache=cache)
        with pytest.raises(ValueError, match="feed one token at a time"):
            model(prompt_ids(SMALL, 1, 3, seed=23), kv_cache=cache)
        assert cache.seen_tokens == 6
        model(prompt_ids(SMALL, 1, 2, seed=23), kv_cache=cache)  # exactly fills the window
        assert cache.get_seq_length() == 8


def test_an_interrupted_forward_is_reported() -> None:
    cache = ConcatKVCache(SMALL)
    cache.layers[0].seen_tokens = 3
    with pytest.raises(RuntimeError, match="call reset"):
        _ = cache.seen_tokens


# --------------------------------------------------------------------------- formulas


def test_causal_mask_matches_the_definition_and_the_models_mask() -> None:
    model = make_model()
    assert torch.equal(causal_mask(7, 7), model.trf_blocks[0].att.mask[:7, :7])
    for t, s in [(1, 1), (1, 9), (3, 9), (9, 9)]:
        expected = torch.tensor([[j > s - t + i for j in range(s)] for i in range(t)])
        assert torch.equal(causal_mask(t, s), expected)


@pytest.mark.parametrize("kind", KINDS)
def test_measured_cache_memory_equals_the_formula(kind: str) -> None:
    cfg = CONFIGS[2]
    model = make_model(cfg, seed=24)
    cache = make_cache(kind, cfg, batch_size=3)
    prompt = prompt_ids(cfg, 3, 5, seed=24)
    generate(model, prompt, 10, kv_cache=cache)
    tokens = 14 if kind == "concat" else cfg.context_length  # prompt + new - 1, or every slot
    expected = kv_cache_bytes(
        n_layers=cfg.n_layers, n_kv_heads=cfg.n_heads, head_dim=cfg.emb_dim // cfg.n_heads,
        n_tokens=tokens, batch_size=3, bits_per_value=32,
    )
    assert cache.nbytes == expected


def test_kv_cache_bytes_by_hand() -> None:
    # GPT-2 small in float16: 2 (K and V) * 12 layers * 12 heads * 64 dims * 2 bytes per token
    assert kv_cache_bytes(n_layers=12, n_kv_heads=12, head_dim=64, n_tokens=1) == 36_864
    assert PUBLISHED_SHAPES["GPT-2 small"].cache_bytes() == 36_864 * 1024  # 36 MiB for 1024 tokens
    # Llama 2 7B: 2 * 32 * 32 * 128 * 2 bytes = 0.5 MiB per token, 2 GiB for 4096 tokens
    assert PUBLISHED_SHAPES["Llama 2 7B"].cache_bytes() == 2 * 2**30
    # grouped-query attention: Llama 2 70B keeps 8 of 64 heads' keys and values
    shape = PUBLISHED_SHAPES["Llama 2 70B"]
    assert shape.cache_bytes() * 8 == kv_cache_bytes(n_layers=80, n_kv_heads=64, head_dim=128, n_tokens=4096)
    # Mistral's rolling buffer never holds more than its 4096-token window
    assert PUBLISHED_SHAPES["Mistral 7B"].cache_bytes() == PUBLISHED_SHAPES["Mistral 7B"].cache_bytes(n_tokens=4096)
    assert kv_cache_bytes(n_layers=1, n_kv_heads=1, head_dim=8, n_tokens=3, batch_size=2, bits_per_value=4) == 48


def test_published_gpt2_small_shape_is_the_books_config() -> None:
    shape, cfg = PUBLISHED_SHAPES["GPT-2 small"], GPT2_SMALL_CONFIG
    assert (shape.n_layers, shape.n_heads, shape.head_dim * shape.n_heads, shape.context_length) == (
        cfg.n_layers, cfg.n_heads, cfg.emb_dim, cfg.context_length,
    )
    for shape in PUBLISHED_SHAPES.values():
        assert shape.n_heads % shape.n_kv_heads == 0


@pytest.mark.parametrize("cfg", CONFIGS, ids=["small", "tiny-bias", "wide-bias"])
def test_forward_flops_match_pytorchs_flop_counter(cfg: GPTConfig) -> None:
    model = make_model(cfg)
    ctx = cfg.context_length
    ids = prompt_ids(cfg, 1, ctx, seed=0)
    with torch.no_grad():
        with FlopCounterMode(display=False) as counter:
            model(ids)
        assert counter.get_total_flops() == forward_flops(cfg, num_new=ctx)
        cache = ConcatKVCache(cfg)
        model(ids[:, : ctx - 1], kv_cache=cache)
        with FlopCounterMode(display=False) as counter:
            model(ids[:, ctx - 1 :], kv_cache=cache)
        assert counter.get_total_flops() == forward_flops(cfg, num_new=1, num_cached=ctx - 1)


def test_a_cached_generation_needs_about_n_over_2_times_fewer_flops() -> None:
    """Without a cache step t costs ~t times a cached step, so n steps cost ~n/2 times more."""
    cfg = GPT2_SMALL_CONFIG
    p, n = 4, 200
    uncached = sum(forward_flops(cfg, num_new=p + i) for i in range(n))
    cached = forward_flops(cfg, num_new=p) + sum(forward_flops(cfg, num_new=1, num_cached=p + i) for i in range(n - 1))
    assert n / 2 < uncached / cached < (p + n) / 2 + 10


# --------------------------------------------------------------------------- errors


def test_error_messages_name_the_argument() -> None:
    model = make_model()
    prompt = prompt_ids(SMALL, 1, 3, seed=0)
    with pytest.raises(ValueError, match="max_cache_len"):
        ConcatKVCache(SMALL, max_cache_len=SMALL.context_length + 1)
    with pytest.raises(ValueError, match="max_cache_len"):
        PreallocatedKVCache(SMALL, batch_size=1, max_cache_len=0)
    with pytest.raises(ValueError, match="batch_size"):
        PreallocatedKVCache(SMALL, batch_size=0)
    with pytest.raises(TypeError, match="dtype"):
        PreallocatedKVCache(SMALL, batch_size=1, dtype=torch.int64)
    with pytest.raises(TypeError, match="cfg"):
        ConcatKVCache({"n_layers": 2})  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="kv_cache"):
        generate(model, prompt, 3, kv_cache="paged")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="kv_cache was built for"):
        generate(model, prompt, 3, kv_cache=ConcatKVCache(CONFIGS[2]))
    with pytest.raises(TypeError, match="model"):
        generate(torch.nn.Linear(2, 2), prompt, 3, kv_cache="preallocated")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="max_new_tokens"):
        generate(model, prompt, -1, kv_cache="preallocated")
    with pytest.raises(ValueError, match="overflow"):
        generate(model, prompt, 3, overflow="wrap", kv_cache="preallocated")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="recompute_keep"):
        generate(model, prompt, 3, overflow="recompute", recompute_keep=SMALL.context_length + 1, kv_cache="preallocated")
    with pytest.raises(ValueError, match="batch_size=1"):
        generate(model, prompt_ids(SMALL, 2, 3, seed=0), 3, kv_cache=PreallocatedKVCache(SMALL, batch_size=1))
    with pytest.raises(ValueError, match="num_new"):
        ConcatKVCache(SMALL).positions(0)
    with pytest.raises(ValueError, match="keys"):
        ConcatKVCache(SMALL).layers[0].update(torch.zeros(1, 2, 3), torch.zeros(1, 2, 3))
    with pytest.raises(ValueError, match="same shape"):
        ConcatKVCache(SMALL).layers[0].update(torch.zeros(1, 2, 3, 4), torch.zeros(1, 2, 2, 4))
    with pytest.raises(ValueError, match="n_tokens"):
        kv_cache_bytes(n_layers=1, n_kv_heads=1, head_dim=1, n_tokens=-1)
    with pytest.raises(ValueError, match="num_cached"):
        forward_flops(SMALL, num_new=1, num_cached=-1)
    with pytest.raises(ValueError, match="num_new"):
        causal_mask(3, 2)


# --------------------------------------------------------------------------- the stored benchmark

STORED_BENCHMARK = ROOT / "benchmarks" / "results" / "kv_cache.json"


def load_benchmark_script():
    """benchmarks/kv_cache.py as a module (the benchmarks folder is not a package)."""
    return load_script("benchmarks/kv_cache.py")


def test_the_stored_benchmark_meets_the_bar() -> None:
    """Documentation check of benchmarks/kv_cache.py's stored run, which the chapter prints:
    pre-allocated >= 5.3x no cache and not slower than concat; tokens/s = tokens / median."""
    result = json.loads(STORED_BENCHMARK.read_text(encoding="utf-8"))
    model = result["model"]
    assert (model["emb_dim"], model["n_layers"], model["n_heads"], model["vocab_size"], model["context_length"]) == (
        768, 12, 12, 50257, 1024,
    )
    assert result["new_tokens"] == 200 and result["prompt_tokens"] <= 10
    assert result["identical_tokens"] is True
    speed = result["tokens_per_s"]
    for name, seconds in result["median_seconds"].items():
        assert math.isclose(speed[name], result["new_tokens"] / seconds, rel_tol=0.01)
    assert speed["preallocated_cache"] >= 5.3 * speed["no_cache"]
    assert speed["preallocated_cache"] >= speed["concat_cache"]
    for entry in result["memory"].values():
        assert entry["formula_bytes"] == entry["measured_bytes"]
    for key in ("cpu_model", "cpu_count", "torch_version", "cpu_capability"):
        assert result["machine"][key]


def test_the_stored_benchmark_memory_is_what_the_caches_hold() -> None:
    """The stored memory of the GPT-2-small caches, recomputed by filling real caches with the
    same number of tokens (one prefill chunk, then one token per update, as generation feeds
    them) and reading their storages; the formula is checked by hand in
    test_kv_cache_bytes_by_hand."""
    script = load_benchmark_script()
    stored = json.loads(STORED_BENCHMARK.read_text(encoding="utf-8"))
    cfg = GPT2_SMALL_CONFIG
    concat, prealloc = ConcatKVCache(cfg), PreallocatedKVCache(cfg, batch_size=1)
    held, prompt = stored["memory"]["concat_cache"]["tokens"], stored["prompt_tokens"]
    head_dim = cfg.emb_dim // cfg.n_heads
    for cache in (concat, prealloc):
        for layer in cache.layers:
            chunk = torch.zeros(1, cfg.n_heads, prompt, head_dim)
            layer.update(chunk, chunk)
            for _ in range(held - prompt):
                one = torch.zeros(1, cfg.n_heads, 1, head_dim)
                layer.update(one, one)
    assert concat.get_seq_length() == prealloc.get_seq_length() == held
    assert script.memory(cfg, concat, prealloc, held=held) == stored["memory"]


def test_a_benchmark_slice_generates_identical_tokens_and_measures_memory() -> None:
    """A short slice of benchmarks/kv_cache.py on a small model: the uncached run is the
    reference for the tokens of both caches, the tensors' storages for the memory formula, and
    every stored statistic is consistent with the raw timings it was computed from."""
    script = load_benchmark_script()
    cfg = GPTConfig(vocab_size=64, context_length=32, emb_dim=32, n_heads=4, n_layers=2, drop_rate=0.0)
    run = script.run(cfg, prompt_ids=[1, 2, 3], new_tokens=6, repeats=1, cache_repeats=3, lockstep_repeats=1, log=lambda _: None)
    assert run["identical_tokens"] is True
    assert run["repeats"] == {"no_cache": 1, "caches": 3}
    assert all(len(times) == 3 for name, times in run["seconds"].items() if name != "no_cache")
    for entry in run["memory"].values():
        assert entry["formula_bytes"] == entry["measured_bytes"]
    assert run["memory"]["concat_cache"]["tokens"] == 3 + 6 - 1
    assert run["memory"]["preallocated_cache"]["tokens"] == cfg.context_length
    for name, times in run["seconds"].items():
        assert math.isclose(run["median_seconds"][name], statistics.median(times), abs_tol=1e-3)
    stored = json.loads(STORED_BENCHMARK.read_text(encoding="utf-8"))
    assert set(stored) >= set(run) and set(stored["ratios"]) == set(run["ratios"])
