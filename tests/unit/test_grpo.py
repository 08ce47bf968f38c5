"""tutorial_code.grpo: group advantages, the GRPO loss under every aggregation, and metrics.

References: the values TRL's formulas give on a hand-sized example (derived by hand in the
docstrings below), an independent float64 implementation written with Python loops over
completions and tokens, and hand-built ratios for the clip fractions.
"""

from __future__ import annotations

import math

import pytest
import torch

from tutorial_code.grpo import group_advantages, grpo_loss, grpo_metrics

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
    rewards = torch.tensor([1.0, 1.0, 1.0, 0.0, 1.0, 0.0])
    a = group_advantages(rewards, 3)
    assert a[:3].tolist() == [0.0, 0.0, 0.0] and bool(torch.isfinite(a).all())
    assert group_advantages(torch.tensor([0.7, 0.2]), 1).tolist() == [0.0, 0.0]


def test_pitfall_the_unbiased_std_of_one_reward_is_nan() -> None:
    """A per-group loop with torch.std on a group of one gives nan, which then poisons the
    whole loss; group_advantages returns 0 for it."""
    with pytest.warns(UserWarning, match="degrees of freedom"):
        assert math.isnan(torch.tensor([0.7]).std().item())
    loss = grpo_loss(LOGP, LOGP, REF, torch.tensor([float("nan"), 1.0]), MASK, **KW)
    assert math.isnan(loss.item())
    assert torch.isfinite(group_advantages(torch.tensor([0.7, 0.3]), 1)).all()


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
    g = torch.Generator().manual_seed(group_size)
    rewards = torch.randint(0, 2, (6 * group_size,), generator=g).float()
    rewards[:group_size] = 1.0  # include a constant group
    got = group_advantages(rewards, group_size, scale=scale)
    expected = loop_advantages(rewards.tolist(), group_size, scale, 1e-4)
    assert got.tolist() == pytest.approx(expected, abs=1e-6)


def reference_loss(logp, old, ref, adv, mask, *, beta, eps_low, eps_high, loss_type, max_len, items):
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
def test_loss_equals_a_float64_loop_on_random_inputs(loss_type: str, off_policy: bool, seed: int) -> None:
    g = torch.Generator().manual_seed(seed)
    n, t = 6, 7
    logp = -torch.rand(n, t, generator=g, dtype=torch.float64) * 3
    old = logp + (torch.randn(n, t, generator=g, dtype=torch.float64) * 0.3 if off_policy else 0)
    ref = logp + torch.randn(n, t, generator=g, dtype=torch.float64) * 0.2
    adv = torch.randn(n, generator=g, dtype=torch.float64)
    lengths = torch.randint(1, t + 1, (n,), generator=g)
    mask = (torch.arange(t)[None, :] < lengths[:, None]).long()
    items = 50 if loss_type == "dapo" else None
    got = grpo_loss(logp, old, ref, adv, mask, beta=0.05, epsilon=0.2, epsilon_high=0.28,
                    loss_type=loss_type, max_completion_length=t, num_items_in_batch=items)
    expected = reference_loss(logp, old, ref, adv.tolist(), mask, beta=0.05,
                              eps_low=0.2, eps_high=0.28, loss_type=loss_type, max_len=t,
                              items=items)
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
    dr = grpo_loss(logp, logp, logp, adv, mask, beta=0.04, loss_type="dr_grpo", max_completion_length=3)
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
    """k3 estimates KL(pi || pi_ref) from tokens sampled from pi; swapping the arguments
    estimates the other divergence, which differs."""
    from tutorial_code.rl import kl_estimate

    logp = torch.tensor([-0.2, -2.5, -1.0])
    ref = torch.tensor([-1.0, -0.4, -1.1])
    assert not torch.allclose(kl_estimate(logp, ref, "k3"), kl_estimate(ref, logp, "k3"))


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
