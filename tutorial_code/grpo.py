"""GRPO: group-relative advantages and the clipped policy loss with a k3 KL term (chapter 9).

Group Relative Policy Optimization (Shao et al., 2024, "DeepSeekMath", section 4.1) drops
PPO's value model: for each prompt it samples a *group* of ``G`` completions, scores them, and
uses each completion's reward relative to its group as the advantage of every one of its
tokens. The loss is PPO's clipped surrogate plus a KL penalty towards a reference policy,
estimated per token with Schulman's ``k3`` (:func:`tutorial_code.rl.kl_estimate`).

* :func:`group_advantages`: ``A_i = (R_i - mean(R_group)) / (std(R_group) + eps)``, with
  the variants TRL calls ``scale_rewards`` (``"group"``, ``"batch"``, ``"none"``);
* :func:`grpo_loss`: the per-token objective and its four aggregations, under TRL's names
  (``"grpo"``, ``"bnpo"``, ``"dr_grpo"``, ``"dapo"``); chapter 10 (DAPO) reuses it with
  ``epsilon_high`` (clip-higher) and ``loss_type="dapo"``;
* :func:`grpo_metrics`: what TRL logs (``kl``, ``clip_ratio/low_mean``,
  ``clip_ratio/high_mean``, ``clip_ratio/region_mean``) plus the mean advantage.

Shapes: ``N = groups x group_size`` completions, ``T`` completion tokens per row (padded);
every per-token tensor is ``(N, T)`` and ``completion_mask`` marks the real tokens.
"""

from __future__ import annotations

import torch

from tutorial_code.checks import (
    check_choice,
    check_float,
    check_int,
    check_same_shape,
    check_tensor,
)
from tutorial_code.rl import kl_estimate

__all__ = ["ADVANTAGE_SCALES", "LOSS_TYPES", "group_advantages", "grpo_loss", "grpo_metrics"]

#: How :func:`group_advantages` divides the centred rewards (TRL's ``scale_rewards``).
ADVANTAGE_SCALES = ("group", "batch", "none")
#: How :func:`grpo_loss` aggregates per-token losses (TRL's ``loss_type``).
LOSS_TYPES = ("grpo", "bnpo", "dr_grpo", "dapo")


def group_advantages(
    rewards: torch.Tensor, group_size: int, *, scale: str = "group", eps: float = 1e-4
) -> torch.Tensor:
    """Group-relative advantages ``(N,)`` from rewards ``(N,)`` ordered group by group.

    ``A_i = (R_i - mean_g) / (std_g + eps)`` where ``mean_g`` and ``std_g`` are the mean and
    the *unbiased* standard deviation of the ``group_size`` rewards of completion ``i``'s group
    (DeepSeekMath, section 4.1.2, outcome supervision; TRL's ``GRPOTrainer``).

    * ``scale="group"``: as above (the paper, TRL's default);
    * ``scale="batch"``: divide by the standard deviation of all ``N`` rewards instead;
    * ``scale="none"``: only centre, ``A_i = R_i - mean_g`` (Liu et al., 2025, "Understanding
      R1-Zero-Like Training", Dr. GRPO: dividing by ``std_g`` up-weights groups that are
      nearly all right or all wrong).

    A group whose rewards are all equal carries no signal and gets exactly 0. A group of one
    completion also gets 0 here: its "relative" reward is undefined and the unbiased standard
    deviation of one number is ``nan``. Libraries differ: TRL refuses ``num_generations < 2``;
    verl treats a lone completion as mean 0 and standard deviation 1, so its advantage is its
    raw reward.

    Computed without a Python loop over groups: ``rewards.view(groups, group_size)``.
    """
    check_tensor("rewards", rewards, dim=1, dtype="float")
    check_int("group_size", group_size, low=1)
    check_choice("scale", scale, ADVANTAGE_SCALES)
    eps = check_float("eps", eps, low=0.0)
    n = rewards.shape[0]
    if n == 0 or n % group_size:
        raise ValueError(
            f"rewards has {n} entries, which is not a positive multiple of group_size={group_size}"
            " (rewards must be ordered group by group)"
        )
    if group_size == 1:
        return torch.zeros_like(rewards)
    grouped = rewards.view(n // group_size, group_size)  # (groups, G)
    centred = grouped - grouped.mean(dim=1, keepdim=True)  # R_i - mean_g
    if scale == "none":
        return centred.flatten()
    if scale == "group":
        std = grouped.std(dim=1, keepdim=True)  # unbiased, as torch.std and TRL
    else:
        std = rewards.std()
    return (centred / (std + eps)).flatten()


def _check_loss_inputs(
    logprobs: torch.Tensor,
    old_logprobs: torch.Tensor,
    ref_logprobs: torch.Tensor | None,
    advantages: torch.Tensor,
    completion_mask: torch.Tensor,
    epsilon: float,
    epsilon_high: float | None,
) -> tuple[float, float]:
    check_tensor("logprobs", logprobs, dim=2, dtype="float")
    tensors = {
        "logprobs": logprobs,
        "old_logprobs": old_logprobs,
        "completion_mask": completion_mask,
    }
    if ref_logprobs is not None:
        tensors["ref_logprobs"] = ref_logprobs
    check_same_shape(**tensors)
    check_tensor("advantages", advantages, dim=1, shape=(logprobs.shape[0],))
    low = check_float("epsilon", epsilon, low=0.0, high=1.0, low_open=True, high_open=True)
    high = (
        low
        if epsilon_high is None
        else check_float("epsilon_high", epsilon_high, low=0.0, low_open=True)
    )
    return low, high


def grpo_loss(
    logprobs: torch.Tensor,
    old_logprobs: torch.Tensor,
    ref_logprobs: torch.Tensor | None,
    advantages: torch.Tensor,
    completion_mask: torch.Tensor,
    *,
    beta: float = 0.04,
    epsilon: float = 0.2,
    epsilon_high: float | None = None,
    loss_type: str = "grpo",
    max_completion_length: int | None = None,
    num_items_in_batch: int | None = None,
) -> torch.Tensor:
    """The GRPO loss, a scalar to minimise.

    Per token (DeepSeekMath, eq. 3, with the KL term of eq. 4), with the probability ratio
    ``rho = exp(logprobs - old_logprobs)`` against the policy that sampled the completions::

        l_t = -min(rho_t A, clip(rho_t, 1 - epsilon, 1 + epsilon_high) A) + beta * k3_t
        k3_t = exp(ref_t - logp_t) - (ref_t - logp_t) - 1

    where ``A`` is the completion's advantage (the same for all its tokens) and
    ``epsilon_high=None`` means ``epsilon`` (DAPO's clip-higher sets it larger, e.g. 0.28).
    The KL term is not importance-weighted (as TRL up to 0.23; TRL 1.16's default
    ``use_bias_correction_kl=True`` multiplies it by ``rho``, which changes nothing on-policy
    and little just off it). ``ref_logprobs`` may be ``None`` when ``beta == 0``.

    Aggregation over the ``(N, T)`` per-token losses ``l`` with mask ``m`` (``loss_type``):

    * ``"grpo"``: ``mean_i( sum_t l m / sum_t m )``, each completion's mean, then the mean
      over completions (the paper's ``1/G sum_i 1/|o_i| sum_t``): a long completion's tokens
      weigh less;
    * ``"bnpo"``: ``sum(l m) / sum(m)``, every token of the batch weighs the same;
    * ``"dr_grpo"``: ``sum(l m) / (N * max_completion_length)`` (Dr. GRPO; a constant
      denominator, so no length bias; ``max_completion_length`` is required);
    * ``"dapo"``: ``sum(l m) / num_items_in_batch`` where ``num_items_in_batch`` counts the
      completion tokens of the *whole generation batch* when it is split into micro-batches
      (DAPO's token-level loss, Yu et al., 2025, eq. 12); ``None`` means this batch's own
      count, which equals ``"bnpo"``.

    Args:
        logprobs: ``(N, T)`` log-probs of the completion tokens under the policy being trained
            (with gradient).
        old_logprobs: ``(N, T)`` log-probs under the policy that sampled them (no gradient;
            equal to ``logprobs.detach()`` for a single on-policy update).
        ref_logprobs: ``(N, T)`` log-probs under the frozen reference model, or ``None``.
        advantages: ``(N,)`` from :func:`group_advantages`.
        completion_mask: ``(N, T)``, 1 for completion tokens, 0 for padding.
    """
    low, high = _check_loss_inputs(
        logprobs, old_logprobs, ref_logprobs, advantages, completion_mask, epsilon, epsilon_high
    )
    beta = check_float("beta", beta, low=0.0)
    check_choice("loss_type", loss_type, LOSS_TYPES)
    if beta > 0 and ref_logprobs is None:
        raise ValueError("ref_logprobs is required when beta > 0 (pass beta=0.0 to drop the KL)")
    mask = completion_mask.to(logprobs.dtype)
    if bool((mask.sum(dim=1) == 0).any()) and loss_type == "grpo":
        raise ValueError("completion_mask has a row with no completion token")

    ratio = torch.exp(logprobs - old_logprobs.detach())  # rho_t
    a = advantages.detach().to(logprobs.dtype)[:, None]  # (N, 1): one advantage per completion
    unclipped = ratio * a
    clipped = torch.clamp(ratio, 1.0 - low, 1.0 + high) * a
    per_token = -torch.minimum(unclipped, clipped)  # -min(rho A, clip(rho) A)
    if beta > 0:
        per_token = per_token + beta * kl_estimate(logprobs, ref_logprobs.detach(), "k3")

    if loss_type == "grpo":
        per_sequence = (per_token * mask).sum(dim=1) / mask.sum(dim=1)
        return per_sequence.mean()
    total = (per_token * mask).sum()
    if loss_type == "bnpo":
        return total / mask.sum().clamp(min=1.0)
    if loss_type == "dr_grpo":
        if max_completion_length is None:
            raise ValueError("loss_type='dr_grpo' needs max_completion_length")
        check_int("max_completion_length", max_completion_length, low=1)
        return total / (logprobs.shape[0] * max_completion_length)
    if num_items_in_batch is None:  # "dapo" on a batch that is not split: bnpo
        return total / mask.sum().clamp(min=1.0)
    check_int("num_items_in_batch", num_items_in_batch, low=1)
    return total / num_items_in_batch


@torch.no_grad()
def grpo_metrics(
    logprobs: torch.Tensor,
    old_logprobs: torch.Tensor,
    ref_logprobs: torch.Tensor | None,
    advantages: torch.Tensor,
    completion_mask: torch.Tensor,
    *,
    epsilon: float = 0.2,
    epsilon_high: float | None = None,
) -> dict[str, float]:
    """What a GRPO trainer logs per step, under TRL's names (token means over the mask).

    * ``kl``: the mean ``k3`` estimate of ``KL(pi || pi_ref)`` (absent without
      ``ref_logprobs``);
    * ``clip_ratio/low_mean``: tokens with ``A < 0`` and ``rho < 1 - epsilon`` (the clip
      stops pushing their probability further down);
    * ``clip_ratio/high_mean``: tokens with ``A > 0`` and ``rho > 1 + epsilon_high`` (the clip
      stops pushing them up: what DAPO's clip-higher widens);
    * ``clip_ratio/region_mean``: either of the two;
    * ``advantage_mean``: the mean advantage over completions (0 for centred groups).
    """
    low, high = _check_loss_inputs(
        logprobs, old_logprobs, ref_logprobs, advantages, completion_mask, epsilon, epsilon_high
    )
    mask = completion_mask.to(logprobs.dtype)
    count = mask.sum().clamp(min=1.0)
    ratio = torch.exp(logprobs - old_logprobs)
    a = advantages.to(logprobs.dtype)[:, None]
    is_low = (ratio < 1.0 - low) & (a < 0)
    is_high = (ratio > 1.0 + high) & (a > 0)
    metrics = {
        "clip_ratio/low_mean": float((is_low * mask).sum() / count),
        "clip_ratio/high_mean": float((is_high * mask).sum() / count),
        "clip_ratio/region_mean": float(((is_low | is_high) * mask).sum() / count),
        "advantage_mean": float(advantages.mean()),
    }
    if ref_logprobs is not None:
        metrics["kl"] = float((kl_estimate(logprobs, ref_logprobs, "k3") * mask).sum() / count)
    return metrics
