"""tutorial_code.dapo: the overlong penalty, group filtering, the dynamic sampler, the DAPO
reward and loss mask, the configuration and the trainer.

References: values derived by hand in the docstrings; independent implementations written
here (DAPO eq. 13 in exact rational arithmetic, verl's formula for the same penalty, a per-group
loop with Python's ``statistics.pstdev`` for the filter); the derivative of the clipped
objective worked out by hand; ``tutorial_code.grpo.train_grpo`` itself for the wrapper; and
the stored results of ``experiments/dapo_ablation.py``.
"""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
from fractions import Fraction
from pathlib import Path

import pytest
import torch

from tutorial_code.checkpoints import load_checkpoint
from tutorial_code.dapo import (
    PAPER_EPSILON_HIGH,
    PAPER_MAX_RESPONSE_LENGTH,
    PAPER_OVERLONG_BUFFER_LEN,
    DAPOConfig,
    _round_problems,
    dapo_rewards,
    dapo_rollout,
    dynamic_sampling_rollout,
    filter_groups,
    overlong_filter_mask,
    overlong_penalty,
    probability_bounds,
    train_dapo,
)
from tutorial_code.grpo import (
    GRPOConfig,
    group_advantages,
    grpo_loss,
    grpo_metrics,
    grpo_update,
    online_rollout,
    train_grpo,
    truncated_completions,
)
from tutorial_code.rl import PolicyTrainer
from tutorial_code.task import sample_problems

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


# --------------------------------------------------------------------------------------
# Overlong reward shaping
# --------------------------------------------------------------------------------------


def eq13(length: int, max_length: int, cache_length: int) -> Fraction:
    """DAPO eq. 13 written out case by case, in exact rational arithmetic."""
    if length <= max_length - cache_length:
        return Fraction(0)
    if length <= max_length:
        return Fraction((max_length - cache_length) - length, cache_length)
    return Fraction(-1)


def test_overlong_penalty_at_every_band_edge() -> None:
    """By hand, max 100 and cache 20: free up to 80, then -(L - 80) / 20 (81 -> -0.05,
    90 -> -0.5, 99 -> -0.95), -1 at the limit and beyond."""
    lengths = torch.tensor([0, 79, 80, 81, 90, 99, 100, 101, 10**6])
    expected = [0.0, 0.0, 0.0, -0.05, -0.5, -0.95, -1.0, -1.0, -1.0]
    got = overlong_penalty(lengths, max_length=100, cache_length=20)
    torch.testing.assert_close(got, torch.tensor(expected))
    assert got[4].item() == -0.5  # the example, exactly


def test_overlong_penalty_on_our_task() -> None:
    """By hand, limit 28 and cache 4 (the book's setting): traces of 22 and 24 tokens are
    free, 25 costs a quarter, 27 three quarters, a completion cut at 28 the whole -1."""
    got = overlong_penalty(torch.tensor([5, 22, 24, 25, 27, 28]), max_length=28, cache_length=4)
    assert got.tolist() == [0.0, 0.0, 0.0, -0.25, -0.75, -1.0]


@pytest.mark.parametrize(("max_length", "cache_length"), [(100, 20), (28, 4), (7, 7), (5, 1)])
def test_overlong_penalty_equals_eq13_and_verl(max_length: int, cache_length: int) -> None:
    """References: eq. 13 in exact fractions for every length from 0 to 2 x the limit, and
    verl's ``min(-(L - (L_max - L_cache)) / L_cache, 0)`` up to the limit (verl's generation
    never goes past it); also on float lengths and with a penalty factor."""
    lengths = torch.arange(0, 2 * max_length + 1)
    got = overlong_penalty(lengths, max_length=max_length, cache_length=cache_length)
    exact = torch.tensor([float(eq13(n, max_length, cache_length)) for n in lengths.tolist()])
    torch.testing.assert_close(got, exact, atol=1e-7, rtol=0)
    inside = lengths <= max_length
    verl = torch.clamp(-(lengths - (max_length - cache_length)) / cache_length, max=0.0)
    torch.testing.assert_close(got[inside], verl[inside].float(), atol=1e-7, rtol=0)
    floats = overlong_penalty(
        lengths.double(), max_length=max_length, cache_length=cache_length, penalty_factor=0.5
    )
    torch.testing.assert_close(floats, 0.5 * exact, atol=1e-7, rtol=0)


@pytest.mark.parametrize(
    ("lengths", "kwargs", "error", "message"),
    [
        ([1, 2], {"max_length": 10, "cache_length": 4}, TypeError, "lengths must be a torch"),
        (torch.tensor([-1]), {"max_length": 10, "cache_length": 4}, ValueError, "non-negative"),
        (torch.tensor([True]), {"max_length": 10, "cache_length": 4}, ValueError, "non-negative"),
        (torch.tensor([3]), {"max_length": 10, "cache_length": 0}, ValueError, "cache_length"),
        (torch.tensor([3]), {"max_length": 10, "cache_length": 11}, ValueError, "cache_length"),
        (torch.tensor([3]), {"max_length": 0, "cache_length": 1}, ValueError, "max_length"),
        (
            torch.tensor([3]),
            {"max_length": 10, "cache_length": 4, "penalty_factor": -1.0},
            ValueError,
            "penalty_factor",
        ),
    ],
)
def test_overlong_penalty_bad_arguments(lengths, kwargs, error, message) -> None:
    with pytest.raises(error, match=message):
        overlong_penalty(lengths, **kwargs)


# --------------------------------------------------------------------------------------
# Group filtering
# --------------------------------------------------------------------------------------


def test_filter_groups_all_right_all_wrong_mixed() -> None:
    """By hand: all right and all wrong carry no signal and are dropped; any mix is kept."""
    rewards = torch.tensor([1, 1, 1, 1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1, 1, 1]).float()
    assert filter_groups(rewards, 4).tolist() == [False, False, True, True]
    assert filter_groups(torch.tensor([1.0, 0.0, 1.0]), 1).tolist() == [False] * 3


@pytest.mark.parametrize("group_size", [2, 3, 8])
def test_filter_groups_equals_a_per_group_loop(group_size: int) -> None:
    """Reference: a loop over groups with Python's ``statistics.pstdev`` (verl uses
    ``np.std``, the population standard deviation), on 0/1 rewards and on shaped floats."""
    gen = torch.Generator().manual_seed(group_size)
    p_right = torch.tensor([0.0, 0.1, 0.5, 0.9, 1.0]).repeat(12).repeat_interleave(group_size)
    right = torch.bernoulli(p_right, generator=gen)
    levels = torch.randint(1, 3, right.shape, generator=gen) * 0.25
    for rewards in (right, right * levels - 1.0):
        groups = rewards.view(-1, group_size).tolist()
        expected = [statistics.pstdev(g) > 0 for g in groups]
        assert filter_groups(rewards, group_size).tolist() == expected
        assert any(expected) and not all(expected)


def test_filter_groups_bad_shapes() -> None:
    with pytest.raises(ValueError, match="not a positive multiple of group_size=4"):
        filter_groups(torch.ones(6), 4)
    with pytest.raises(ValueError, match="rewards must have 1 dimension"):
        filter_groups(torch.ones(2, 4), 4)


def test_pitfall_filtering_on_shaped_rewards_keeps_groups_without_a_right_answer() -> None:
    """By hand: four wrong answers of lengths 5, 5, 25 and 27 (limit 28, cache 4) get
    -1, -1, -1.25 and -1.75. On these shaped rewards the group is not constant, so a filter
    would keep it although no answer is right; DAPO filters on accuracy (verl's
    ``metric: acc``), which drops it."""
    correct = torch.zeros(4)
    penalty = overlong_penalty(torch.tensor([5, 5, 25, 27]), max_length=28, cache_length=4)
    shaped = 2 * correct - 1 + penalty
    assert shaped.tolist() == [-1.0, -1.0, -1.25, -1.75]
    assert filter_groups(shaped, 4).tolist() == [True]
    assert filter_groups(correct, 4).tolist() == [False]


# --------------------------------------------------------------------------------------
# Clip-Higher
# --------------------------------------------------------------------------------------


def test_probability_bounds_and_the_clip_higher_example() -> None:
    """By hand (DAPO section 3.1): with epsilon 0.2 a token at 0.01 can rise to 0.01 x 1.2 =
    0.012 and one at 0.9 to 1.08; with epsilon_high 0.28 to 0.0128 and 1.152. Both can fall
    to 0.8 x p."""
    p = torch.tensor([0.01, 0.9], dtype=torch.float64)
    low, high = probability_bounds(p, epsilon=0.2)
    torch.testing.assert_close(low, torch.tensor([0.008, 0.72], dtype=torch.float64))
    torch.testing.assert_close(high, torch.tensor([0.012, 1.08], dtype=torch.float64))
    _, wider = probability_bounds(p, epsilon=0.2, epsilon_high=PAPER_EPSILON_HIGH)
    torch.testing.assert_close(wider, torch.tensor([0.0128, 1.152], dtype=torch.float64))
    with pytest.raises(ValueError, match="old_probs must hold probabilities"):
        probability_bounds(torch.tensor([1.5]))
    with pytest.raises(ValueError, match="epsilon must be"):
        probability_bounds(p, epsilon=0.0)


def test_pitfall_the_common_clip_higher_example_has_a_typo() -> None:
    """By hand: "0.01 x 0.12" would be 0.0012, a *fall* to an eighth of the probability;
    the upper bound is 0.01 x 1.2 = 0.012."""
    _, high = probability_bounds(torch.tensor([0.01], dtype=torch.float64), epsilon=0.2)
    assert high.item() == pytest.approx(0.012, abs=1e-15)
    assert high.item() != pytest.approx(0.01 * 0.12)


RATIOS = torch.tensor([[0.7, 0.9, 1.1, 1.25, 1.3]], dtype=torch.float64)


def _clip_case(advantage: float, epsilon_high: float):
    """One completion of five tokens with the given ratios and advantage."""
    old = torch.full_like(RATIOS, -1.0)
    logp = (old + RATIOS.log()).requires_grad_(True)
    adv = torch.tensor([advantage], dtype=torch.float64)
    mask = torch.ones_like(RATIOS)
    kwargs = {"epsilon": 0.2, "epsilon_high": epsilon_high}
    metrics = grpo_metrics(logp.detach(), old, None, adv, mask, **kwargs)
    loss = grpo_loss(logp, old, None, adv, mask, beta=0.0, loss_type="dapo", **kwargs)
    loss.backward()
    return metrics, logp.grad[0]


def test_clip_fractions_on_constructed_ratios() -> None:
    """By hand, ratios 0.7, 0.9, 1.1, 1.25, 1.3: with A > 0 the upper clip 1.2 catches 1.25
    and 1.3 (2 of 5 tokens), 1.28 only 1.3 (1 of 5); with A < 0 the lower clip 0.8 catches
    0.7 (1 of 5) whatever epsilon_high is."""
    for epsilon_high, high in ((0.2, 2 / 5), (0.28, 1 / 5)):
        metrics, _ = _clip_case(1.0, epsilon_high)
        assert metrics["clip_ratio/high_mean"] == pytest.approx(high)
        assert metrics["clip_ratio/low_mean"] == 0.0
        metrics, _ = _clip_case(-1.0, epsilon_high)
        assert metrics["clip_ratio/low_mean"] == pytest.approx(1 / 5)
        assert metrics["clip_ratio/high_mean"] == 0.0


def test_clip_higher_gives_the_gradient_back_to_tokens_between_the_clips() -> None:
    """By hand: the token loss is -rho A / 5 while unclipped, so d loss / d logp = -rho A / 5;
    clipped, it is constant and the gradient 0. With A = 1 the token at rho 1.25 has no
    gradient under epsilon_high 0.2 and -0.25 under 0.28; the one at 1.3 has none in both.
    With A = -1 the token at 0.7 is clipped in both."""
    _, grad = _clip_case(1.0, 0.2)
    torch.testing.assert_close(grad, torch.tensor([-0.14, -0.18, -0.22, 0.0, 0.0]).double())
    _, grad = _clip_case(1.0, 0.28)
    torch.testing.assert_close(grad, torch.tensor([-0.14, -0.18, -0.22, -0.25, 0.0]).double())
    _, grad = _clip_case(-1.0, 0.28)
    torch.testing.assert_close(grad, torch.tensor([0.0, 0.18, 0.22, 0.25, 0.26]).double())


def test_pitfall_clip_higher_does_nothing_on_policy() -> None:
    """By hand: with one update per batch the ratio is exactly 1, inside every clip range, so
    the loss and gradient are the same for any epsilon_high and no token is clipped."""
    gen = torch.Generator().manual_seed(0)
    logp = torch.randn(4, 6, generator=gen, dtype=torch.float64)
    adv, mask = torch.tensor([1.0, -1.0, 0.5, -0.5]).double(), torch.ones(4, 6)
    grads = []
    for epsilon_high in (0.2, 0.28, 10.0):
        x = logp.clone().requires_grad_(True)
        grpo_loss(x, x.detach(), None, adv, mask, beta=0.0, epsilon_high=epsilon_high).backward()
        grads.append(x.grad)
        metrics = grpo_metrics(x.detach(), x.detach(), None, adv, mask, epsilon_high=epsilon_high)
        assert metrics["clip_ratio/region_mean"] == 0.0
    torch.testing.assert_close(grads[0], grads[1], rtol=0, atol=0)
    torch.testing.assert_close(grads[0], grads[2], rtol=0, atol=0)


# --------------------------------------------------------------------------------------
# The configuration
# --------------------------------------------------------------------------------------

SMALL = DAPOConfig(num_generations=4, prompts_per_step=4, num_iterations=1)


def test_config_defaults_paper_values_and_grpo() -> None:
    """Reference: the paper (section 4.1, eq. 13) and verl's recipe, through the constants."""
    ours, paper = DAPOConfig(), DAPOConfig.paper()
    assert (ours.epsilon, ours.epsilon_high, ours.beta, ours.loss_type) == (0.2, 0.28, 0.0, "dapo")
    assert ours.dynamic_sampling and not ours.overlong_filtering
    assert (ours.max_completion_length, ours.overlong_buffer_len) == (28, 4)
    assert (paper.max_completion_length, paper.overlong_buffer_len) == (20_480, 4_096)
    assert PAPER_MAX_RESPONSE_LENGTH - PAPER_OVERLONG_BUFFER_LEN == 16_384
    assert (paper.num_generations, paper.lr, paper.beta) == (16, 1e-6, 0.0)
    assert (paper.epsilon, paper.epsilon_high) == (0.2, 0.28)
    grpo = DAPOConfig.grpo()
    assert (grpo.epsilon_high, grpo.loss_type, grpo.beta) == (None, "grpo", 0.04)
    assert not grpo.dynamic_sampling and grpo.overlong_buffer_len is None
    assert DAPOConfig.grpo(beta=0.0).beta == 0.0 and isinstance(ours, GRPOConfig)
    assert DAPOConfig(**ours.to_dict()) == ours


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        (
            {"overlong_buffer_len": 29},
            ValueError,
            r"overlong_buffer_len must be an int in \[1, 28\]",
        ),
        (
            {"overlong_buffer_len": 0},
            ValueError,
            r"overlong_buffer_len must be an int in \[1, 28\]",
        ),
        ({"max_num_gen_batches": 0}, ValueError, "max_num_gen_batches must be an int"),
        ({"on_max_num_gen_batches": "skip"}, ValueError, "on_max_num_gen_batches must be one"),
        ({"dynamic_sampling": 1}, TypeError, "dynamic_sampling must be a bool"),
        ({"overlong_filtering": "yes"}, TypeError, "overlong_filtering must be a bool"),
        ({"gen_batch_size": 0}, ValueError, "gen_batch_size must be an int >= 1"),
        ({"overlong_penalty_factor": -0.5}, ValueError, "overlong_penalty_factor must be"),
        ({"num_generations": 1}, ValueError, "num_generations must be an int >= 2"),
    ],
)
def test_bad_config(kwargs: dict, error: type, message: str) -> None:
    with pytest.raises(error, match=message):
        DAPOConfig(**kwargs)


# --------------------------------------------------------------------------------------
# The dynamic sampler, the reward and the loss mask, on real rollouts of the SFT policy
# --------------------------------------------------------------------------------------


def _trainer(seed: int = 3) -> PolicyTrainer:
    return PolicyTrainer(load_checkpoint("sft"), seed=seed, eval_problems=[])


def test_sampler_fills_the_batch_with_informative_groups_only() -> None:
    """Reference: filter_groups on the returned batch, and the sampler's own bookkeeping.
    Over several steps and seeds: exactly prompts_per_step groups, none constant, every
    sampled completion counted; the first round draws GRPO's problems."""
    config = DAPOConfig(num_generations=4, prompts_per_step=4, max_num_gen_batches=20)
    for seed in (0, 1):
        trainer = _trainer(seed)
        for step in range(3):
            trainer.step = step
            batch, stats = dynamic_sampling_rollout(trainer, config)
            assert batch.rewards.shape[0] == 16 and batch.num_generations == 4
            assert filter_groups(batch.rewards, 4).all()
            rounds = stats["num_gen_batches"]
            assert stats["samples"] == 16 * rounds and stats["sampled_groups"] == 4 * rounds
            assert 0 <= stats["sampled_frac_zero_std"] < 1
            drawn = {p for r in range(int(rounds)) for p in _round_problems(trainer, 4, r)}
            assert set(batch.problems) <= drawn
    trainer = _trainer(5)
    assert _round_problems(trainer, 4, 0) == trainer.sample_problems(4)


def _rigged(trainer: PolicyTrainer, informative_per_round: int) -> PolicyTrainer:
    """Make every round have exactly ``informative_per_round`` groups with a mixed reward;
    all other groups are all wrong."""
    rollout = trainer.rollout

    def rigged(problems, **kwargs):
        batch = rollout(problems, **kwargs)
        rewards = torch.zeros_like(batch.rewards)
        g = batch.num_generations
        for group in range(informative_per_round):
            rewards[group * g] = 1.0
        batch.rewards = rewards
        return batch

    trainer.rollout = rigged  # type: ignore[method-assign]
    return trainer


def test_sampler_raises_or_warns_at_the_cap_and_trims_extra_groups() -> None:
    """Reference: counting by hand. One informative group per round, four needed, two rounds
    allowed: "raise" raises naming what it found, "warn" trains on the two groups; with no
    informative group at all even "warn" raises. Three informative groups per round and two
    rounds give six, cut to the four needed (in sampling order)."""
    config = DAPOConfig(num_generations=2, prompts_per_step=4, max_num_gen_batches=2)
    with pytest.raises(RuntimeError, match="kept 2 of the 4 groups it needs after 2 generation"):
        dynamic_sampling_rollout(_rigged(_trainer(), 1), config)
    warn = DAPOConfig(
        num_generations=2, prompts_per_step=4, max_num_gen_batches=2, on_max_num_gen_batches="warn"
    )
    with pytest.warns(RuntimeWarning, match="training on the smaller batch"):
        batch, stats = dynamic_sampling_rollout(_rigged(_trainer(), 1), warn)
    assert batch.rewards.tolist() == [1.0, 0.0, 1.0, 0.0] and stats["num_gen_batches"] == 2
    with pytest.raises(RuntimeError, match="kept 0 of the 4 .* no group to train on"):
        dynamic_sampling_rollout(_rigged(_trainer(), 0), warn)
    batch, stats = dynamic_sampling_rollout(_rigged(_trainer(), 3), config)
    assert batch.rewards.shape[0] == 8 and stats["num_gen_batches"] == 2
    assert stats["sampled_frac_zero_std"] == pytest.approx(2 / 8)


def test_without_dynamic_sampling_the_batch_is_grpos() -> None:
    """Reference: tutorial_code.grpo.online_rollout from the same trainer state and seed."""
    config = DAPOConfig.grpo(num_generations=4, prompts_per_step=4)
    batch, stats = dapo_rollout(_trainer(), config)
    expected = online_rollout(_trainer(), config)
    assert batch.completions == expected.completions and batch.problems == expected.problems
    assert stats["num_gen_batches"] == 1 and stats["samples"] == 16


def test_dapo_rewards_and_the_overlong_filter_on_a_real_rollout() -> None:
    """References: the completions' lengths and eq. 13 by hand (+1 / -1 for right / wrong,
    minus (L - 24) / 4 past 24 tokens), and group advantages, which do not change when 0/1
    becomes -1/+1 (up to the eps of the standard deviation). Truncated rows are the ones
    without EOS, and the filter zeros exactly those rows of the mask."""
    config = DAPOConfig(num_generations=8, prompts_per_step=8, max_completion_length=26)
    off = DAPOConfig.grpo(num_generations=8, prompts_per_step=8, max_completion_length=26)
    batch, _ = dapo_rollout(_trainer(7), off)
    rewards = dapo_rewards(batch, config)
    lengths = batch.lengths.tolist()
    expected = [
        (1.0 if r == 1 else -1.0) - max(0, n - 22) / 4 for r, n in zip(batch.rewards, lengths)
    ]
    torch.testing.assert_close(rewards, torch.tensor(expected))
    plain = dapo_rewards(batch, DAPOConfig(overlong_buffer_len=None))
    torch.testing.assert_close(
        group_advantages(plain, 8), group_advantages(batch.rewards, 8), atol=0, rtol=3e-4
    )
    truncated = truncated_completions(batch)
    assert bool(truncated.any()) and not bool(truncated.all())
    mask = overlong_filter_mask(batch.completion_mask, truncated)
    assert mask[truncated].sum() == 0
    assert torch.equal(mask[~truncated], batch.completion_mask[~truncated])


def test_overlong_filter_mask_by_hand_and_bad_arguments() -> None:
    mask = torch.tensor([[1, 1, 0], [1, 1, 1], [1, 0, 0]])
    got = overlong_filter_mask(mask, torch.tensor([False, True, False]))
    assert got.tolist() == [[1, 1, 0], [0, 0, 0], [1, 0, 0]]
    with pytest.raises(ValueError, match="truncated must have shape"):
        overlong_filter_mask(mask, torch.tensor([True]))
    with pytest.raises(ValueError, match="truncated must have dtype torch.bool"):
        overlong_filter_mask(mask, torch.tensor([0, 1, 0]))


def _update_gradient(config: DAPOConfig, batch, advantages, loss_mask) -> torch.Tensor:
    """One update with SGD(lr=1) from the SFT weights: the parameter change is -gradient."""
    policy = load_checkpoint("sft")
    before = torch.cat([p.detach().flatten().clone() for p in policy.parameters()])
    optimizer = torch.optim.SGD(policy.parameters(), lr=1.0)
    trainer = PolicyTrainer(policy, optimizer=optimizer, max_grad_norm=None, eval_problems=[])
    grpo_update(trainer, batch, advantages, config, loss_mask=loss_mask)
    return before - torch.cat([p.detach().flatten() for p in policy.parameters()])


def test_token_level_loss_over_micro_batches_with_filtered_rows() -> None:
    """Reference: the same update on the whole batch. With truncated rows masked out, the
    micro-batches of loss_type "dapo" divide by the tokens left in the whole batch and add
    up to the whole-batch token mean; "bnpo" divides each micro-batch by its own tokens and
    does not (the pitfall of a token mean per micro-batch)."""
    config = DAPOConfig.grpo(num_generations=4, prompts_per_step=4, max_completion_length=24)
    batch, _ = dapo_rollout(_trainer(3), config)
    loss_mask = overlong_filter_mask(batch.completion_mask, truncated_completions(batch))
    assert 0 < int(loss_mask.sum()) < int(batch.completion_mask.sum())
    # the four micro-batches keep different token counts, none zero: a per-micro-batch mean
    # would then weigh their tokens differently, so the comparison below can fail
    per_micro_batch = {int(loss_mask[rows].sum()) for rows in torch.arange(16).tensor_split(4)}
    assert len(per_micro_batch) > 1 and 0 not in per_micro_batch
    advantages = torch.randn(16, generator=torch.Generator().manual_seed(1))
    grads = {}
    for loss_type in ("dapo", "bnpo"):
        for steps in (1, 4):
            cfg = DAPOConfig.grpo(
                **{
                    **config.to_dict(),
                    "loss_type": loss_type,
                    "gradient_accumulation_steps": steps,
                    "num_iterations": 1,
                }
            )
            grads[loss_type, steps] = _update_gradient(cfg, batch, advantages, loss_mask)
    whole = grads["dapo", 1]
    assert whole.norm() > 1e-3
    torch.testing.assert_close(grads["dapo", 4], whole, atol=1e-6, rtol=1e-4)
    torch.testing.assert_close(grads["bnpo", 1], whole, atol=1e-6, rtol=1e-4)
    assert (grads["bnpo", 4] - whole).norm() > 1e-3 * whole.norm()


# --------------------------------------------------------------------------------------
# The trainer
# --------------------------------------------------------------------------------------


def test_train_dapo_with_every_change_off_is_train_grpo() -> None:
    """Reference: tutorial_code.grpo.train_grpo with the same settings: the wrapper adds no
    step of its own, so the two logs agree number for number."""
    problems = sample_problems(8, split="val")
    off = DAPOConfig.grpo(num_generations=4, prompts_per_step=4)
    fields = {k: v for k, v in off.to_dict().items() if k in GRPOConfig.__dataclass_fields__}
    dapo = train_dapo(off, seed=1, steps=2, eval_problems=problems)
    grpo = train_grpo(GRPOConfig(**fields), seed=1, steps=2, eval_problems=problems)
    for key in ("loss", "accuracy", "reward", "entropy", "length", "grad_norm"):
        assert [r[key] for r in dapo.steps] == [r[key] for r in grpo.steps], key
    assert dapo.evals == grpo.evals
    assert [r["sampled_frac_zero_std"] for r in dapo.steps] == [
        r["frac_reward_zero_std"] for r in grpo.steps
    ]


def test_train_dapo_full_logs_what_each_change_does() -> None:
    """Reference: the log's contract. Under dynamic sampling the trained batch has no
    constant group and every generated sample is counted; the shaped reward differs from
    the accuracy when some completion is in the soft band; no reference is needed."""
    problems = sample_problems(8, split="val")
    config = DAPOConfig(num_generations=4, prompts_per_step=4, max_completion_length=26)
    log = train_dapo(config, seed=4, steps=2, eval_problems=problems)
    for row in log.steps:
        assert row["frac_reward_zero_std"] == 0.0
        assert row["samples"] == 16 * row["num_gen_batches"] >= 16
        assert row["loss_tokens"] > 0 and "entropy" in row and "kl" in row
        assert row["reward"] != row["accuracy"]
    with pytest.raises(TypeError, match="config must be a tutorial_code.dapo.DAPOConfig"):
        train_dapo(GRPOConfig(), seed=0, steps=1)  # type: ignore[arg-type]


# --------------------------------------------------------------------------------------
# The stored experiment
# --------------------------------------------------------------------------------------

RESULTS = ROOT / "experiments" / "results" / "dapo_ablation.json"


def test_ablation_script_reproduces_the_stored_start(tmp_path: Path) -> None:
    """Reference: experiments/results/dapo_ablation.json. Re-running the first two steps of
    the GRPO and DAPO arms for seed 0 gives the stored validation accuracy before training and
    the stored first steps (within a tolerance for CPUs whose kernels round differently; on
    the machine that wrote the file they agree exactly); the JSON's arms are what the script
    builds today."""
    stored = json.loads(RESULTS.read_text(encoding="utf-8"))
    out = tmp_path / "slice.json"
    subprocess.run(
        [
            sys.executable, str(ROOT / "experiments" / "dapo_ablation.py"),
            "--arms", "grpo", "dapo", "--seeds", "0", "--steps", "2", "--test", "0",
            "--sampled", "0", "--output", str(out),
        ],
        check=True, cwd=ROOT, capture_output=True,
    )  # fmt: skip
    fresh = json.loads(out.read_text(encoding="utf-8"))
    for arm in ("grpo", "dapo"):
        assert fresh["arms"][arm] == stored["arms"][arm]
        new, old = fresh["runs"][arm]["0"], stored["runs"][arm]["0"]
        assert new["evals"][0]["accuracy"] == pytest.approx(old["evals"][0]["accuracy"], abs=0.02)
        for a, b in zip(new["steps"], old["steps"][:2]):
            for key in ("accuracy", "length", "samples", "num_gen_batches"):
                assert a[key] == pytest.approx(b[key], abs=0.05), (arm, key)
            for key in ("entropy", "loss", "kl"):
                assert a[key] == pytest.approx(b[key], abs=0.02), (arm, key)
