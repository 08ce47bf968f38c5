"""tutorial_code.grpo: group advantages, the GRPO loss under every aggregation, and metrics.

References: the values TRL's formulas give on a hand-sized example (derived by hand in the
docstrings below), an independent float64 implementation written with Python loops over
completions and tokens, and hand-built ratios for the clip fractions.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch

from tests.paths import load_script
from tutorial_code.checkpoints import load_checkpoint
from tutorial_code.grpo import (
    GRPOConfig,
    concat_rollouts,
    group_advantages,
    grpo_loss,
    grpo_metrics,
    grpo_update,
    online_rollout,
    policy_logprobs,
    select_groups,
    token_entropy,
    train_grpo,
    truncated_completions,
    zero_std_groups,
)
from tutorial_code.rl import PolicyTrainer, completion_logprobs
from tutorial_code.task import EOS_ID, sample_problems

# The hand-sized example: B = 2, three and one completion tokens.
MASK = torch.tensor([[1, 1, 1, 0], [1, 0, 0, 0]])
ADV = torch.tensor([1.0, -0.5])
LOGP = torch.tensor([[-1.0, -0.5, -2.0, 0.0], [-0.3, 0.0, 0.0, 0.0]])
REF = torch.tensor([[-1.1, -0.5, -1.8, 0.0], [-0.2, 0.0, 0.0, 0.0]])
KW = {"beta": 0.04, "epsilon": 0.2, "epsilon_high": 0.28}


def test_reference_values_on_policy() -> None:
    """On-policy rho = 1, so each token's loss is -A + 0.04 k3 with k3 = e^r - r - 1,
    r = ref - logp: row 1 tokens -0.99981, -1, -0.99914; row 2 0.50021. Then
    grpo = mean(-0.99965, 0.50021) = -0.249722, bnpo = -2.498744 / 4 = -0.624686,
    dr_grpo = -2.498744 / (2 * 4) = -0.312343."""
    args = (LOGP, LOGP, REF, ADV, MASK)
    assert grpo_loss(*args, **KW, loss_type="grpo").item() == pytest.approx(-0.249722, abs=1e-6)
    assert grpo_loss(*args, **KW, loss_type="bnpo").item() == pytest.approx(-0.624686, abs=1e-6)
    dr = grpo_loss(*args, **KW, loss_type="dr_grpo", max_completion_length=4)
    assert dr.item() == pytest.approx(-0.312343, abs=1e-6)
    dapo = grpo_loss(*args, **KW, loss_type="dapo")
    assert dapo.item() == pytest.approx(-0.624686, abs=1e-6)  # num_items_in_batch=None: bnpo
    split = grpo_loss(*args, **KW, loss_type="dapo", num_items_in_batch=10)
    assert split.item() == pytest.approx(-2.498744 / 10, abs=1e-6)


def test_group_advantages_reference_values() -> None:
    """[1, 0, 0, 1]: mean 0.5, unbiased std sqrt(1/3), A = 0.5 / (0.57735 + 1e-4)."""
    rewards = torch.tensor([1.0, 0.0, 0.0, 1.0])
    a = group_advantages(rewards, 4)
    assert a.tolist() == pytest.approx([0.865875, -0.865875, -0.865875, 0.865875], abs=1e-6)
    assert group_advantages(rewards, 4, scale="none").tolist() == [0.5, -0.5, -0.5, 0.5]


def test_constant_and_singleton_groups_give_zero_not_nan() -> None:
    """Reference: by hand, a constant group has no signal (A = 0 exactly) and a group of one
    has no relative reward (0, not the nan of an unbiased std of one number)."""
    rewards = torch.tensor([1.0, 1.0, 1.0, 0.0, 1.0, 0.0])
    a = group_advantages(rewards, 3)
    assert a[:3].tolist() == [0.0, 0.0, 0.0] and bool(torch.isfinite(a).all())
    assert group_advantages(torch.tensor([0.7, 0.2]), 1).tolist() == [0.0, 0.0]


def test_pitfall_the_unbiased_std_of_one_reward_is_nan() -> None:
    """Reference: torch.std itself. A per-group loop with torch.std on a group of one gives
    nan, and nan times anything poisons the whole loss (plain arithmetic below);
    group_advantages returns 0 for it and grpo_loss refuses non-finite advantages."""
    with pytest.warns(UserWarning, match="degrees of freedom"):
        loop = (torch.tensor([0.7]) - 0.7) / (torch.tensor([0.7]).std() + 1e-4)
    assert math.isnan(loop.item())
    assert math.isnan((-(loop * LOGP[1, 0]) + 1.0).item())
    assert group_advantages(torch.tensor([0.7, 0.3]), 1).tolist() == [0.0, 0.0]
    with pytest.raises(ValueError, match="advantages must be finite"):
        grpo_loss(LOGP, LOGP, REF, torch.tensor([float("nan"), 1.0]), MASK, **KW)


def loop_advantages(rewards: list[float], group_size: int, scale: str, eps: float) -> list[float]:
    """The obvious loop over groups, in float64."""
    out = []
    everything = torch.tensor(rewards, dtype=torch.float64)
    for start in range(0, len(rewards), group_size):
        group = everything[start : start + group_size]
        for r in group:
            centred = float(r - group.mean())
            if scale == "none":
                out.append(centred)
            else:
                std = float((group if scale == "group" else everything).std())
                out.append(centred / (std + eps))
    return out


@pytest.mark.parametrize("scale", ["group", "batch", "none"])
@pytest.mark.parametrize("group_size", [2, 4, 8])
def test_vectorised_advantages_equal_the_per_group_loop(scale: str, group_size: int) -> None:
    """Reference: loop_advantages, one group at a time in float64 (constant group included)."""
    g = torch.Generator().manual_seed(group_size)
    rewards = torch.randint(0, 2, (6 * group_size,), generator=g).float()
    rewards[:group_size] = 1.0  # include a constant group
    got = group_advantages(rewards, group_size, scale=scale)
    expected = loop_advantages(rewards.tolist(), group_size, scale, 1e-4)
    assert got.tolist() == pytest.approx(expected, abs=1e-6)


def reference_loss(
    logp, old, ref, adv, mask, *, beta, eps_low, eps_high, loss_type, max_len, items
):
    """GRPO written out with loops, in float64."""
    rows = []
    all_tokens = []
    for i in range(logp.shape[0]):
        tokens = []
        for t in range(logp.shape[1]):
            if not mask[i, t]:
                continue
            rho = math.exp(logp[i, t] - old[i, t])
            a = adv[i]
            surrogate = min(rho * a, min(max(rho, 1 - eps_low), 1 + eps_high) * a)
            r = ref[i, t] - logp[i, t]
            tokens.append(-surrogate + beta * (math.exp(r) - r - 1))
        rows.append(sum(tokens) / len(tokens))
        all_tokens += tokens
    if loss_type == "grpo":
        return sum(rows) / len(rows)
    if loss_type == "bnpo":
        return sum(all_tokens) / len(all_tokens)
    if loss_type == "dr_grpo":
        return sum(all_tokens) / (logp.shape[0] * max_len)
    return sum(all_tokens) / (items or len(all_tokens))


@pytest.mark.parametrize("loss_type", ["grpo", "bnpo", "dr_grpo", "dapo"])
@pytest.mark.parametrize("off_policy", [False, True])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_loss_equals_a_float64_loop_on_random_inputs(
    loss_type: str, off_policy: bool, seed: int
) -> None:
    """Reference: reference_loss, the per-token formula and each aggregation written with
    Python loops over completions and tokens, on- and off-policy (clipping active)."""
    g = torch.Generator().manual_seed(seed)
    n, t = 6, 7
    logp = -torch.rand(n, t, generator=g, dtype=torch.float64) * 3
    old = logp + (torch.randn(n, t, generator=g, dtype=torch.float64) * 0.3 if off_policy else 0)
    ref = logp + torch.randn(n, t, generator=g, dtype=torch.float64) * 0.2
    adv = torch.randn(n, generator=g, dtype=torch.float64)
    lengths = torch.randint(1, t + 1, (n,), generator=g)
    mask = (torch.arange(t)[None, :] < lengths[:, None]).long()
    items = 50 if loss_type == "dapo" else None
    got = grpo_loss(
        logp,
        old,
        ref,
        adv,
        mask,
        beta=0.05,
        epsilon=0.2,
        epsilon_high=0.28,
        loss_type=loss_type,
        max_completion_length=t,
        num_items_in_batch=items,
    )
    expected = reference_loss(
        logp,
        old,
        ref,
        adv.tolist(),
        mask,
        beta=0.05,
        eps_low=0.2,
        eps_high=0.28,
        loss_type=loss_type,
        max_len=t,
        items=items,
    )
    assert got.item() == pytest.approx(float(expected), rel=1e-12, abs=1e-12)


def test_step_zero_value_is_beta_kl_but_the_gradient_is_not_zero() -> None:
    """Explanation 1 of 'why the loss starts at 0': on-policy with centred advantages the
    policy term's value is -mean(A) = 0 per group, but its gradient is not."""
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(4, 5, generator=g, requires_grad=True)
    logp = torch.log_softmax(logits, dim=-1)  # pretend each row's 5 tokens were sampled
    adv = group_advantages(torch.tensor([1.0, 0.0, 0.0, 1.0]), 4)
    mask = torch.ones(4, 5)
    loss = grpo_loss(logp, logp.detach(), logp.detach(), adv, mask, beta=0.04)
    assert loss.item() == pytest.approx(0.0, abs=1e-7)  # KL = 0 too: policy == reference
    loss.backward()
    assert logits.grad.norm().item() > 0.1


def test_token_level_aggregation_does_not_start_at_zero() -> None:
    """A zero-mean group [+a, -a, -a, +a] with lengths 3, 1, 2, 2: grpo gives 0 at step 0,
    bnpo gives -(length-weighted mean advantage) = -(3a - a - 2a + 2a) / 8 = -a / 4."""
    a = 0.8
    adv = torch.tensor([a, -a, -a, a])
    mask = torch.tensor([[1, 1, 1], [1, 0, 0], [1, 1, 0], [1, 1, 0]])
    logp = -torch.rand(4, 3, generator=torch.Generator().manual_seed(1))
    for loss_type, expected in (("grpo", 0.0), ("bnpo", -a / 4), ("dapo", -a / 4)):
        got = grpo_loss(logp, logp, logp, adv, mask, beta=0.04, loss_type=loss_type)
        assert got.item() == pytest.approx(expected, abs=1e-7), loss_type
    dr = grpo_loss(
        logp, logp, logp, adv, mask, beta=0.04, loss_type="dr_grpo", max_completion_length=3
    )
    assert dr.item() == pytest.approx(-(3 * a - a - 2 * a + 2 * a) / 12, abs=1e-7)


def test_clip_higher_gives_positive_advantages_more_room() -> None:
    """A token with rho = 1.25 and A > 0 is clipped at 1.2 but not at 1.28."""
    logp = torch.log(torch.tensor([[1.25]]))
    old = torch.zeros(1, 1)
    adv, mask = torch.tensor([1.0]), torch.ones(1, 1)
    symmetric = grpo_loss(logp, old, None, adv, mask, beta=0.0, epsilon=0.2)
    higher = grpo_loss(logp, old, None, adv, mask, beta=0.0, epsilon=0.2, epsilon_high=0.28)
    assert symmetric.item() == pytest.approx(-1.2) and higher.item() == pytest.approx(-1.25)


def test_metrics_on_constructed_ratios() -> None:
    """Ratios 0.7 (A<0: low-clipped), 1.3 (A>0: high-clipped at 0.2, not at 0.28), 1.0."""
    old = torch.zeros(3, 2)
    logp = torch.log(torch.tensor([[0.7, 1.0], [1.3, 1.0], [1.0, 1.0]]))
    adv = torch.tensor([-1.0, 1.0, 0.0])
    mask = torch.tensor([[1, 1], [1, 1], [1, 0]])
    m = grpo_metrics(logp, old, old, adv, mask, epsilon=0.2)
    assert m["clip_ratio/low_mean"] == pytest.approx(1 / 5)
    assert m["clip_ratio/high_mean"] == pytest.approx(1 / 5)
    assert m["clip_ratio/region_mean"] == pytest.approx(2 / 5)
    assert m["advantage_mean"] == pytest.approx(0.0)
    k3 = [math.exp(-x) + x - 1 for x in (math.log(0.7), 0.0, math.log(1.3), 0.0, 0.0)]
    assert m["kl"] == pytest.approx(sum(k3) / 5)
    assert grpo_metrics(logp, old, old, adv, mask, epsilon_high=0.35)["clip_ratio/high_mean"] == 0


def test_pitfall_the_kl_has_a_direction() -> None:
    """Reference: the exact divergences summed over a five-token vocabulary in float64.
    Averaged over tokens sampled from pi, k3(logp, ref) is KL(pi || pi_ref); with the two
    log-probs swapped, the same average is neither that KL nor the reverse one."""
    from tutorial_code.rl import kl_estimate

    g = torch.Generator().manual_seed(3)
    logp = torch.log_softmax(torch.randn(5, generator=g, dtype=torch.float64), 0)
    ref = torch.log_softmax(torch.randn(5, generator=g, dtype=torch.float64), 0)
    p = logp.exp()
    forward = (p * (logp - ref)).sum().item()  # KL(pi || pi_ref)
    reverse = (ref.exp() * (ref - logp)).sum().item()  # KL(pi_ref || pi)
    right = (p * kl_estimate(logp, ref, "k3")).sum().item()
    swapped = (p * kl_estimate(ref, logp, "k3")).sum().item()
    assert right == pytest.approx(forward, rel=1e-12)
    assert abs(swapped - forward) > 0.05 and abs(swapped - reverse) > 0.05


def test_pitfall_old_and_reference_log_probs_are_different_things() -> None:
    """Passing the reference log-probs as old_logprobs turns the clipped ratio into
    pi / pi_ref: the loss and its clipping change although the policy did not move."""
    right = grpo_loss(LOGP, LOGP, REF, ADV, MASK, beta=0.04)
    mixed = grpo_loss(LOGP, REF, REF, ADV, MASK, beta=0.04)
    assert right.item() != pytest.approx(mixed.item(), abs=1e-4)


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"loss_type": "sum"}, ValueError, "loss_type must be one of"),
        ({"loss_type": "dr_grpo"}, ValueError, "needs max_completion_length"),
        ({"beta": -0.1}, ValueError, "beta must be >= 0.0"),
        ({"epsilon": 0.0}, ValueError, "epsilon must be in"),
        ({"num_items_in_batch": 0, "loss_type": "dapo"}, ValueError, "num_items_in_batch must be"),
    ],
)
def test_bad_loss_arguments(kwargs: dict, error: type, message: str) -> None:
    with pytest.raises(error, match=message):
        grpo_loss(LOGP, LOGP, REF, ADV, MASK, **kwargs)


def test_bad_shapes_and_missing_reference() -> None:
    with pytest.raises(ValueError, match=r"advantages must have shape \(2\)"):
        grpo_loss(LOGP, LOGP, REF, torch.zeros(3), MASK)
    with pytest.raises(ValueError, match="old_logprobs has shape"):
        grpo_loss(LOGP, LOGP[:, :3], REF, ADV, MASK)
    with pytest.raises(ValueError, match="ref_logprobs is required when beta > 0"):
        grpo_loss(LOGP, LOGP, None, ADV, MASK, beta=0.04)
    with pytest.raises(ValueError, match="not a positive multiple of group_size=4"):
        group_advantages(torch.zeros(6), 4)
    with pytest.raises(ValueError, match="scale must be one of"):
        group_advantages(torch.zeros(4), 2, scale="std")
    with pytest.raises(ValueError, match="rewards must have a floating-point dtype"):
        group_advantages(torch.zeros(4, dtype=torch.long), 2)


# --------------------------------------------------------------------------------------
# Edge cases of the formulas
# --------------------------------------------------------------------------------------


def test_constant_groups_are_exactly_zero_for_any_eps_and_any_float() -> None:
    """Reference: the definition (a constant group has no relative reward). With eps=0 the
    formula alone gives 0/0 = nan; with 0.1 (not a binary fraction) the float32 mean need not
    equal the rewards, which would leave a tiny non-zero "signal"."""
    rewards = torch.tensor([0.1, 0.1, 0.1, 0.3, 0.7, 0.7])
    for scale in ("group", "batch", "none"):
        a = group_advantages(rewards, 3, scale=scale, eps=0.0)
        assert a[:3].tolist() == [0.0, 0.0, 0.0] and bool(torch.isfinite(a).all()), scale
    assert zero_std_groups(rewards, 3).tolist() == [True, False]
    assert zero_std_groups(rewards, 1).tolist() == [True] * 6
    everything_equal = group_advantages(torch.ones(4), 2, scale="batch", eps=0.0)
    assert everything_equal.tolist() == [0.0] * 4
    with pytest.raises(ValueError, match="rewards must be finite"):
        group_advantages(torch.tensor([1.0, float("nan")]), 2)


def test_padding_with_infinite_logprobs_cannot_reach_the_loss_or_its_gradient() -> None:
    """Reference: the same loss on the unpadded rows. Log-probs at padded positions can be
    anything (a model's log-prob of a pad token may be -inf in low precision); masking by
    multiplication would turn exp(inf) * 0 into nan."""
    logp = LOGP.clone().requires_grad_(True)
    padded_ref = REF.masked_fill(MASK == 0, -float("inf"))
    padded_old = LOGP.masked_fill(MASK == 0, -float("inf"))
    for loss_type in ("grpo", "bnpo", "dapo"):
        clean = grpo_loss(LOGP, LOGP, REF, ADV, MASK, **KW, loss_type=loss_type)
        got = grpo_loss(logp, padded_old, padded_ref, ADV, MASK, **KW, loss_type=loss_type)
        assert got.item() == pytest.approx(clean.item(), abs=1e-7), loss_type
        (grad,) = torch.autograd.grad(got, logp)
        assert bool(torch.isfinite(grad).all()) and bool((grad[MASK == 0] == 0).all())
    m = grpo_metrics(logp, padded_old, padded_ref, ADV, MASK, epsilon=0.2)
    assert math.isfinite(m["kl"])


def test_a_row_without_tokens_adds_zero_but_counts_under_grpo() -> None:
    """Reference: TRL's per-sequence mean with the length clamped to 1. Overlong filtering
    empties rows; the mean over completions still divides by every row."""
    mask = MASK.clone()
    mask[1] = 0
    got = grpo_loss(LOGP, LOGP, REF, ADV, mask, **KW, loss_type="grpo")
    row0 = grpo_loss(LOGP[:1], LOGP[:1], REF[:1], ADV[:1], MASK[:1], **KW, loss_type="grpo")
    assert got.item() == pytest.approx(row0.item() / 2, abs=1e-7)
    assert grpo_loss(LOGP, LOGP, REF, ADV, torch.zeros_like(MASK), **KW).item() == 0.0


def test_loss_argument_consistency_errors() -> None:
    """Reference: the definitions. dr_grpo's constant must cover the longest row; dapo's
    num_items_in_batch counts a batch that contains this one, so it cannot be smaller."""
    with pytest.raises(
        ValueError, match="max_completion_length=2 is shorter than the longest completion"
    ):
        grpo_loss(LOGP, LOGP, REF, ADV, MASK, loss_type="dr_grpo", max_completion_length=2)
    with pytest.raises(ValueError, match="num_items_in_batch=3 is smaller than this batch's own 4"):
        grpo_loss(LOGP, LOGP, REF, ADV, MASK, loss_type="dapo", num_items_in_batch=3)
    with pytest.raises(ValueError, match="completion_mask must hold only 0 and 1"):
        grpo_loss(LOGP, LOGP, REF, ADV, MASK * 2)


def test_token_entropy_matches_torch_distributions() -> None:
    """Reference: torch.distributions.Categorical(logits=...).entropy()."""
    logits = torch.randn(3, 4, 16, generator=torch.Generator().manual_seed(0))
    expected = torch.distributions.Categorical(logits=logits).entropy()
    torch.testing.assert_close(token_entropy(logits), expected)
    uniform = token_entropy(torch.zeros(1, 16))
    assert uniform.item() == pytest.approx(math.log(16), abs=1e-6)


# --------------------------------------------------------------------------------------
# The trainer
# --------------------------------------------------------------------------------------

SMALL = GRPOConfig(num_generations=4, prompts_per_step=4)


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """Models this small run several times slower on two threads of a busy machine."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def sft_batch_trainer() -> tuple[PolicyTrainer, object]:
    trainer = PolicyTrainer(load_checkpoint("sft"), seed=3, eval_problems=[])
    return trainer, online_rollout(trainer, SMALL)


def test_policy_logprobs_equal_completion_logprobs(sft_batch_trainer) -> None:
    """Reference: tutorial_code.rl.completion_logprobs (the package's one alignment of logits
    and tokens) and the rollout's own old log-probs (the same policy, no update yet)."""
    trainer, batch = sft_batch_trainer
    logp, entropy = policy_logprobs(trainer.policy, batch)
    expected = completion_logprobs(
        trainer.policy,
        batch.input_ids,
        attention_mask=batch.attention_mask,
        logits_to_keep=batch.logits_to_keep,
    )
    mask = batch.completion_mask.bool()
    torch.testing.assert_close(logp[mask], expected[mask])
    torch.testing.assert_close(logp[mask], batch.old_logprobs[mask], atol=1e-5, rtol=0)
    assert logp.requires_grad and not entropy.requires_grad
    assert bool((entropy >= 0).all())


def test_select_and_concat_rollouts_round_trip(sft_batch_trainer) -> None:
    """Reference: the original batch. Splitting it into groups and joining them back
    (with right padding to a wider batch) keeps every row's tokens and log-probs."""
    trainer, batch = sft_batch_trainer
    keep = torch.tensor([True, False, True, False])
    picked = select_groups(batch, keep)
    assert picked.problems == batch.problems[:4] + batch.problems[8:12]
    rest = select_groups(batch, ~keep)
    joined = concat_rollouts([select_groups(batch, torch.tensor([1, 0, 0, 0]).bool()), rest])
    assert (
        joined.rewards.tolist() == batch.rewards[[0, 1, 2, 3, 4, 5, 6, 7, 12, 13, 14, 15]].tolist()
    )
    narrow = select_groups(batch, torch.tensor([True, True, True, True]))
    wide = concat_rollouts([narrow, narrow])
    assert wide.input_ids.shape[0] == 32
    torch.testing.assert_close(wide.old_logprobs[16:], batch.old_logprobs)
    logp, _ = policy_logprobs(trainer.policy, wide, slice(0, 16))
    mask = batch.completion_mask.bool()
    torch.testing.assert_close(
        logp[:, : mask.shape[1]][mask], batch.old_logprobs[mask], atol=1e-5, rtol=0
    )
    with pytest.raises(ValueError, match="keep must have shape"):
        select_groups(batch, torch.tensor([True]))
    with pytest.raises(ValueError, match="batches is empty"):
        concat_rollouts([])


def test_truncated_completions_are_those_without_eos(sft_batch_trainer) -> None:
    """Reference: the completion texts (a finished one ends with EOS, which decoding drops)
    and a rollout cut at 3 tokens, where only answers of at most 2 characters can finish."""
    trainer, batch = sft_batch_trainer
    ids = batch.input_ids[:, -batch.logits_to_keep :]
    has_eos = [EOS_ID in row[: int(n)].tolist() for row, n in zip(ids, batch.lengths)]
    assert truncated_completions(batch).tolist() == [not e for e in has_eos]
    short = trainer.rollout(batch.problems[:4], num_generations=1, max_new_tokens=3)
    expected = [len(c) > 2 or not c for c in short.completions]
    assert truncated_completions(short).tolist() == expected


def _gradient_after_update(config: GRPOConfig, batch, advantages) -> torch.Tensor:
    """One update with SGD(lr=1) from the SFT weights: the parameter change is -gradient."""
    policy = load_checkpoint("sft")
    before = torch.cat([p.detach().flatten().clone() for p in policy.parameters()])
    optimizer = torch.optim.SGD(policy.parameters(), lr=1.0)
    trainer = PolicyTrainer(policy, optimizer=optimizer, max_grad_norm=None, eval_problems=[])
    grpo_update(trainer, batch, advantages, config)
    return before - torch.cat([p.detach().flatten() for p in policy.parameters()])


@pytest.mark.parametrize("loss_type", ["grpo", "dapo", "bnpo"])
def test_micro_batches_accumulate_the_whole_batch_gradient(sft_batch_trainer, loss_type) -> None:
    """Reference: the same update without micro-batches. "grpo" (equal micro-batches
    divided by their number) and "dapo" (every micro-batch divided by the whole batch's
    token count) reproduce it; "bnpo" normalises each micro-batch by its own tokens, so it
    does not (TRL documents the same)."""
    _, batch = sft_batch_trainer
    advantages = torch.randn(16, generator=torch.Generator().manual_seed(0))
    whole = GRPOConfig(num_generations=4, prompts_per_step=4, loss_type=loss_type)
    split = GRPOConfig(
        num_generations=4, prompts_per_step=4, loss_type=loss_type, gradient_accumulation_steps=4
    )
    g_whole = _gradient_after_update(whole, batch, advantages)
    g_split = _gradient_after_update(split, batch, advantages)
    assert g_whole.norm() > 1e-3
    if loss_type == "bnpo":
        assert (g_whole - g_split).norm() > 1e-3 * g_whole.norm()
    else:
        torch.testing.assert_close(g_split, g_whole, atol=1e-6, rtol=1e-4)


def test_train_grpo_logs_every_step_and_evaluates(sft_batch_trainer) -> None:
    """Reference: the log's own contract. At step 1 the policy is the reference (KL 0) and
    with centred advantages and one on-policy update the "grpo" loss is exactly 0, while the
    gradient is not; the run is reproducible from its seed."""
    problems = sample_problems(8, split="val")
    log = train_grpo(SMALL, seed=2, steps=3, eval_every=2, eval_problems=problems)
    assert [r["step"] for r in log.steps] == [1, 2, 3]
    assert [r["step"] for r in log.evals] == [0, 2, 3]
    first = log.steps[0]
    assert first["kl"] == 0.0 and first["kl_k3"] == 0.0
    assert abs(first["loss"]) < 1e-7 and abs(first["policy_loss"]) < 1e-7
    assert first["frac_reward_zero_std"] < 1.0 and first["grad_norm"] > 0.01
    for key in (
        "time", "samples", "reward", "accuracy", "length", "entropy", "frac_reward_zero_std",
        "truncated_fraction", "clip_ratio/region_mean", "advantage_mean", "loss_tokens",
        "length_right", "length_wrong",
    ):  # fmt: skip
        assert all(key in r for r in log.steps), key
    assert all(r["samples"] == 16 for r in log.steps)
    for r in log.steps:  # the two lengths split the mean length by the checker's verdict
        parts = [(r["accuracy"], r["length_right"]), (1 - r["accuracy"], r["length_wrong"])]
        assert sum(w * n for w, n in parts if w > 0) == pytest.approx(r["length"])
    again = train_grpo(SMALL, seed=2, steps=3, eval_every=2, eval_problems=problems)
    assert [r["loss"] for r in again.steps] == [r["loss"] for r in log.steps]


def test_hooks_replace_one_stage_each() -> None:
    """Reference: what each hook returns. A constant reward makes every group zero-signal
    (policy loss 0, only the KL term moves the policy); an empty loss mask leaves no token;
    a rollout_fn's stats land in the log."""
    problems = sample_problems(4, split="val")
    seen = []

    def rollout_fn(trainer, config):
        batch = online_rollout(trainer, config)
        seen.append(batch.rewards.shape[0])
        return batch, {"samples": 99.0, "generation_rounds": 2.0}

    log = train_grpo(
        SMALL,
        seed=0,
        steps=2,
        eval_problems=problems,
        rollout_fn=rollout_fn,
        reward_fn=lambda batch: torch.ones(batch.rewards.shape[0]),
    )
    assert seen == [16, 16]
    assert all(r["frac_reward_zero_std"] == 1.0 and r["policy_loss"] == 0.0 for r in log.steps)
    assert all(r["reward"] == 1.0 and r["samples"] == 99.0 for r in log.steps)
    assert log.steps[1]["generation_rounds"] == 2.0
    empty = train_grpo(
        SMALL,
        seed=0,
        steps=1,
        eval_problems=problems,
        loss_mask_fn=lambda batch: torch.zeros_like(batch.completion_mask),
    )
    assert empty.steps[0]["loss_tokens"] == 0.0 and empty.steps[0]["grad_norm"] == 0.0
    with pytest.raises(ValueError, match="reward_fn's rewards must have shape"):
        train_grpo(
            SMALL, seed=0, steps=1, eval_problems=problems, reward_fn=lambda b: torch.ones(3)
        )


def test_time_budget_stops_early_and_start_can_be_a_model() -> None:
    """Reference: the wall clock. A budget smaller than one step stops after that step; a
    model passed as start is trained in place."""
    policy = load_checkpoint("sft")
    before = policy.out_head.weight.detach().clone()
    log = train_grpo(
        SMALL,
        seed=2,
        steps=50,
        time_budget_s=1e-3,
        start=policy,
        eval_problems=sample_problems(4, split="val"),
    )
    assert len(log.steps) == 1 and log.evals[-1]["step"] == 1
    assert log.steps[0]["frac_reward_zero_std"] < 1.0  # some signal, so the weights move
    assert not torch.equal(before, policy.out_head.weight)


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"num_generations": 1}, ValueError, "num_generations must be an int >= 2"),
        ({"loss_type": "sum"}, ValueError, "loss_type must be one of"),
        ({"scale_rewards": "std"}, ValueError, "scale_rewards must be one of"),
        ({"beta": -1.0}, ValueError, "beta must be >= 0.0"),
        ({"lr": 0}, ValueError, "lr must be > 0.0"),
        ({"num_iterations": 0}, ValueError, "num_iterations must be an int >= 1"),
        (
            {"gradient_accumulation_steps": 200},
            ValueError,
            "gradient_accumulation_steps must be an int in \\[1, 128\\]",
        ),
        ({"epsilon_high": "0.28"}, TypeError, "epsilon_high must be None or a number"),
    ],
)
def test_bad_config(kwargs: dict, error: type, message: str) -> None:
    with pytest.raises(error, match=message):
        GRPOConfig(**kwargs)


def test_config_is_frozen_and_serialisable() -> None:
    config = GRPOConfig(beta=0.0)
    with pytest.raises(AttributeError):
        config.beta = 0.1  # type: ignore[misc]
    assert config.to_dict()["beta"] == 0.0 and GRPOConfig(**config.to_dict()) == config
    with pytest.raises(TypeError, match="config must be a"):
        train_grpo(config.to_dict(), seed=0, steps=1)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="start must be one of"):
        train_grpo(config, seed=0, steps=1, start="instruct")


# --------------------------------------------------------------------------------------
# The stored experiment
# --------------------------------------------------------------------------------------

ROOT = Path(__file__).resolve().parents[2]


def _experiment_module():
    return load_script("experiments/grpo.py")


def test_the_first_steps_of_the_stored_baseline_run_reproduce() -> None:
    """Reference: experiments/results/grpo.json, written by experiments/grpo.py. The first
    three steps of the baseline's seed 0, re-run, log the same batches (sampled from the SFT
    model and its first updates) and the same losses within a tolerance for other CPUs'
    kernels (a different last bit can, rarely, flip one sampled token)."""
    stored = json.loads((ROOT / "experiments" / "results" / "grpo.json").read_text())
    experiment = _experiment_module()
    config = experiment.RUNS["grpo"]
    assert stored["configs"]["grpo"] == config.to_dict()
    run = next(r for r in stored["runs"] if r["name"] == "grpo" and r["seed"] == 0)["steps"]
    log = train_grpo(config, seed=0, steps=3, eval_problems=sample_problems(4, split="val"))
    for i, row in enumerate(log.steps):
        assert row["reward"] == pytest.approx(run["reward"][i], abs=0.02), i
        assert row["length"] == pytest.approx(run["length"][i], abs=0.5), i
        assert row["trace_fraction"] == pytest.approx(run["trace_fraction"][i], abs=0.03), i
        assert row["loss"] == pytest.approx(run["loss"][i], abs=2e-4), i
        assert row["kl"] == pytest.approx(run["kl"][i], rel=0.2, abs=1e-4), i
        assert row["grad_norm"] == pytest.approx(run["grad_norm"][i], rel=0.05), i
    assert run["loss"][0] == pytest.approx(0.0, abs=1e-6) and run["kl"][0] == 0.0


def test_stored_experiment_supports_the_chapter() -> None:
    """Reference: the stored JSON itself. Every run has three seeds; GRPO's held-out greedy
    accuracy beats the SFT model's by more than the spread of its seeds; under "grpo" with
    one update per batch the policy part of the loss is zero at every step."""
    stored = json.loads((ROOT / "experiments" / "results" / "grpo.json").read_text())
    seeds = {}
    for r in stored["runs"]:
        seeds.setdefault(r["name"], []).append(r["seed"])
    assert all(sorted(s) == [0, 1, 2] for s in seeds.values()), seeds
    final = [r["final"]["greedy_accuracy"] for r in stored["runs"] if r["name"] == "grpo"]
    spread = max(final) - min(final)
    assert min(final) - stored["sft"]["greedy_accuracy"] > spread
    for r in stored["runs"]:
        if r["name"] in ("grpo", "beta0", "G2", "G4"):
            assert max(abs(x) for x in r["steps"]["policy_loss"]) < 1e-6, r["name"]


def test_pitfall_k3_on_samples_of_an_older_policy_needs_the_ratio() -> None:
    """Reference: exact expectations over a five-token vocabulary and kl_from_logits (which
    computes in float32). k3 is
    unbiased for KL(pi || pi_ref) only under samples of pi; under samples of an older policy
    its expectation is something else, and weighting by rho = pi / pi_old (TRL's
    use_bias_correction_kl) restores it."""
    from tutorial_code.rl import kl_estimate, kl_from_logits

    g = torch.Generator().manual_seed(0)
    old, new, ref = (torch.randn(5, generator=g, dtype=torch.float64) for _ in range(3))
    logp_old, logp_new, logp_ref = (torch.log_softmax(x, 0) for x in (old, new, ref))
    k3 = kl_estimate(logp_new, logp_ref, "k3")  # one value per token of the vocabulary
    truth = kl_from_logits(new, ref)
    on_policy = (logp_new.exp() * k3).sum()
    stale = (logp_old.exp() * k3).sum()
    corrected = (logp_old.exp() * torch.exp(logp_new - logp_old) * k3).sum()
    assert corrected.item() == pytest.approx(on_policy.item(), rel=1e-12)
    assert on_policy.item() == pytest.approx(truth.item(), rel=1e-6)  # float32 inside
    assert abs(stale.item() - truth.item()) > 0.05


def test_a_filtered_batch_smaller_than_the_micro_batch_count_still_updates(
    sft_batch_trainer,
) -> None:
    """Reference: the whole-batch update. A sampler that keeps few groups (dynamic sampling)
    can return fewer rows than gradient_accumulation_steps; empty micro-batches are skipped."""
    _, batch = sft_batch_trainer
    small = select_groups(batch, torch.tensor([True, False, False, False]))  # 4 rows
    advantages = torch.tensor([1.0, -1.0, 0.5, -0.5])
    whole = GRPOConfig(num_generations=4, prompts_per_step=4, loss_type="dapo")
    split = GRPOConfig(
        num_generations=4, prompts_per_step=4, loss_type="dapo", gradient_accumulation_steps=8
    )
    g_whole = _gradient_after_update(whole, small, advantages)
    torch.testing.assert_close(_gradient_after_update(split, small, advantages), g_whole)
