"""Tests for tutorial_code.ppo: the reward model, per-token rewards, GAE, the clipped losses,
the KL controllers and the PPO loop, each against an independent computation."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from tests.unit.test_rl import TINY, tiny_model
from tutorial_code.model import GPTConfig, GPTModel
from tutorial_code.ppo import (
    AdaptiveKLController,
    FixedKLController,
    PPOConfig,
    PPOTrainer,
    RewardModel,
    RewardModelConfig,
    compute_gae,
    pair_batch,
    per_token_rewards,
    ppo_policy_loss,
    ppo_value_loss,
    reward_model_loss,
    reward_model_metrics,
    rlhf_memory,
    rollout_token_mask,
    train_reward_model,
)
from tutorial_code.rl import (
    AlignmentLog,
    completion_logprobs,
    generate_completions,
    masked_whiten,
)
from tutorial_code.task import TOKENIZER, encode_prompts, sample_problems


def random_prefix_mask(b: int, t: int, generator: torch.Generator) -> torch.Tensor:
    """``(b, t)`` float masks: each row ``L`` ones then zeros, ``L`` uniform in 1..t, with one
    full row."""
    lengths = torch.randint(1, t + 1, (b,), generator=generator)
    lengths[0] = t
    return (torch.arange(t)[None, :] < lengths[:, None]).float()


# --------------------------------------------------------------------------------------
# The reward model
# --------------------------------------------------------------------------------------


def test_reward_model_loss_reproduces_the_worked_example() -> None:
    """Reference: the value derived by hand, (softplus(-1.0) + softplus(0.2)) / 2 = 0.5557003,
    and -log sigmoid written with math.exp for the margin and the metrics."""
    chosen, rejected = torch.tensor([1.5, 0.2]), torch.tensor([0.5, 0.4])
    loss = reward_model_loss(chosen, rejected)
    expected = (math.log1p(math.exp(-1.0)) + math.log1p(math.exp(0.2))) / 2
    assert expected == pytest.approx(0.5557003, abs=5e-8)
    assert loss.item() == pytest.approx(0.5557003, abs=1e-6)
    margin = torch.tensor([0.5, -1.0])
    by_hand = [
        -math.log(1 / (1 + math.exp(-(c - r - m))))
        for c, r, m in zip([1.5, 0.2], [0.5, 0.4], [0.5, -1.0])
    ]
    assert reward_model_loss(chosen, rejected, margin).item() == pytest.approx(
        sum(by_hand) / 2, rel=1e-6
    )
    metrics = reward_model_metrics(chosen, rejected)
    assert metrics == pytest.approx({"accuracy": 0.5, "margin": 0.4})
    assert reward_model_metrics(torch.ones(2), torch.ones(2))["accuracy"] == 0.0  # a tie


def test_reward_model_loss_gradient_is_sigmoid_of_minus_the_difference() -> None:
    """Reference: d/dr_c of -log sigmoid(r_c - r_r) = -sigmoid(r_r - r_c), by hand."""
    chosen = torch.tensor([1.5, 0.2, -0.3], requires_grad=True)
    rejected = torch.tensor([0.5, 0.4, 0.9])
    reward_model_loss(chosen, rejected).backward()
    expected = -torch.sigmoid(rejected - chosen.detach()) / 3
    torch.testing.assert_close(chosen.grad, expected)


def test_reward_model_reads_the_last_real_token() -> None:
    """Reference: each row scored alone, unpadded, read at its last column; right padding
    (pair_batch) and left padding both give the same scores."""
    rm = RewardModel(tiny_model(), generator=torch.Generator().manual_seed(1)).eval()
    prompts = ["047+285=", "123+456=", "001+002="]
    completions = ["|332", "6+3=9,5+2=7,4+1=5|579", "|3"]
    ids, mask = pair_batch(prompts, completions)
    assert ids.shape[1] == 8 + len(completions[1]) + 1
    alone = torch.stack(
        [rm(torch.tensor([TOKENIZER.encode(p + c + ".")]))[0] for p, c in zip(prompts, completions)]
    )
    torch.testing.assert_close(rm(ids, attention_mask=mask), alone)
    rows = [TOKENIZER.encode(p + c + ".") for p, c in zip(prompts, completions)]
    width = max(map(len, rows))
    left = torch.tensor([[0] * (width - len(r)) + r for r in rows])
    left_mask = torch.tensor([[0] * (width - len(r)) + [1] * len(r) for r in rows])
    torch.testing.assert_close(rm(left, attention_mask=left_mask), alone, atol=1e-5, rtol=1e-5)
    with pytest.raises(ValueError, match="at least one real token"):
        rm(ids, attention_mask=torch.zeros_like(mask))


def test_reward_model_head_initialisation_and_used_parameters() -> None:
    """Reference: the stated initialisation, std 1/sqrt(C+1) (checked on a wide head by the
    sample standard deviation) and exactly zero with head_std=0."""
    wide = GPTModel(GPTConfig(**{**TINY.__dict__, "emb_dim": 1024, "n_heads": 2}))
    rm = RewardModel(wide, generator=torch.Generator().manual_seed(0))
    assert rm.score.weight.std().item() == pytest.approx(1 / math.sqrt(1025), rel=0.1)
    assert rm.score.bias.item() == 0.0
    zero = RewardModel(tiny_model(), head_std=0.0)
    assert not bool(zero.score.weight.any())
    names = {id(p) for p in zero.used_parameters()}
    assert id(zero.backbone.out_head.weight) not in names
    assert id(zero.score.weight) in names
    with pytest.raises(TypeError, match="backbone must be"):
        RewardModel(torch.nn.Linear(2, 2))


def test_completion_values_are_read_before_each_token() -> None:
    """Pitfall (off-by-one between logits and labels), for values: V_t must be the value of
    the prefix *before* completion token t. Reference: the head run on that prefix alone."""
    rm = RewardModel(tiny_model(), generator=torch.Generator().manual_seed(2)).eval()
    ids, _ = pair_batch(["047+285=", "123+456="], ["|332", "6+3=9|579"])
    k = 6
    values = rm.completion_values(ids, logits_to_keep=k)
    s = ids.shape[1]
    for b in range(2):
        for t in range(k):
            prefix = ids[b : b + 1, : s - k + t]  # everything before completion token t
            assert values[b, t].item() == pytest.approx(rm.values(prefix)[0, -1].item(), abs=1e-5)
    shifted = rm.values(ids)[:, -k:]  # the wrong alignment: includes token t itself
    assert not torch.allclose(values, shifted)


def test_train_reward_model_normalises_its_scores_on_the_sft_samples() -> None:
    """Reference: the normalisation it states, recomputed: after folding, the scores of the
    SFT samples have mean 0 and standard deviation 1; the pairs are right vs wrong."""
    config = RewardModelConfig(n_problems=24, num_generations=4, steps=2, batch_size=8)
    rm, record = train_reward_model(config)
    assert record["pairs"] > 0 and len(record["loss"]) == 2
    assert not any(p.requires_grad for p in rm.parameters()) and not rm.training
    from tutorial_code.checkpoints import load_checkpoint
    from tutorial_code.ppo import score_texts
    from tutorial_code.rl import evaluate_sampling

    problems = sample_problems(24, split="train", seed=10_000)
    samples = evaluate_sampling(
        load_checkpoint("sft"), problems, n=4, generator=torch.Generator().manual_seed(0)
    ).completions
    flat = [(p.prompt, c) for p, group in zip(problems, samples) for c in group]
    scores = score_texts(rm, [p for p, _ in flat], [c for _, c in flat])
    assert scores.mean().item() == pytest.approx(0.0, abs=1e-4)
    assert scores.std().item() == pytest.approx(1.0, abs=1e-4)
    with pytest.raises(TypeError, match="RewardModelConfig"):
        train_reward_model({"steps": 1})


# --------------------------------------------------------------------------------------
# Per-token rewards
# --------------------------------------------------------------------------------------


def _kl_by_hand(logp: float, ref: float, estimator: str) -> float:
    r = ref - logp
    return {"k1": -r, "abs": abs(r), "k2": 0.5 * r * r, "k3": math.exp(r) - r - 1}[estimator]


@pytest.mark.parametrize("estimator", ["k1", "abs", "k2", "k3"])
def test_per_token_rewards_match_a_loop_in_plain_python(estimator: str) -> None:
    """Reference: each KL estimator written from its formula in float64 Python, the score
    added at the last real token, zeros on padding."""
    g = torch.Generator().manual_seed(3)
    b, t = 5, 7
    logp = -torch.rand(b, t, generator=g, dtype=torch.float64) * 3
    ref = -torch.rand(b, t, generator=g, dtype=torch.float64) * 3
    mask = random_prefix_mask(b, t, g).double()
    score = torch.randn(b, generator=g, dtype=torch.float64)
    got = per_token_rewards(score, logp, ref, mask, kl_coef=0.1, estimator=estimator)
    for i in range(b):
        n = int(mask[i].sum())
        for j in range(t):
            expected = 0.0
            if j < n:
                expected = -0.1 * _kl_by_hand(logp[i, j].item(), ref[i, j].item(), estimator)
            if j == n - 1:
                expected += score[i].item()
            assert got[i, j].item() == pytest.approx(expected, abs=1e-12)


def test_the_kl_penalty_is_a_log_ratio_not_a_probability_ratio() -> None:
    """Reference: summed over a completion, the k1 penalties are -beta (log pi(y|x) -
    log pi_ref(y|x)) (Ziegler et al., eq. 2); a probability ratio pi/pi_ref would not be."""
    logp = torch.tensor([[-1.0, -0.5, -2.0, -0.1]])
    ref = torch.tensor([[-1.2, -0.4, -2.5, -0.1]])
    rewards = per_token_rewards(torch.zeros(1), logp, ref, torch.ones(1, 4), kl_coef=0.05)
    log_ratio = (logp.sum() - ref.sum()).item()  # log pi(y|x) - log pi_ref(y|x) = 0.6
    assert rewards.sum().item() == pytest.approx(-0.05 * log_ratio, abs=1e-7)
    probability_ratio = -0.05 * torch.exp(logp - ref).sum().item()
    assert rewards.sum().item() != pytest.approx(probability_ratio, abs=1e-3)


def test_per_token_rewards_errors() -> None:
    """Reference: the documented argument rules (shapes, prefix masks, kl_coef >= 0)."""
    logp, ref, mask = torch.zeros(2, 3), torch.zeros(2, 3), torch.ones(2, 3)
    with pytest.raises(ValueError, match="run of ones"):
        per_token_rewards(
            torch.zeros(2), logp, ref, torch.tensor([[1, 0, 1], [1, 1, 1]]), kl_coef=0.1
        )
    with pytest.raises(ValueError, match="at least one completion token"):
        per_token_rewards(
            torch.zeros(2), logp, ref, torch.tensor([[0, 0, 0], [1, 1, 1]]), kl_coef=0.1
        )
    with pytest.raises(ValueError, match="kl_coef"):
        per_token_rewards(torch.zeros(2), logp, ref, mask, kl_coef=-0.1)
    with pytest.raises(ValueError, match="estimator"):
        per_token_rewards(torch.zeros(2), logp, ref, mask, kl_coef=0.1, estimator="full")
    with pytest.raises(ValueError, match="score"):
        per_token_rewards(torch.zeros(3), logp, ref, mask, kl_coef=0.1)
    with pytest.raises(ValueError, match="shape"):
        per_token_rewards(torch.zeros(2), logp, ref[:, :2], mask, kl_coef=0.1)


# --------------------------------------------------------------------------------------
# GAE
# --------------------------------------------------------------------------------------


def test_worked_example_gives_trls_advantages() -> None:
    """Reference: the published numbers of the chapter's worked example (TRL's convention:
    score on the last token, k1 penalty, gamma 1, lambda 0.95), then whitening by numpy."""
    logp = torch.tensor([[-1.0, -0.5, -2.0, -0.1]])
    ref = torch.tensor([[-1.2, -0.4, -2.5, -0.1]])
    values = torch.tensor([[0.5, 0.4, 0.3, 0.2]])
    mask = torch.ones(1, 4)
    rewards = per_token_rewards(torch.tensor([1.0]), logp, ref, mask, kl_coef=0.05)
    torch.testing.assert_close(rewards, torch.tensor([[-0.01, 0.005, -0.025, 1.0]]))
    advantages, returns = compute_gae(rewards, values, mask, gamma=1.0, lam=0.95)
    expected = [0.372838, 0.508250, 0.635000, 0.800000]
    assert advantages[0].tolist() == pytest.approx(expected, abs=1e-6)
    torch.testing.assert_close(returns, advantages + values)
    a = np.array(expected)
    whitened = (a - a.mean()) / np.sqrt(a.var(ddof=1) + 1e-8)
    assert masked_whiten(advantages, mask)[0].tolist() == pytest.approx(whitened, abs=1e-5)


def test_compute_gae_equals_the_direct_sum_over_future_deltas() -> None:
    """Reference: A_t = sum_l (gamma lam)^l delta_{t+l} summed directly in float64, with
    V = 0 after each row's last token; padding holds garbage that must be ignored."""
    g = torch.Generator().manual_seed(4)
    b, t = 6, 9
    mask = random_prefix_mask(b, t, g).double()
    rewards = torch.randn(b, t, generator=g, dtype=torch.float64)
    values = torch.randn(b, t, generator=g, dtype=torch.float64)
    for gamma, lam in ((1.0, 0.95), (0.9, 0.8), (0.99, 1.0), (1.0, 0.0)):
        advantages, returns = compute_gae(rewards, values, mask, gamma=gamma, lam=lam)
        for i in range(b):
            n = int(mask[i].sum())
            v = values[i, :n].tolist() + [0.0]
            deltas = [rewards[i, s].item() + gamma * v[s + 1] - v[s] for s in range(n)]
            for s in range(t):
                if s >= n:
                    assert advantages[i, s].item() == 0.0 and returns[i, s].item() == 0.0
                    continue
                direct = sum((gamma * lam) ** k * deltas[s + k] for k in range(n - s))
                assert advantages[i, s].item() == pytest.approx(direct, abs=1e-12)
                assert returns[i, s].item() == pytest.approx(direct + v[s], abs=1e-12)


def test_gae_with_lambda_one_gives_monte_carlo_returns() -> None:
    """Reference: with gamma = lam = 1 the returns are the sums of the rewards to go,
    whatever the values (the values cancel in the telescoping sum)."""
    g = torch.Generator().manual_seed(5)
    mask = random_prefix_mask(4, 6, g)
    rewards = torch.randn(4, 6, generator=g) * mask
    values = torch.randn(4, 6, generator=g)
    _, returns = compute_gae(rewards, values, mask, gamma=1.0, lam=1.0)
    to_go = rewards.flip(1).cumsum(1).flip(1) * mask
    torch.testing.assert_close(returns, to_go, atol=1e-5, rtol=1e-5)


def test_compute_gae_errors() -> None:
    """Reference: the documented argument rules."""
    x, mask = torch.zeros(2, 3), torch.ones(2, 3)
    with pytest.raises(ValueError, match="lam"):
        compute_gae(x, x, mask, lam=1.5)
    with pytest.raises(ValueError, match="gamma"):
        compute_gae(x, x, mask, gamma=-0.1)
    with pytest.raises(ValueError, match="shape"):
        compute_gae(x, x[:, :2], mask)
    with pytest.raises(ValueError, match="only 0 and 1"):
        compute_gae(x, x, mask * 0.5)


def test_masked_whiten_matches_numpy() -> None:
    """Reference: numpy's mean and unbiased variance (ddof=1) over the selected entries,
    (x - mean) / sqrt(var + 1e-8); shift_mean=False adds the mean back."""
    g = torch.Generator().manual_seed(6)
    x = torch.randn(5, 8, generator=g, dtype=torch.float64) * 3 + 1
    mask = random_prefix_mask(5, 8, g).double()
    selected = x[mask.bool()].numpy()
    mean, var = selected.mean(), selected.var(ddof=1)
    got = masked_whiten(x, mask)
    np.testing.assert_allclose(got[mask.bool()].numpy(), (selected - mean) / np.sqrt(var + 1e-8))
    kept = masked_whiten(x, mask, shift_mean=False)[mask.bool()].numpy()
    np.testing.assert_allclose(kept, (selected - mean) / np.sqrt(var + 1e-8) + mean)


def test_normalising_advantages_over_padding_gives_the_wrong_scale() -> None:
    """Pitfall (normalising advantages over padding). Reference: numpy over the real tokens.
    Whitening the whole (B, T) tensor counts the padding's zeros: the real tokens' whitened
    advantages then neither have mean 0 nor variance 1, and short rows pull the mean."""
    g = torch.Generator().manual_seed(7)
    mask = random_prefix_mask(8, 10, g)
    advantages = (torch.randn(8, 10, generator=g) + 2.0) * mask  # 0 on padding
    right = masked_whiten(advantages, mask)[mask.bool()].double().numpy()
    wrong = masked_whiten(advantages, torch.ones_like(mask))[mask.bool()].double().numpy()
    assert abs(right.mean()) < 1e-6 and right.var(ddof=1) == pytest.approx(1.0, rel=1e-5)
    assert wrong.mean() > 0.3  # the padding zeros dragged the mean below the real tokens'
    assert wrong.var(ddof=1) < 0.9


# --------------------------------------------------------------------------------------
# The clipped losses
# --------------------------------------------------------------------------------------


def _policy_loss_by_hand(logp, old, adv, mask, eps):
    """float64 loops: mean over real tokens of max(-A rho, -A clip(rho)); clipped fraction."""
    total, clipped_count, count = 0.0, 0, 0
    for i in range(logp.shape[0]):
        for j in range(logp.shape[1]):
            if mask[i, j] == 0:
                continue
            rho = math.exp(logp[i, j] - old[i, j])
            a = adv[i, j]
            unclipped, clipped = -a * rho, -a * min(max(rho, 1 - eps), 1 + eps)
            total += max(unclipped, clipped)
            clipped_count += clipped > unclipped
            count += 1
    return total / count, clipped_count / count


def test_ppo_policy_loss_matches_a_float64_loop_and_its_gradient() -> None:
    """Reference: the clipped surrogate written with Python floats; the gradient by hand:
    d loss / d logp = -A rho / N where the unclipped term is the larger, else 0."""
    g = torch.Generator().manual_seed(8)
    b, t = 6, 7
    old = -torch.rand(b, t, generator=g, dtype=torch.float64) * 2
    logp = (old + 0.4 * torch.randn(b, t, generator=g, dtype=torch.float64)).requires_grad_()
    adv = torch.randn(b, t, generator=g, dtype=torch.float64)
    mask = random_prefix_mask(b, t, g).double()
    loss, clipfrac = ppo_policy_loss(logp, old, adv, mask, cliprange=0.2)
    expected, expected_frac = _policy_loss_by_hand(
        logp.detach().numpy(), old.numpy(), adv.numpy(), mask.numpy(), 0.2
    )
    assert loss.item() == pytest.approx(expected, abs=1e-12)
    assert clipfrac.item() == pytest.approx(expected_frac, abs=1e-12)
    assert 0 < clipfrac.item() < 1  # both branches are exercised
    loss.backward()
    rho = torch.exp(logp.detach() - old)
    clipped = -adv * rho.clamp(0.8, 1.2)
    active = (-adv * rho >= clipped).double() * mask
    torch.testing.assert_close(logp.grad, -adv * rho * active / mask.sum())


def test_old_logprobs_are_detached() -> None:
    """Pitfall (forgetting to detach the old log-probs). Reference: the policy gradient at
    rho = 1, -A / N per token by hand. A loss built on old log-probs that still carry the
    graph (here the same tensor) has rho = exp(logp - logp) whose gradient is exactly 0."""
    logp = torch.tensor([[-1.0, -0.5, -2.0]], requires_grad=True)
    adv = torch.tensor([[1.0, -2.0, 0.5]])
    mask = torch.ones(1, 3)
    loss, _ = ppo_policy_loss(logp, logp, adv, mask)  # old = new, not detached by the caller
    loss.backward()
    torch.testing.assert_close(logp.grad, -adv / 3)
    naive = logp.detach().requires_grad_()
    ratio = torch.exp(naive - naive)  # what the loss would be without the detach
    (-(adv * ratio) * mask).sum().div(3).backward()
    assert not bool(naive.grad.any())


def _value_loss_by_hand(v, old, ret, mask, c):
    total, count = 0.0, 0
    for i in range(v.shape[0]):
        for j in range(v.shape[1]):
            if mask[i, j] == 0:
                continue
            unclipped = (v[i, j] - ret[i, j]) ** 2
            if c is None:
                total += unclipped
            else:
                clipped_v = min(max(v[i, j], old[i, j] - c), old[i, j] + c)
                total += max(unclipped, (clipped_v - ret[i, j]) ** 2)
            count += 1
    return 0.5 * total / count


@pytest.mark.parametrize("cliprange_value", [0.2, None])
def test_ppo_value_loss_matches_a_float64_loop(cliprange_value: float | None) -> None:
    """Reference: the clipped (and the plain) value loss written with Python floats."""
    g = torch.Generator().manual_seed(9)
    b, t = 5, 6
    old = torch.randn(b, t, generator=g, dtype=torch.float64)
    values = old + 0.5 * torch.randn(b, t, generator=g, dtype=torch.float64)
    returns = torch.randn(b, t, generator=g, dtype=torch.float64)
    mask = random_prefix_mask(b, t, g).double()
    got = ppo_value_loss(values, old, returns, mask, cliprange_value=cliprange_value)
    expected = _value_loss_by_hand(
        values.numpy(), old.numpy(), returns.numpy(), mask.numpy(), cliprange_value
    )
    assert got.item() == pytest.approx(expected, abs=1e-12)


def test_losses_errors() -> None:
    """Reference: the documented argument rules."""
    x, mask = torch.zeros(2, 3), torch.ones(2, 3)
    with pytest.raises(ValueError, match="cliprange"):
        ppo_policy_loss(x, x, x, mask, cliprange=0.0)
    with pytest.raises(ValueError, match="shape"):
        ppo_policy_loss(x, x[:, :2], x, mask)
    with pytest.raises(ValueError, match="cliprange_value"):
        ppo_value_loss(x, x, x, mask, cliprange_value=-1.0)
    with pytest.raises(ValueError, match="run of ones"):
        ppo_value_loss(x, x, x, torch.tensor([[0, 1, 1], [1, 1, 1]]))


# --------------------------------------------------------------------------------------
# KL controllers
# --------------------------------------------------------------------------------------


def test_adaptive_kl_controller_follows_the_formula() -> None:
    """Reference: Ziegler et al.'s update in plain Python, e = clip(KL/target - 1, +-0.2),
    beta *= 1 + e n / horizon, over a sequence that hits both clips and the inside."""
    ctl = AdaptiveKLController(0.05, target=2.0, horizon=100.0)
    kls = [6.0, 2.2, 1.0, 0.1, 2.0, 3.0]
    beta, got, expected = 0.05, [], []
    for kl in kls:
        e = min(max(kl / 2.0 - 1, -0.2), 0.2)
        beta *= 1 + e * 10 / 100.0
        expected.append(beta)
        got.append(ctl.update(kl, 10))
    assert got == pytest.approx(expected, rel=1e-12)
    assert expected[0] == pytest.approx(0.05 * 1.02) and expected[2] < expected[1]
    assert ctl.value == got[-1]
    fixed = FixedKLController(0.1)
    assert [fixed.update(kl, 10) for kl in kls] == [0.1] * 6 and fixed.value == 0.1
    with pytest.raises(ValueError, match="target"):
        AdaptiveKLController(0.05, target=0.0, horizon=10.0)
    with pytest.raises(ValueError, match="n_steps"):
        ctl.update(1.0, 0)
    with pytest.raises(ValueError, match="kl_coef"):
        FixedKLController(-1.0)


# --------------------------------------------------------------------------------------
# The PPO loop
# --------------------------------------------------------------------------------------

SMALL = PPOConfig(batch_size=8, num_ppo_epochs=2, num_mini_batches=2, max_new_tokens=12)


def small_trainer(**kwargs) -> PPOTrainer:
    return PPOTrainer(
        kwargs.pop("config", SMALL),
        seed=0,
        policy=tiny_model(),
        eval_problems=sample_problems(4, split="val"),
        **kwargs,
    )


def test_old_logprobs_are_the_sampling_logprobs_of_the_completion_tokens() -> None:
    """Pitfall (off-by-one between logits and labels). Reference: the log-probs the sampler
    drew each token with (generate's own, computed one token at a time with a KV cache),
    for the same seed; the batch's log-probs come from one full forward pass instead."""
    trainer = small_trainer()
    problems = trainer.harness.sample_problems(8)
    batch = trainer.make_experience()
    sampled = generate_completions(
        tiny_model(),
        encode_prompts(problems),
        max_new_tokens=12,
        generator=torch.Generator().manual_seed(0),
    )
    assert torch.equal(sampled.sequences, batch.rollout.input_ids)
    torch.testing.assert_close(batch.rollout.old_logprobs, sampled.logprobs, atol=1e-5, rtol=0)
    shifted = completion_logprobs(
        trainer.policy, batch.rollout.input_ids[:, 1:], logits_to_keep=batch.mask.shape[1] - 1
    )
    assert not torch.allclose(shifted * batch.mask[:, 1:], sampled.logprobs[:, :-1], atol=1e-3)


def test_prompt_tokens_get_no_gradient_from_the_ppo_loss() -> None:
    """Pitfall (counting prompt tokens). Reference: torch autograd on the captured logits:
    the loss must not depend on the logits that predict prompt tokens, and the batch's
    token counts must be completion tokens only (prompt length 8 excluded)."""
    rm = RewardModel(tiny_model(seed=3), generator=torch.Generator().manual_seed(3)).eval()
    trainer = small_trainer(reward="reward_model", reward_model=rm)  # non-zero advantages
    batch = trainer.make_experience()
    assert torch.equal(batch.mask.sum(dim=1), batch.rollout.lengths.float())
    assert int(batch.mask.sum(dim=1).max()) <= 12
    captured = {}
    hook = trainer.policy.out_head.register_forward_hook(
        lambda module, inputs, output: captured.update(logits=output) or output.retain_grad()
    )
    loss, _ = trainer.loss(batch, torch.arange(8))
    hook.remove()
    loss.backward()
    grad = captured["logits"].grad[:, :-1]  # position t predicts token t + 1
    token_mask = rollout_token_mask(batch.rollout)[:, 1:]
    n = batch.mask.shape[1]
    predicts_prompt = torch.zeros_like(token_mask, dtype=torch.bool)
    predicts_prompt[:, : token_mask.shape[1] - n] = True
    assert not bool(grad[predicts_prompt].any())
    predicts_completion = torch.zeros_like(predicts_prompt)
    predicts_completion[:, -n:] = batch.mask.bool()
    assert bool((grad[predicts_completion].abs().sum(-1) > 0).all())


def test_make_experience_is_consistent() -> None:
    """Reference: the functions the batch is built from, re-applied to its own fields; at
    the start the policy is the reference, so every k1 term is 0 and the rewards are the
    scores on the last tokens."""
    trainer = small_trainer()
    batch = trainer.make_experience()
    mask = batch.mask
    assert not bool(batch.kl.any())
    rows = torch.arange(8)
    last = mask.sum(dim=1).long() - 1
    torch.testing.assert_close(batch.rewards[rows, last], batch.scores)
    advantages, returns = compute_gae(batch.rewards, batch.values, mask)
    torch.testing.assert_close(batch.returns, returns)
    torch.testing.assert_close(batch.advantages, masked_whiten(advantages, mask) * mask)
    assert not bool(batch.values.any())  # value_head_std = 0: V starts at 0


def test_train_logs_every_step_stops_at_the_time_budget_and_is_seeded() -> None:
    """Reference: the documented log and budget; two runs with one seed agree exactly."""
    logs = []
    for _ in range(2):
        trainer = small_trainer()
        log = trainer.train(3)
        logs.append(log)
        assert isinstance(log, AlignmentLog)
        assert [r["step"] for r in log.steps] == [1, 2, 3]
        assert [e["step"] for e in log.evals] == [0, 3]
        for key in (
            "accuracy",
            "kl",
            "kl_sequence",
            "length",
            "score",
            "pg_loss",
            "vf_loss",
            "clipfrac",
            "kl_coef",
            "samples",
            "seconds",
        ):
            assert key in log.steps[-1], key
        assert log.steps[-1]["samples"] == 24
        assert trainer.ref_model is not trainer.policy
        assert not any(p.requires_grad for p in trainer.ref_model.parameters())
    assert logs[0].steps[-1]["loss"] == logs[1].steps[-1]["loss"]
    trainer = small_trainer()
    log = trainer.train(50, time_budget_s=1e-9)
    assert len(log.steps) == 1 and log.evals[-1]["step"] == 1


def test_adaptive_controller_in_the_loop_reacts_to_the_measured_kl() -> None:
    """Reference: the controller's formula applied to the logged sequence KL of step 1."""
    config = SMALL.replace(adaptive_kl=True, kl_target=0.5, kl_horizon=80.0, kl_coef=0.1)
    trainer = small_trainer(config=config)
    trainer.train(2)
    first, second = trainer.log.steps
    e = min(max(first["kl_estimate_sequence"] / 0.5 - 1, -0.2), 0.2)
    assert second["kl_coef"] == pytest.approx(0.1 * (1 + e * 8 / 80.0), rel=1e-9)


def test_reward_model_reward_is_used_and_logged() -> None:
    """Reference: the reward model called directly on the rollout's real tokens."""
    rm = RewardModel(tiny_model(seed=3), generator=torch.Generator().manual_seed(3)).eval()
    trainer = small_trainer(reward="reward_model", reward_model=rm)
    batch = trainer.make_experience()
    expected = rm(batch.rollout.input_ids, attention_mask=rollout_token_mask(batch.rollout))
    torch.testing.assert_close(batch.scores, expected)
    torch.testing.assert_close(batch.rm_scores, expected)
    with pytest.raises(ValueError, match="needs a reward_model"):
        small_trainer(reward="reward_model")
    with pytest.raises(ValueError, match="reward must be one of"):
        small_trainer(reward="human")


def test_ppo_config_errors() -> None:
    """Reference: the documented argument rules."""
    with pytest.raises(ValueError, match="split evenly"):
        PPOConfig(batch_size=10, num_mini_batches=3)
    with pytest.raises(ValueError, match="kl_estimator"):
        PPOConfig(kl_estimator="full")
    with pytest.raises(ValueError, match="adaptive_kl needs"):
        PPOConfig(adaptive_kl=True, kl_coef=0.0)
    with pytest.raises(TypeError, match="batch_size"):
        PPOConfig(batch_size=8.0)
    assert PPOConfig().replace(adaptive_kl=False, kl_coef=0.0).kl_coef == 0.0
    with pytest.raises(TypeError, match="PPOConfig"):
        PPOTrainer({"lr": 1.0})


def test_rlhf_memory_for_a_7b_policy() -> None:
    """Reference: by hand, 16 bytes per trained parameter (mixed-precision Adam, ZeRO
    paper) for policy and value, 2 bytes per frozen bf16 parameter for reference and reward."""
    rows = rlhf_memory(7e9)
    assert rows == pytest.approx(
        {"policy": 112e9, "value": 112e9, "reference": 14e9, "reward": 14e9, "total": 252e9}
    )
    assert rlhf_memory(7e9, shared_value_backbone=True)["total"] == pytest.approx(140e9)
    assert rlhf_memory(7e9, frozen_dtype=torch.float32)["reference"] == pytest.approx(28e9)
    instructgpt = rlhf_memory(175e9, value_params=6e9, reward_params=6e9)
    assert instructgpt["value"] == pytest.approx(96e9)
    assert instructgpt["reward"] == pytest.approx(12e9)
    with pytest.raises(ValueError, match="frozen_dtype"):
        rlhf_memory(7e9, frozen_dtype="bfloat16")


def test_reward_model_loss_errors() -> None:
    """Reference: the documented argument rules."""
    with pytest.raises(ValueError, match="shape"):
        reward_model_loss(torch.zeros(2), torch.zeros(3))
    with pytest.raises(ValueError, match="margin"):
        reward_model_loss(torch.zeros(2), torch.zeros(2), torch.zeros(3))
    with pytest.raises(ValueError, match="equal length"):
        pair_batch(["047+285="], [])


def test_the_script_replays_the_first_stored_steps(tmp_path) -> None:
    """A short slice of experiments/ppo.py (the checker run, seed 0, 2 steps), launched as the
    reader would; the stored full run's first two steps must match it. Reference: the
    committed experiments/results/ppo.json."""
    import json
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    out = tmp_path / "ppo.json"
    subprocess.run(
        [
            sys.executable,
            str(root / "experiments" / "ppo.py"),
            "--only",
            "checker",
            "--seeds",
            "0",
            "--steps",
            "2",
            "--output",
            str(out),
        ],
        check=True,
        capture_output=True,
        timeout=600,
        cwd=root,
    )
    short = json.loads(out.read_text())["runs"]["checker"]["seeds"]["0"]
    stored = json.loads((root / "experiments" / "results" / "ppo.json").read_text())
    full = stored["runs"]["checker"]["seeds"]["0"]
    assert short["evals"][0] == {**full["evals"][0], "seconds": 0.0}
    keys = (
        "reward",
        "length",
        "kl",
        "kl_sequence",
        "score",
        "kl_coef",
        "pg_loss",
        "vf_loss",
        "clipfrac",
        "approxkl",
        "value_mean",
        "return_mean",
    )
    for mine, theirs in zip(short["steps"], full["steps"][:2], strict=True):
        for key in keys:
            assert mine[key] == pytest.approx(theirs[key], rel=1e-3, abs=1e-4), key
    assert stored["ppo_config"] == json.loads(out.read_text())["ppo_config"]


def test_train_ppo_starts_from_the_sft_checkpoint() -> None:
    """Reference: the SFT checkpoint's greedy accuracy on the default held-out problems
    (200 of the validation split), measured directly with evaluate_greedy."""
    from tutorial_code.checkpoints import load_checkpoint
    from tutorial_code.ppo import train_ppo
    from tutorial_code.rl import evaluate_greedy

    config = PPOConfig(batch_size=8, num_ppo_epochs=1, num_mini_batches=1)
    log = train_ppo(config, seed=0, steps=1, eval_every=1)
    assert [r["step"] for r in log.steps] == [1] and [e["step"] for e in log.evals] == [0, 1]
    sft = evaluate_greedy(load_checkpoint("sft"), sample_problems(200, split="val"))
    assert log.evals[0]["accuracy"] == sft.accuracy
    assert log.steps[0]["clipfrac"] == 0.0  # one update: the ratio is exactly 1
    with pytest.raises(ValueError, match="needs a reward_model"):
        train_ppo(config, seed=0, steps=1, reward="reward_model")
