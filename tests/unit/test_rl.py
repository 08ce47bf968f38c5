"""Tests for tutorial_code.rl: log-probs, masked statistics, KL estimators, sampling,
evaluation and the training harness, each against an independent computation."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from tutorial_code.generation import generate, left_pad
from tutorial_code.model import GPTConfig, GPTModel
from tutorial_code.rl import (
    AlignmentLog,
    PolicyTrainer,
    Rollout,
    completion_logprobs,
    completion_loss,
    evaluate_greedy,
    evaluate_sampling,
    generate_completions,
    kl_estimate,
    kl_from_logits,
    kl_to_reference,
    masked_mean,
    masked_var,
    masked_whiten,
    mean_completion_length,
    pass_at_k,
    sequence_logprobs,
    token_logprobs,
)
from tutorial_code.task import (
    EOS_ID,
    PAD_ID,
    TOKENIZER,
    Problem,
    encode_prompts,
    reward,
    sample_problems,
    sft_batch,
)

TINY = GPTConfig(
    vocab_size=TOKENIZER.vocab_size,
    context_length=48,
    emb_dim=16,
    n_heads=2,
    n_layers=1,
    drop_rate=0.0,
)


def tiny_model(seed: int = 0) -> GPTModel:
    torch.manual_seed(seed)
    return GPTModel(TINY).eval()


# --------------------------------------------------------------------------------------
# Log-probabilities
# --------------------------------------------------------------------------------------


def test_token_logprobs_equals_minus_cross_entropy() -> None:
    """Reference: torch's F.cross_entropy(reduction='none') is -log softmax at the label."""
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(3, 5, 7, generator=g)
    labels = torch.randint(0, 7, (3, 5), generator=g)
    expected = -F.cross_entropy(logits.transpose(1, 2), labels, reduction="none")
    torch.testing.assert_close(token_logprobs(logits, labels), expected)
    assert token_logprobs(logits.to(torch.bfloat16), labels).dtype == torch.float32
    with pytest.raises(ValueError, match="must be \\(B, T, V\\)"):
        token_logprobs(logits, labels[:, :4])
    with pytest.raises(ValueError, match="labels must have an integer dtype"):
        token_logprobs(logits, labels.float())


def _slow_logprob(model: GPTModel, ids: list[int], t: int) -> float:
    """log p(ids[t] | ids[:t]) from a forward pass over the prefix alone."""
    logits = model(torch.tensor([ids[:t]]))[0, -1]
    return torch.log_softmax(logits, dim=-1)[ids[t]].item()


def test_completion_logprobs_match_one_prefix_at_a_time() -> None:
    """Reference: one forward pass per prefix, reading the last logit (no shift to get
    wrong)."""
    model = tiny_model()
    ids = torch.tensor([TOKENIZER.encode("047+285=|332."), TOKENIZER.encode("001+002=1+2=3")])
    got = completion_logprobs(model, ids, logits_to_keep=5)
    for b in range(2):
        row = ids[b].tolist()
        expected = [_slow_logprob(model, row, t) for t in range(len(row) - 5, len(row))]
        torch.testing.assert_close(got[b], torch.tensor(expected), atol=1e-5, rtol=0)
    with pytest.raises(ValueError, match="logits_to_keep must be an int in"):
        completion_logprobs(model, ids, logits_to_keep=ids.shape[1])


def test_sequence_logprobs_sum_mean_and_both_mask_shapes() -> None:
    """Reference: the slow per-prefix log-probs summed over the completion by hand; a
    (B, S) mask and the equivalent right-aligned (B, n) mask agree."""
    model = tiny_model(1)
    ids, mask = sft_batch(["047+285=", "123+456="], ["|332", "3+6=9,2+5=7,1+4=5|579"])
    total = sequence_logprobs(model, ids, mask)
    mean = sequence_logprobs(model, ids, mask, average=True)
    for b in range(2):
        row = ids[b].tolist()
        positions = [t for t in range(len(row)) if mask[b, t] == 1]
        expected = sum(_slow_logprob(model, row, t) for t in positions)
        assert total[b].item() == pytest.approx(expected, abs=1e-4)
        assert mean[b].item() == pytest.approx(expected / len(positions), abs=1e-5)
    short = mask[:, 8:]  # the same completion tokens, as the last n columns
    torch.testing.assert_close(sequence_logprobs(model, ids, short), total)


def test_sequence_logprobs_left_padding_equals_each_row_alone() -> None:
    """Reference: each row run unpadded on its own. Left padding with the attention mask
    must not change a row's completion log-prob."""
    model = tiny_model(2)
    rows = [TOKENIZER.encode("47+85=|132."), TOKENIZER.encode("047+085=7+5=12|132.")]
    ids, attn = left_pad(rows, pad_id=PAD_ID)
    completion = torch.zeros_like(ids)
    completion[:, -5:] = 1  # "|132." in both rows
    batched = sequence_logprobs(model, ids, completion, attention_mask=attn)
    for b, row in enumerate(rows):
        alone = sequence_logprobs(model, torch.tensor([row]), completion[b : b + 1, -len(row) :])
        assert batched[b].item() == pytest.approx(alone.item(), abs=1e-5)


def test_sequence_logprobs_errors() -> None:
    model = tiny_model()
    ids, mask = sft_batch(["047+285="], ["|332"])
    bad = mask.clone()
    bad[0, 0] = 1
    with pytest.raises(ValueError, match="completion_mask\\[:, 0\\] must be 0"):
        sequence_logprobs(model, ids, bad)
    with pytest.raises(ValueError, match="completion_mask must be \\(B, S\\)"):
        sequence_logprobs(model, ids, mask[:, :0])
    with pytest.raises(ValueError, match="only 0 and 1"):
        sequence_logprobs(model, ids, mask * 2)
    with pytest.raises(ValueError, match="selects no token"):
        completion_loss(model, ids, torch.zeros_like(mask))


def test_completion_loss_equals_cross_entropy_with_ignored_prompt_labels() -> None:
    """Reference: F.cross_entropy with labels -100 on prompt and padding (Hugging Face's
    convention for completion-only SFT)."""
    model = tiny_model(3)
    ids, mask = sft_batch(["047+285=", "123+456="], ["|332", "3+6=9,2+5=7,1+4=5|579"])
    labels = ids[:, 1:].masked_fill(mask[:, 1:] == 0, -100)
    logits = model(ids)[:, :-1]
    expected = F.cross_entropy(logits.flatten(0, 1), labels.flatten(), ignore_index=-100)
    torch.testing.assert_close(completion_loss(model, ids, mask), expected)


def test_prompt_tokens_get_no_gradient() -> None:
    """The gradient of the SFT loss with respect to every logit that predicts a prompt token
    (or padding) is exactly zero; it is non-zero where a completion token is predicted."""
    model = tiny_model(4)
    ids, mask = sft_batch(["047+285=", "123+456="], ["|332", "3+6=9|9"])
    captured = {}

    def keep(module, inputs, output):
        output.retain_grad()
        captured["logits"] = output

    handle = model.out_head.register_forward_hook(keep)
    completion_loss(model, ids, mask).backward()
    handle.remove()
    grad = captured["logits"].grad  # (B, S, V); row t predicts token t + 1
    predicts_completion = mask[:, 1:] == 1
    assert torch.count_nonzero(grad[:, :-1][~predicts_completion]) == 0
    assert torch.count_nonzero(grad[:, -1]) == 0  # the last logit predicts nothing
    assert (grad[:, :-1][predicts_completion].abs().sum(dim=-1) > 0).all()


# --------------------------------------------------------------------------------------
# Masked statistics
# --------------------------------------------------------------------------------------


def _trl_reference(x: list[float], m: list[int]) -> tuple[float, float, list[float]]:
    """TRL's masked_mean / masked_var(unbiased) / masked_whiten, in plain Python floats."""
    selected = [v for v, k in zip(x, m) if k]
    n = len(selected)
    mu = sum(selected) / n
    var = sum((v - mu) ** 2 for v in selected) / n * n / (n - 1)
    return mu, var, [(v - mu) / math.sqrt(var + 1e-8) for v in x]


def test_masked_statistics_match_trl_formulas_in_plain_python() -> None:
    g = torch.Generator().manual_seed(0)
    x = torch.randn(4, 6, generator=g, dtype=torch.float64)
    mask = (torch.rand(4, 6, generator=g) > 0.4).long()
    mu, var, white = _trl_reference(x.flatten().tolist(), mask.flatten().tolist())
    assert masked_mean(x, mask).item() == pytest.approx(mu, rel=1e-12)
    assert masked_var(x, mask).item() == pytest.approx(var, rel=1e-12)
    torch.testing.assert_close(
        masked_whiten(x, mask), torch.tensor(white, dtype=x.dtype).view(4, 6)
    )
    unshifted = masked_whiten(x, mask, shift_mean=False)
    torch.testing.assert_close(unshifted, torch.tensor(white, dtype=x.dtype).view(4, 6) + mu)
    # torch's own unbiased / biased variance of the selected entries
    selected = x[mask.bool()]
    assert masked_var(x, mask).item() == pytest.approx(selected.var(unbiased=True).item())
    assert masked_var(x, mask, unbiased=False).item() == pytest.approx(
        selected.var(unbiased=False).item()
    )
    whitened = masked_whiten(x, mask)[mask.bool()]
    assert whitened.mean().item() == pytest.approx(0.0, abs=1e-12)
    assert whitened.var().item() == pytest.approx(1.0, abs=1e-6)


def test_masked_mean_along_a_dimension() -> None:
    """Reference: the mean of each row's selected entries, row by row."""
    x = torch.tensor([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]])
    mask = torch.tensor([[1, 0, 1], [0, 1, 0]])
    torch.testing.assert_close(masked_mean(x, mask, dim=1), torch.tensor([2.0, 5.0]))
    torch.testing.assert_close(masked_mean(x, mask, dim=0), torch.tensor([1.0, 5.0, 3.0]))


def test_masked_statistics_errors() -> None:
    x = torch.tensor([1.0, 2.0, 3.0])
    with pytest.raises(ValueError, match="mask selects no entry"):
        masked_mean(x, torch.zeros(3))
    with pytest.raises(ValueError, match="at least 2 selected entries"):
        masked_var(x, torch.tensor([0, 1, 0]))
    with pytest.raises(ValueError, match="mask has shape"):
        masked_mean(x, torch.ones(2))
    with pytest.raises(ValueError, match="x must have a floating-point dtype"):
        masked_mean(torch.tensor([1, 2]), torch.ones(2))


# --------------------------------------------------------------------------------------
# KL
# --------------------------------------------------------------------------------------


def test_kl_estimators_by_hand() -> None:
    """Values worked by hand for r = log pi_ref - log pi = log 2 and -log 2."""
    logp = torch.log(torch.tensor([0.25, 0.5]))
    ref = torch.log(torch.tensor([0.5, 0.25]))
    ln2 = math.log(2)
    torch.testing.assert_close(kl_estimate(logp, ref, "k1"), torch.tensor([-ln2, ln2]))
    torch.testing.assert_close(kl_estimate(logp, ref, "abs"), torch.tensor([ln2, ln2]))
    torch.testing.assert_close(kl_estimate(logp, ref, "k2"), torch.tensor([ln2**2 / 2] * 2))
    torch.testing.assert_close(
        kl_estimate(logp, ref, "k3"), torch.tensor([2 - ln2 - 1, 0.5 + ln2 - 1])
    )
    with pytest.raises(ValueError, match="estimator must be one of"):
        kl_estimate(logp, ref, "mse")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="ref_logprobs has shape"):
        kl_estimate(logp, ref[:1])


def test_kl_from_logits_matches_torch_kl_div() -> None:
    """Reference: F.kl_div(log q, log p, log_target=True) summed over the vocabulary."""
    g = torch.Generator().manual_seed(0)
    p_logits, q_logits = torch.randn(2, 3, 11, generator=g), torch.randn(2, 3, 11, generator=g)
    expected = F.kl_div(
        F.log_softmax(q_logits, -1),
        F.log_softmax(p_logits, -1),
        log_target=True,
        reduction="none",
    ).sum(-1)
    torch.testing.assert_close(kl_from_logits(p_logits, q_logits), expected)
    assert torch.count_nonzero(kl_from_logits(p_logits, p_logits)) == 0


def _exact_moments(p: torch.Tensor, q: torch.Tensor, estimator: str) -> tuple[float, float]:
    """Mean and variance of an estimator under token ~ p, summed exactly over the vocabulary."""
    values = kl_estimate(p.log(), q.log(), estimator)  # one value per vocabulary entry
    mean = (p * values).sum()
    return mean.item(), (p * (values - mean) ** 2).sum().item()


@pytest.mark.parametrize("far", [False, True])
def test_k1_and_k3_are_unbiased_by_simulation(far: bool) -> None:
    """Monte Carlo with 200,000 tokens drawn from p: the means of k1 and k3 are within 5
    standard errors of the exact KL(p || q) (torch's kl_div); k2 and abs are biased."""
    g = torch.Generator().manual_seed(1)
    logits = torch.randn(20, generator=g)
    p = torch.softmax(logits, 0)
    q = torch.softmax(logits + (3.0 if far else 0.2) * torch.randn(20, generator=g), 0)
    true_kl = F.kl_div(q.log(), p.log(), log_target=True, reduction="sum").item()
    tokens = torch.multinomial(p, 200_000, replacement=True, generator=g)
    for estimator in ("k1", "k3"):
        samples = kl_estimate(p.log()[tokens], q.log()[tokens], estimator).double()
        se = samples.std().item() / math.sqrt(samples.numel())
        assert abs(samples.mean().item() - true_kl) < 5 * se + 1e-6, estimator
        # and the exact expectation over the vocabulary is the KL itself
        assert _exact_moments(p, q, estimator)[0] == pytest.approx(true_kl, rel=1e-4)
    for estimator in ("k2", "abs"):
        assert abs(_exact_moments(p, q, estimator)[0] - true_kl) > 1e-4


def test_k3_has_lower_variance_when_close_and_explodes_when_far() -> None:
    """Exact variances over the vocabulary (Schulman's note): with q close to p, k3's
    variance is far below k1's; with q far from p (true KL >= 2) and q putting much mass
    where p puts little, k3's variance is many times k1's."""
    g = torch.Generator().manual_seed(2)
    logits = torch.randn(20, generator=g)
    p = torch.softmax(logits, 0)
    close = torch.softmax(logits + 0.1 * torch.randn(20, generator=g), 0)
    k1_mean, k1_var = _exact_moments(p, close, "k1")
    _, k3_var = _exact_moments(p, close, "k3")
    assert k1_mean < 0.01 and k3_var < 0.1 * k1_var
    # far: p almost always picks token 0, q almost always token 1; the rare token 1 under p
    # has pi_ref / pi = 98, and k3 = exp(r) - r - 1 grows like that ratio
    p, far = torch.tensor([0.99, 0.01]), torch.tensor([0.02, 0.98])
    true_kl = F.kl_div(far.log(), p.log(), log_target=True, reduction="sum").item()
    _, k1_var = _exact_moments(p, far, "k1")
    _, k3_var = _exact_moments(p, far, "k3")
    assert true_kl >= 2 and k3_var > 10 * k1_var


# --------------------------------------------------------------------------------------
# Sampling and evaluation
# --------------------------------------------------------------------------------------


def test_generate_completions_is_prompt_major_with_matching_logprobs() -> None:
    """Reference: generate() on explicitly repeated prompts with the same generator; the
    returned log-probs equal a full forward pass (completion_logprobs) at temperature 1."""
    model = tiny_model(5)
    prompts = encode_prompts(sample_problems(3, split="val"))
    out = generate_completions(
        model,
        prompts,
        num_generations=4,
        max_new_tokens=12,
        generator=torch.Generator().manual_seed(0),
    )
    ref = generate(
        model,
        prompts.repeat_interleave(4, 0),
        12,
        temperature=1.0,
        eos_id=EOS_ID,
        pad_id=PAD_ID,
        generator=torch.Generator().manual_seed(0),
        return_dict=True,
    )
    assert torch.equal(out.sequences, ref.sequences)
    assert torch.equal(out.sequences[:4, :8], prompts[:1].expand(4, 8))
    recomputed = completion_logprobs(model, out.sequences, logits_to_keep=12)
    torch.testing.assert_close(out.logprobs, recomputed * out.completion_mask, atol=1e-5, rtol=0)


def test_generate_completions_left_pads_prompts_of_unequal_length() -> None:
    """Reference: each prompt generated alone (greedy) without padding."""
    model = tiny_model(6)
    prompts = [TOKENIZER.encode("47+85="), TOKENIZER.encode("047+085=")]
    out = generate_completions(
        model, prompts, num_generations=2, temperature=0.0, max_new_tokens=10
    )
    for i, prompt in enumerate(prompts):
        alone = generate(model, torch.tensor([prompt]), 10, eos_id=EOS_ID, pad_id=PAD_ID)
        for row in (2 * i, 2 * i + 1):
            n = alone.shape[1] - len(prompt)
            assert out.completion_ids[row, :n].tolist() == alone[0, len(prompt) :].tolist()
    with pytest.raises(ValueError, match="num_generations must be an int"):
        generate_completions(model, prompts, num_generations=0)
    with pytest.raises(TypeError, match="model must be a"):
        generate_completions(torch.nn.Linear(2, 2), prompts)  # type: ignore[arg-type]


def test_pass_at_k_equals_the_binomial_formula() -> None:
    """Reference: Chen et al.'s eq. 1 written with math.comb, for every n <= 20, c, k."""
    for n in range(1, 21):
        for c in range(n + 1):
            for k in range(1, n + 1):
                expected = 1 - math.comb(n - c, k) / math.comb(n, k)
                assert pass_at_k(n, c, k) == pytest.approx(expected, abs=1e-12)
    assert pass_at_k(16, 4, 1) == 0.25
    with pytest.raises(ValueError, match="k must be an int in"):
        pass_at_k(8, 2, 9)
    with pytest.raises(ValueError, match="c must be an int in"):
        pass_at_k(8, 9, 1)


def test_pass_at_k_estimates_the_chance_that_one_of_k_draws_is_right() -> None:
    """Monte Carlo: draw k of the n samples without replacement 20,000 times."""
    g = torch.Generator().manual_seed(0)
    n, c, k = 16, 3, 5
    labels = torch.tensor([1] * c + [0] * (n - c))
    hits = sum(bool(labels[torch.randperm(n, generator=g)[:k]].any()) for _ in range(20_000))
    assert hits / 20_000 == pytest.approx(pass_at_k(n, c, k), abs=0.015)


def test_mean_completion_length_by_hand() -> None:
    assert mean_completion_length(torch.tensor([[1, 1, 0], [1, 1, 1]])) == 2.5
    with pytest.raises(ValueError, match="has no rows"):
        mean_completion_length(torch.zeros(0, 3))


def test_evaluations_refuse_an_empty_problem_list() -> None:
    model = tiny_model(7)
    with pytest.raises(ValueError, match="problems must hold at least one Problem"):
        evaluate_greedy(model, [])
    with pytest.raises(ValueError, match="problems must hold at least one Problem"):
        evaluate_sampling(model, [], n=2)


def test_evaluate_greedy_and_sampling_match_one_problem_at_a_time() -> None:
    """Reference: generate() on each prompt alone and the task's reward, one by one."""
    model = tiny_model(7)
    problems = sample_problems(6, split="val")
    result = evaluate_greedy(model, problems, batch_size=4)
    for i, p in enumerate(problems):
        ids = generate(model, encode_prompts([p]), 32, eos_id=EOS_ID)
        text = TOKENIZER.decode(ids[0, 8:].tolist()).split(".")[0]
        assert result.completions[i] == text
        assert bool(result.correct[i]) == (reward(p, text) == 1.0)
    sampled = evaluate_sampling(
        model, problems, n=3, generator=torch.Generator().manual_seed(0), batch_size=4
    )
    assert sampled.correct.shape == sampled.lengths.shape == (6, 3)
    assert sampled.pass_at(1) == pytest.approx(sampled.correct.double().mean().item())
    assert (sampled.lengths >= 1).all()


def test_kl_to_reference_is_zero_for_itself_and_matches_a_loop() -> None:
    """Reference: exact KL per completion position from two separate forward passes."""
    policy, ref = tiny_model(8), tiny_model(9)
    ids, mask = sft_batch(["047+285=", "123+456="], ["|332", "3+6=9|9"])
    assert kl_to_reference(policy, policy, ids, mask) == 0.0
    logits, ref_logits = policy(ids)[:, :-1], ref(ids)[:, :-1]
    per_token = F.kl_div(
        F.log_softmax(ref_logits, -1), F.log_softmax(logits, -1), log_target=True, reduction="none"
    ).sum(-1)
    m = mask[:, 1:].bool()
    assert kl_to_reference(policy, ref, ids, mask) == pytest.approx(
        per_token[m].mean().item(), rel=1e-5
    )


# --------------------------------------------------------------------------------------
# The harness
# --------------------------------------------------------------------------------------


def _reinforce(policy: GPTModel, batch: Rollout) -> tuple[torch.Tensor, dict[str, float]]:
    """A minimal on-policy loss: REINFORCE with a baseline, plus a term that raises the
    log-prob of every sample (so that a tiny model with zero rewards still moves)."""
    logprobs = completion_logprobs(
        policy,
        batch.input_ids,
        attention_mask=batch.attention_mask,
        logits_to_keep=batch.logits_to_keep,
    )
    advantage = batch.rewards - batch.rewards.mean() + 0.1
    seq = (logprobs * batch.completion_mask).sum(dim=1)
    return -(advantage * seq).mean(), {"advantage_abs": advantage.abs().mean().item()}


def test_rollout_fields_are_consistent_at_the_start() -> None:
    """At step 0 the reference is a copy of the policy: reference log-probs equal the old
    ones and the exact KL is 0; old log-probs equal the sampling log-probs at T = 1."""
    trainer = PolicyTrainer(tiny_model(10), seed=3, eval_problems=sample_problems(4, split="val"))
    batch = trainer.rollout(trainer.sample_problems(3), num_generations=2)
    assert len(batch.problems) == len(batch.completions) == 6
    assert batch.problems[0] == batch.problems[1] != batch.problems[2]
    torch.testing.assert_close(batch.ref_logprobs, batch.old_logprobs)
    assert torch.count_nonzero(batch.kl) == 0
    again = generate_completions(
        trainer.policy,
        batch.input_ids[::2, :8],
        num_generations=2,
        generator=torch.Generator().manual_seed(3),
    )
    torch.testing.assert_close(batch.old_logprobs, again.logprobs, atol=1e-5, rtol=0)
    expected = torch.tensor([reward(p, c) for p, c in zip(batch.problems, batch.completions)])
    assert torch.equal(batch.rewards, expected)
    stats = batch.stats()
    assert stats["kl"] == 0.0 and stats["length"] == batch.lengths.double().mean().item()


def test_policy_trainer_is_seeded_logs_every_step_and_freezes_the_reference() -> None:
    """Two runs with the same seed give identical logs; the reference never moves."""

    def run() -> tuple[AlignmentLog, PolicyTrainer]:
        trainer = PolicyTrainer(
            tiny_model(11),
            lr=1e-2,
            seed=1,
            eval_every=2,
            eval_problems=sample_problems(5, split="val"),
        )
        ref_before = [p.clone() for p in trainer.ref_model.parameters()]
        log = trainer.train(
            _reinforce, steps=3, get_batch=lambda t: t.online_batch(batch_size=2, num_generations=3)
        )
        for before, after in zip(ref_before, trainer.ref_model.parameters()):
            assert torch.equal(before, after) and not after.requires_grad
        return log, trainer

    (log, trainer), (log2, _) = run(), run()
    assert log.steps == log2.steps and log.evals == log2.evals
    assert [r["step"] for r in log.steps] == [1, 2, 3]
    assert [r["step"] for r in log.evals] == [0, 2, 3]
    assert {"loss", "grad_norm", "reward", "accuracy", "kl", "length", "advantage_abs"} <= set(
        log.steps[0]
    )
    assert log.series("kl")[-1] > 0  # the policy moved away from the reference
    with pytest.raises(KeyError, match="'nope' is not logged"):
        log.series("nope")
    with pytest.raises(ValueError, match="scalar tensor that requires grad"):
        trainer.update(torch.tensor(1.0))


def test_policy_trainer_argument_errors() -> None:
    with pytest.raises(TypeError, match="policy must be a"):
        PolicyTrainer(torch.nn.Linear(2, 2))  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="lr must be > 0"):
        PolicyTrainer(tiny_model(), lr=0.0)
    with pytest.raises(ValueError, match="steps must be an int"):
        PolicyTrainer(tiny_model(), eval_problems=[Problem(1, 2)]).train(_reinforce, steps=0)
