"""tutorial_code.generation: batched generation with left padding, log-probabilities, top-p.

References: each sequence generated alone (for the padded batch), the model's own full forward
pass re-scoring the generated tokens (for the returned log-probabilities), a sort-free
reference nucleus written from the definition (for ``top_p_filter``) and hand-built masks.
"""

from __future__ import annotations

import pytest
import torch

from tutorial_code.generation import (
    GenerationOutput,
    generate,
    left_pad,
    sample_next_token,
    top_p_filter,
)
from tutorial_code.kv_cache import PreallocatedKVCache
from tutorial_code.model import GPTConfig, GPTModel

CFG = GPTConfig(vocab_size=30, context_length=32, emb_dim=32, n_heads=4, n_layers=2, drop_rate=0.0)
PROMPTS = [[1, 2, 3, 4, 5], [7, 8], [9, 10, 11]]
CACHES = [None, "preallocated", "concat"]


def make_model(seed: int = 0) -> GPTModel:
    torch.manual_seed(seed)
    return GPTModel(CFG).eval()


def rescore(model: GPTModel, out: GenerationOutput, prompt_len: int) -> torch.Tensor:
    """Log-probs ``(B, n)`` of the generated tokens from one full forward pass."""
    logits = model(out.sequences, attention_mask=out.attention_mask)
    logp = torch.log_softmax(logits[:, prompt_len - 1 : -1], dim=-1)
    return logp.gather(-1, out.completion_ids[..., None])[..., 0]


def test_left_pad_puts_every_prompt_at_the_right_edge() -> None:
    ids, mask = left_pad(PROMPTS, pad_id=0)
    assert ids.tolist() == [[1, 2, 3, 4, 5], [0, 0, 0, 7, 8], [0, 0, 9, 10, 11]]
    assert mask.tolist() == [[1, 1, 1, 1, 1], [0, 0, 0, 1, 1], [0, 0, 1, 1, 1]]
    with pytest.raises(ValueError, match="non-empty"):
        left_pad([[1], []], pad_id=0)
    with pytest.raises(TypeError, match="pad_id must be an int"):
        left_pad(PROMPTS, pad_id=None)  # type: ignore[arg-type]


@pytest.mark.parametrize("kv_cache", CACHES)
def test_greedy_padded_batch_equals_each_prompt_alone(kv_cache: str | None) -> None:
    """Reference: the same prompt generated on its own, without padding."""
    model = make_model()
    ids, mask = left_pad(PROMPTS, pad_id=0)
    batch = generate(model, ids, 12, attention_mask=mask, kv_cache=kv_cache)
    for row, prompt in enumerate(PROMPTS):
        alone = generate(model, torch.tensor([prompt]), 12, kv_cache=kv_cache)
        assert torch.equal(batch[row, ids.shape[1] :], alone[0, len(prompt) :])


@pytest.mark.parametrize("kv_cache", CACHES)
def test_returned_logprobs_equal_rescoring_by_a_full_forward_pass(kv_cache: str | None) -> None:
    """Sampling-time and scoring-time log-probs agree (the on-policy ratio is 1)."""
    model = make_model(1)
    ids, mask = left_pad(PROMPTS, pad_id=0)
    out = generate(
        model,
        ids,
        10,
        attention_mask=mask,
        temperature=1.0,
        kv_cache=kv_cache,
        generator=torch.Generator().manual_seed(2),
        return_dict=True,
    )
    torch.testing.assert_close(out.logprobs, rescore(model, out, ids.shape[1]), rtol=0, atol=1e-5)
    for row, prompt in enumerate(PROMPTS):  # and equal the unpadded sequence scored alone
        seq = torch.tensor([prompt + out.completion_ids[row].tolist()])
        logp = torch.log_softmax(model(seq)[0, len(prompt) - 1 : -1], dim=-1)
        alone = logp.gather(-1, out.completion_ids[row, :, None])[:, 0]
        torch.testing.assert_close(out.logprobs[row], alone, rtol=0, atol=1e-5)


def test_logprobs_are_those_of_the_tempered_distribution() -> None:
    """At temperature T the reported log-prob is log softmax(logits / T) of the chosen token."""
    model = make_model(2)
    prompt = torch.tensor([[3, 4, 5]])
    out = generate(
        model, prompt, 1, temperature=0.5, generator=torch.Generator().manual_seed(0), return_dict=True
    )
    logits = model(prompt)[0, -1]
    expected = torch.log_softmax(logits / 0.5, dim=-1)[out.completion_ids[0, 0]]
    assert out.logprobs[0, 0].item() == pytest.approx(expected.item(), abs=1e-6)


def test_completion_mask_stops_after_eos_and_finished_rows_are_padded() -> None:
    model = make_model(3)
    ids, mask = left_pad(PROMPTS, pad_id=0)
    free = generate(model, ids, 12, attention_mask=mask)[:, ids.shape[1] :]
    eos = int(free[0, 2])  # the third token of row 0
    out = generate(model, ids, 12, attention_mask=mask, eos_id=eos, pad_id=0, return_dict=True)
    first = (out.completion_ids[0] == eos).nonzero()[0].item()
    assert first <= 2
    assert out.completion_mask[0, : first + 1].tolist() == [1] * (first + 1)
    assert out.completion_mask[0, first + 1 :].sum().item() == 0
    assert bool((out.completion_ids[0, first + 1 :] == 0).all())  # padded with pad_id
    assert out.logprobs[0, first + 1 :].abs().sum().item() == 0
    assert out.attention_mask[:, ids.shape[1] :].min().item() == 1
    assert torch.equal(out.attention_mask[:, : ids.shape[1]], mask)


def test_without_return_dict_the_ids_come_back_and_no_padding_is_the_plain_path() -> None:
    model = make_model()
    prompt = torch.tensor([[1, 2, 3]])
    plain = generate(model, prompt, 5)
    with_ones = generate(model, prompt, 5, attention_mask=torch.ones_like(prompt))
    assert torch.equal(plain, with_ones)
    out = generate(model, prompt, 5, return_dict=True)
    assert torch.equal(out.sequences, plain)
    assert out.completion_mask.tolist() == [[1] * 5]
    empty = generate(model, prompt, 0, return_dict=True)
    assert empty.completion_ids.shape == (1, 0) and torch.equal(empty.sequences, prompt)


def naive_top_p(logits: torch.Tensor, top_p: float) -> torch.Tensor:
    """From the definition: walk the tokens by falling probability until the mass reaches p."""
    out = torch.full_like(logits, float("-inf"))
    for row in range(logits.shape[0]):
        probs = torch.softmax(logits[row].double(), dim=-1)
        mass = 0.0
        for token in sorted(range(logits.shape[1]), key=lambda i: -probs[i].item()):
            out[row, token] = logits[row, token]
            mass += probs[token].item()
            if mass >= top_p:
                break
    return out


@pytest.mark.parametrize("top_p", [0.05, 0.3, 0.5, 0.9, 0.999])
def test_top_p_filter_keeps_the_nucleus(top_p: float) -> None:
    logits = torch.randn(4, 12, generator=torch.Generator().manual_seed(int(top_p * 1000)))
    assert torch.equal(top_p_filter(logits, top_p), naive_top_p(logits, top_p))


def test_top_p_filter_on_a_hand_example() -> None:
    """Probabilities 0.5, 0.3, 0.15, 0.05: p = 0.7 keeps the first two, p = 0.85 three."""
    logits = torch.tensor([[0.5, 0.3, 0.15, 0.05]]).log()
    assert torch.isfinite(top_p_filter(logits, 0.7)).tolist() == [[True, True, False, False]]
    assert torch.isfinite(top_p_filter(logits, 0.85)).tolist() == [[True, True, True, False]]
    assert torch.isfinite(top_p_filter(logits, 1e-9)).tolist() == [[True, False, False, False]]


def test_sample_next_token_greedy_and_tiny_top_p_agree() -> None:
    logits = torch.randn(3, 20, generator=torch.Generator().manual_seed(0))
    greedy, logp = sample_next_token(logits, temperature=0.0)
    nucleus, _ = sample_next_token(
        logits, temperature=1.0, top_p=1e-6, generator=torch.Generator().manual_seed(0)
    )
    assert torch.equal(greedy, nucleus)
    assert torch.allclose(logp, torch.log_softmax(logits, -1).gather(-1, greedy))


def test_a_padded_run_must_fit_the_window() -> None:
    model = make_model()
    ids, mask = left_pad(PROMPTS, pad_id=0)
    with pytest.raises(ValueError, match="context_length = 32"):
        generate(model, ids, 28, attention_mask=mask)
    small_cache = PreallocatedKVCache(CFG, batch_size=3, max_cache_len=8)
    with pytest.raises(ValueError, match="max_cache_len = 8"):
        generate(model, ids, 5, attention_mask=mask, kv_cache=small_cache)
    with pytest.raises(ValueError, match="attention_mask must have the shape of idx"):
        generate(model, ids, 2, attention_mask=mask[:, 1:])


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"top_p": 0.0}, ValueError, "top_p must be in"),
        ({"top_p": 1.5}, ValueError, "top_p must be in"),
        ({"pad_id": 30}, ValueError, "pad_id must be an int in"),
        ({"kv_cache": "ring"}, ValueError, "kv_cache must be None"),
        ({"temperature": float("nan")}, ValueError, "temperature must be a finite"),
        ({"max_new_tokens": 2.0}, TypeError, "max_new_tokens must be an int"),
    ],
)
def test_bad_arguments_name_the_argument(kwargs: dict, error: type, message: str) -> None:
    model = make_model()
    args = {"max_new_tokens": 2, **kwargs}
    with pytest.raises(error, match=message):
        generate(model, torch.tensor([[1, 2]]), args.pop("max_new_tokens"), **args)
