"""GRPO: group-relative advantages, the clipped policy loss with a k3 KL term, and its trainer.

Group Relative Policy Optimization (Shao et al., 2024, "DeepSeekMath", section 4.1) drops
PPO's value model: for each prompt it samples a *group* of ``G`` completions, scores them, and
uses each completion's reward relative to its group as the advantage of every one of its
tokens. The loss is PPO's clipped surrogate plus a KL penalty towards a reference policy,
estimated per token with Schulman's ``k3`` (:func:`tutorial_code.rl.kl_estimate`).

The formulas:

* :func:`group_advantages`: ``A_i = (R_i - mean(R_group)) / (std(R_group) + eps)``, with
  the variants TRL calls ``scale_rewards`` (``"group"``, ``"batch"``, ``"none"``);
  :func:`zero_std_groups` marks the groups whose rewards are all equal (no signal);
* :func:`grpo_loss`: the per-token objective and its four aggregations, under TRL's names
  (``"grpo"``, ``"bnpo"``, ``"dr_grpo"``, ``"dapo"``); chapter 10 (DAPO) reuses it with
  ``epsilon_high`` (clip-higher) and ``loss_type="dapo"``;
* :func:`grpo_metrics`: what TRL logs (``kl``, ``clip_ratio/low_mean``,
  ``clip_ratio/high_mean``, ``clip_ratio/region_mean``) plus the mean advantage;
  :func:`token_entropy`: the policy's entropy at each completion position.

The trainer, on the shared harness :class:`tutorial_code.rl.PolicyTrainer`:

* :class:`GRPOConfig`: every knob of a run, named as in TRL's ``GRPOConfig`` where TRL has
  the knob;
* :func:`train_grpo`: sample, score, compute advantages, update, log, evaluate; with three
  hooks through which a variant (DAPO, chapter 10) changes one stage without copying the
  loop: ``rollout_fn`` (which completions form the batch: dynamic sampling), ``reward_fn``
  (what each completion earns: overlong reward shaping) and ``loss_mask_fn`` (which tokens
  enter the loss: overlong filtering); token-level loss over micro-batches is a config field
  (``loss_type="dapo"`` with ``gradient_accumulation_steps``);
* :func:`grpo_update` (one batch's ``num_iterations`` optimizer steps), :func:`online_rollout`
  (the default batch), :func:`policy_logprobs`, and :func:`select_groups` /
  :func:`concat_rollouts` for samplers that keep some groups and draw more.

Shapes: ``N = groups x group_size`` completions, ``T`` completion tokens per row (padded);
every per-token tensor is ``(N, T)`` and ``completion_mask`` marks the real tokens.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F

from tutorial_code.checks import (
    check_choice,
    check_float,
    check_int,
    check_module,
    check_same_shape,
    check_tensor,
)
from tutorial_code.model import GPTModel
from tutorial_code.rl import (
    MAX_NEW_TOKENS,
    AlignmentLog,
    PolicyTrainer,
    Rollout,
    kl_estimate,
    token_logprobs,
)
from tutorial_code.task import EOS_ID, PAD_ID, Problem

__all__ = [
    "ADVANTAGE_SCALES",
    "LOSS_TYPES",
    "GRPOConfig",
    "LossMaskFn",
    "RewardFn",
    "RolloutFn",
    "concat_rollouts",
    "group_advantages",
    "grpo_loss",
    "grpo_metrics",
    "grpo_update",
    "online_rollout",
    "policy_logprobs",
    "select_groups",
    "token_entropy",
    "train_grpo",
    "truncated_completions",
    "zero_std_groups",
]

#: How :func:`group_advantages` divides the centred rewards (TRL's ``scale_rewards``).
ADVANTAGE_SCALES = ("group", "batch", "none")
#: How :func:`grpo_loss` aggregates per-token losses (TRL's ``loss_type``).
LOSS_TYPES = ("grpo", "bnpo", "dr_grpo", "dapo")


# --------------------------------------------------------------------------------------
# Advantages
# --------------------------------------------------------------------------------------


def _check_rewards(rewards: torch.Tensor, group_size: int) -> int:
    check_tensor("rewards", rewards, dim=1, dtype="float")
    check_int("group_size", group_size, low=1)
    n = rewards.shape[0]
    if n == 0 or n % group_size:
        raise ValueError(
            f"rewards has {n} entries, which is not a positive multiple of group_size={group_size}"
            " (rewards must be ordered group by group)"
        )
    if not bool(torch.isfinite(rewards).all()):
        raise ValueError("rewards must be finite (score an unscorable completion explicitly)")
    return n // group_size


def zero_std_groups(rewards: torch.Tensor, group_size: int) -> torch.Tensor:
    """``(groups,)`` bool: which groups have all their rewards equal (standard deviation 0).

    Such a group carries no learning signal: every advantage in it is 0, so it adds nothing
    to the policy gradient (only to the KL term). TRL logs the fraction of these groups as
    ``frac_reward_zero_std``; DAPO's dynamic sampling (Yu et al., 2025, section 3.2) drops
    them. A group of one completion is always one. ``rewards`` ``(N,)`` are ordered group by
    group. Compared exactly (max == min), so no rounding can turn a constant group into a
    tiny non-zero signal.
    """
    groups = _check_rewards(rewards, group_size)
    grouped = rewards.view(groups, group_size)
    return grouped.amax(dim=1) == grouped.amin(dim=1)


def group_advantages(
    rewards: torch.Tensor, group_size: int, *, scale: str = "group", eps: float = 1e-4
) -> torch.Tensor:
    """Group-relative advantages ``(N,)`` from rewards ``(N,)`` ordered group by group.

    ``A_i = (R_i - mean_g) / (std_g + eps)`` where ``mean_g`` and ``std_g`` are the mean and
    the *unbiased* standard deviation of the ``group_size`` rewards of completion ``i``'s group
    (DeepSeekMath, section 4.1.2, outcome supervision; TRL's ``GRPOTrainer``, ``eps = 1e-4``).

    * ``scale="group"``: as above (the paper, TRL's default);
    * ``scale="batch"``: divide by the standard deviation of all ``N`` rewards instead;
    * ``scale="none"``: only centre, ``A_i = R_i - mean_g`` (Liu et al., 2025, "Understanding
      R1-Zero-Like Training", Dr. GRPO: dividing by ``std_g`` up-weights groups that are
      nearly all right or all wrong).

    A group whose rewards are all equal (:func:`zero_std_groups`) carries no signal and gets
    exactly 0, whatever ``eps`` is (with ``eps=0`` the formula would give ``0 / 0``). A group
    of one completion also gets 0: its "relative" reward is undefined and the unbiased
    standard deviation of one number is ``nan``. Libraries differ: TRL refuses
    ``num_generations < 2`` for training; verl treats a lone completion as mean 0 and standard
    deviation 1, so its advantage is its raw reward.

    Computed without a Python loop over groups: ``rewards.view(groups, group_size)``.
    """
    groups = _check_rewards(rewards, group_size)
    check_choice("scale", scale, ADVANTAGE_SCALES)
    eps = check_float("eps", eps, low=0.0)
    if group_size == 1:
        return torch.zeros_like(rewards)
    grouped = rewards.view(groups, group_size)  # (groups, G)
    centred = grouped - grouped.mean(dim=1, keepdim=True)  # R_i - mean_g
    if scale == "none":
        advantages = centred
    elif scale == "group":
        advantages = centred / (grouped.std(dim=1, keepdim=True) + eps)  # unbiased, as TRL
    else:
        advantages = centred / (rewards.std() + eps)
    constant = zero_std_groups(rewards, group_size)[:, None]  # (groups, 1)
    return torch.where(constant, torch.zeros_like(advantages), advantages).flatten()


# --------------------------------------------------------------------------------------
# The loss and its metrics
# --------------------------------------------------------------------------------------


def _check_loss_inputs(
    logprobs: torch.Tensor,
    old_logprobs: torch.Tensor,
    ref_logprobs: torch.Tensor | None,
    advantages: torch.Tensor,
    completion_mask: torch.Tensor,
    epsilon: float,
    epsilon_high: float | None,
) -> tuple[float, float, torch.Tensor]:
    """Validate, and return ``(epsilon_low, epsilon_high, mask as a bool tensor)``."""
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
    if not bool(torch.isfinite(advantages).all()):
        raise ValueError(
            "advantages must be finite (a nan usually comes from the unbiased std of a group "
            "of one; use group_advantages)"
        )
    if not bool(((completion_mask == 0) | (completion_mask == 1)).all()):
        raise ValueError("completion_mask must hold only 0 and 1")
    low = check_float("epsilon", epsilon, low=0.0, high=1.0, low_open=True, high_open=True)
    high = (
        low
        if epsilon_high is None
        else check_float("epsilon_high", epsilon_high, low=0.0, low_open=True)
    )
    return low, high, completion_mask.bool()


def _check_aggregation(
    mask: torch.Tensor,
    ref_logprobs: torch.Tensor | None,
    beta: float,
    loss_type: str,
    max_completion_length: int | None,
    num_items_in_batch: int | None,
) -> float:
    """Validate the arguments of :func:`grpo_loss` that depend on each other; return beta."""
    beta = check_float("beta", beta, low=0.0)
    check_choice("loss_type", loss_type, LOSS_TYPES)
    if beta > 0 and ref_logprobs is None:
        raise ValueError("ref_logprobs is required when beta > 0 (pass beta=0.0 to drop the KL)")
    lengths = mask.sum(dim=1)
    if loss_type == "dr_grpo":
        if max_completion_length is None:
            raise ValueError("loss_type='dr_grpo' needs max_completion_length")
        check_int("max_completion_length", max_completion_length, low=1)
        if max_completion_length < int(lengths.max()):
            raise ValueError(
                f"max_completion_length={max_completion_length} is shorter than the longest "
                f"completion in completion_mask ({int(lengths.max())} tokens)"
            )
    if loss_type == "dapo" and num_items_in_batch is not None:
        check_int("num_items_in_batch", num_items_in_batch, low=1)
        if num_items_in_batch < int(lengths.sum()):
            raise ValueError(
                f"num_items_in_batch={num_items_in_batch} is smaller than this batch's own "
                f"{int(lengths.sum())} completion tokens; it counts the tokens of the whole "
                "generation batch"
            )
    return beta


def _on_mask(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """``x`` where the mask is set, 0 elsewhere: padding then gives ``rho = 1`` and
    ``k3 = 0`` instead of whatever (possibly infinite) value its log-probs would give, and
    ``inf * 0 = nan`` cannot reach the loss or its gradient."""
    return torch.where(mask, x, torch.zeros_like(x))


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
    The KL term is not importance-weighted, as in TRL by default; TRL's option
    ``use_bias_correction_kl`` (since 0.26, default off; from DeepSeek-V3.2) multiplies it by
    ``rho``, which changes nothing on-policy and little just off it. ``ref_logprobs`` may be
    ``None`` when ``beta == 0``.

    Aggregation over the ``(N, T)`` per-token losses ``l`` with mask ``m`` (``loss_type``):

    * ``"grpo"``: ``mean_i( sum_t l m / sum_t m )``, each completion's mean, then the mean
      over completions (the paper's ``1/G sum_i 1/|o_i| sum_t``): a long completion's tokens
      weigh less. A row with no token in the mask (e.g. filtered out) adds 0 and still
      counts in the mean over completions, as in TRL;
    * ``"bnpo"``: ``sum(l m) / sum(m)``, every token of the batch weighs the same;
    * ``"dr_grpo"``: ``sum(l m) / (N * max_completion_length)`` (Dr. GRPO; a constant
      denominator, so no length bias; ``max_completion_length`` is required and must be at
      least the longest row);
    * ``"dapo"``: ``sum(l m) / num_items_in_batch`` where ``num_items_in_batch`` counts the
      completion tokens of the *whole generation batch* when it is split into micro-batches
      (DAPO's token-level loss, Yu et al., 2025, eq. 12); ``None`` means this batch's own
      count, which equals ``"bnpo"``. Summed over the micro-batches, the losses then equal
      the token mean of the whole batch.

    Args:
        logprobs: ``(N, T)`` log-probs of the completion tokens under the policy being trained
            (with gradient).
        old_logprobs: ``(N, T)`` log-probs under the policy that sampled them (no gradient;
            equal to ``logprobs.detach()`` for a single on-policy update).
        ref_logprobs: ``(N, T)`` log-probs under the frozen reference model, or ``None``.
        advantages: ``(N,)`` from :func:`group_advantages`.
        completion_mask: ``(N, T)``, 1 for completion tokens, 0 for padding. Values where it
            is 0 are ignored, even infinite ones.
    """
    low, high, mask = _check_loss_inputs(
        logprobs, old_logprobs, ref_logprobs, advantages, completion_mask, epsilon, epsilon_high
    )
    beta = _check_aggregation(
        mask, ref_logprobs, beta, loss_type, max_completion_length, num_items_in_batch
    )
    lengths = mask.sum(dim=1)  # |o_i|
    logp = _on_mask(logprobs, mask)
    ratio = torch.exp(logp - _on_mask(old_logprobs.detach(), mask))  # rho_t
    a = advantages.detach().to(logprobs.dtype)[:, None]  # (N, 1): one advantage per completion
    unclipped = ratio * a
    clipped = torch.clamp(ratio, 1.0 - low, 1.0 + high) * a
    per_token = -torch.minimum(unclipped, clipped)  # -min(rho A, clip(rho) A)
    if beta > 0:  # + beta * (exp(ref - logp) - (ref - logp) - 1)
        k3 = kl_estimate(logp, _on_mask(ref_logprobs.detach(), mask), "k3")
        per_token = per_token + beta * k3
    per_token = _on_mask(per_token, mask)

    if loss_type == "grpo":  # 1/N sum_i 1/|o_i| sum_t l_t
        per_sequence = per_token.sum(dim=1) / lengths.clamp(min=1).to(per_token.dtype)
        return per_sequence.mean()
    total = per_token.sum()  # sum_i sum_t l_t
    if loss_type == "dr_grpo":  # / (N * L_max)
        return total / (logprobs.shape[0] * max_completion_length)
    if loss_type == "dapo" and num_items_in_batch is not None:  # / tokens of the whole batch
        return total / num_items_in_batch
    return total / lengths.sum().clamp(min=1).to(per_token.dtype)  # bnpo; dapo unsplit


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
    low, high, mask = _check_loss_inputs(
        logprobs, old_logprobs, ref_logprobs, advantages, completion_mask, epsilon, epsilon_high
    )
    count = mask.sum().clamp(min=1).to(logprobs.dtype)
    logp = _on_mask(logprobs, mask)
    ratio = torch.exp(logp - _on_mask(old_logprobs, mask))
    a = advantages.to(logprobs.dtype)[:, None]
    is_low = (ratio < 1.0 - low) & (a < 0) & mask
    is_high = (ratio > 1.0 + high) & (a > 0) & mask
    metrics = {
        "clip_ratio/low_mean": float(is_low.sum() / count),
        "clip_ratio/high_mean": float(is_high.sum() / count),
        "clip_ratio/region_mean": float((is_low | is_high).sum() / count),
        "advantage_mean": float(advantages.mean()),
    }
    if ref_logprobs is not None:
        k3 = kl_estimate(logp, _on_mask(ref_logprobs, mask), "k3")
        metrics["kl"] = float(k3.sum() / count)
    return metrics


def token_entropy(logits: torch.Tensor) -> torch.Tensor:
    """Entropy ``H = -sum_v p(v) log p(v)`` of ``softmax(logits)`` at each position:
    ``(..., V)`` -> ``(...)``, in float32. TRL logs its mean over completion tokens as
    ``entropy``; a policy whose entropy collapses towards 0 has stopped exploring (the
    problem DAPO's clip-higher addresses)."""
    check_tensor("logits", logits, dtype="float")
    logp = F.log_softmax(logits.float(), dim=-1)
    return -(logp.exp() * logp).sum(dim=-1)


# --------------------------------------------------------------------------------------
# The trainer
# --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class GRPOConfig:
    """Every setting of a GRPO run, with TRL's ``GRPOConfig`` names where TRL has the knob.

    Attributes:
        num_generations: ``G``, completions sampled per prompt (a group).
        prompts_per_step: prompts per optimizer step; a step trains on
            ``prompts_per_step * num_generations`` completions (TRL's
            ``generation_batch_size``).
        beta: weight of the ``k3`` KL penalty towards the reference model (DeepSeekMath used
            0.04; TRL's default is 0.0).
        epsilon: the lower clip ``1 - epsilon`` of the ratio (and the upper one too unless
            ``epsilon_high`` is set).
        epsilon_high: the upper clip ``1 + epsilon_high`` (DAPO's clip-higher: 0.28).
        loss_type: the aggregation of :func:`grpo_loss` (TRL's default is ``"dapo"``; the
            paper's is ``"grpo"``).
        scale_rewards: how :func:`group_advantages` scales (``"group"``, ``"batch"``,
            ``"none"``).
        num_iterations: optimizer steps on each sampled batch (the paper's ``mu``); with 1
            the update is on-policy and ``rho = 1`` in value.
        lr: AdamW learning rate (no weight decay).
        max_grad_norm: global gradient-norm clipping (``None``: measure, do not clip).
        temperature: sampling temperature of the rollouts.
        max_completion_length: most tokens sampled per completion (EOS included); also the
            constant of ``loss_type="dr_grpo"``. A completion that reaches it without EOS is
            truncated.
        gradient_accumulation_steps: micro-batches per optimizer step; each is a separate
            forward and backward. ``"grpo"``, ``"bnpo"`` and ``"dr_grpo"`` losses are divided
            by this number (TRL's convention); ``"dapo"`` divides by the completion tokens of
            the whole batch (``num_items_in_batch``) instead.
    """

    num_generations: int = 8
    prompts_per_step: int = 16
    beta: float = 0.04
    epsilon: float = 0.2
    epsilon_high: float | None = None
    loss_type: str = "grpo"
    scale_rewards: str = "group"
    num_iterations: int = 1
    lr: float = 2e-4
    max_grad_norm: float | None = 1.0
    temperature: float = 1.0
    max_completion_length: int = MAX_NEW_TOKENS
    gradient_accumulation_steps: int = 1

    def __post_init__(self) -> None:
        check_int("num_generations", self.num_generations, low=2)
        check_int("prompts_per_step", self.prompts_per_step, low=1)
        check_float("beta", self.beta, low=0.0)
        check_float("epsilon", self.epsilon, low=0.0, high=1.0, low_open=True, high_open=True)
        check_float("epsilon_high", self.epsilon_high, low=0.0, low_open=True, allow_none=True)
        check_choice("loss_type", self.loss_type, LOSS_TYPES)
        check_choice("scale_rewards", self.scale_rewards, ADVANTAGE_SCALES)
        check_int("num_iterations", self.num_iterations, low=1)
        check_float("lr", self.lr, low=0.0, low_open=True)
        check_float("max_grad_norm", self.max_grad_norm, low=0.0, low_open=True, allow_none=True)
        check_float("temperature", self.temperature, low=0.0, low_open=True)
        check_int("max_completion_length", self.max_completion_length, low=1)
        check_int(
            "gradient_accumulation_steps",
            self.gradient_accumulation_steps,
            low=1,
            high=self.prompts_per_step * self.num_generations,
        )

    def to_dict(self) -> dict[str, Any]:
        """The fields as a plain dict (for JSON records)."""
        return dataclasses.asdict(self)


#: ``rollout_fn(trainer, config)``: the batch of one step, or the batch and a dict of floats
#: to log (e.g. ``{"samples": ..., "generation_rounds": ...}``).
RolloutFn = Callable[[PolicyTrainer, GRPOConfig], "Rollout | tuple[Rollout, dict[str, float]]"]
#: ``reward_fn(batch) -> (B,)`` float rewards of the batch's completions.
RewardFn = Callable[[Rollout], torch.Tensor]
#: ``loss_mask_fn(batch) -> (B, n)`` 0/1 mask of the tokens that enter the loss.
LossMaskFn = Callable[[Rollout], torch.Tensor]


def online_rollout(trainer: PolicyTrainer, config: GRPOConfig) -> Rollout:
    """The default batch: ``config.prompts_per_step`` fresh training problems (seeded by the
    trainer's seed and step), ``config.num_generations`` completions each, sampled from the
    current policy at ``config.temperature`` with at most ``config.max_completion_length``
    tokens."""
    return trainer.rollout(
        trainer.sample_problems(config.prompts_per_step),
        num_generations=config.num_generations,
        temperature=config.temperature,
        max_new_tokens=config.max_completion_length,
    )


def _rows(batch: Rollout, rows: torch.Tensor, width: int | None = None) -> Rollout:
    """The rollout restricted to ``rows`` and right-padded to ``width`` completion tokens."""
    n = batch.completion_mask.shape[1]
    width = n if width is None else width
    extra = width - n

    def pad(x: torch.Tensor, value: float) -> torch.Tensor:
        x = x[rows]
        return F.pad(x, (0, extra), value=value) if extra else x

    picked = rows.tolist()
    return Rollout(
        problems=[batch.problems[i] for i in picked],
        num_generations=batch.num_generations,
        input_ids=pad(batch.input_ids, PAD_ID),
        attention_mask=pad(batch.attention_mask, 1),  # generated columns are all 1
        completion_mask=pad(batch.completion_mask, 0),
        completions=[batch.completions[i] for i in picked],
        rewards=batch.rewards[rows],
        old_logprobs=pad(batch.old_logprobs, 0.0),
        ref_logprobs=pad(batch.ref_logprobs, 0.0),
        kl=pad(batch.kl, 0.0),
    )


def select_groups(batch: Rollout, keep: torch.Tensor) -> Rollout:
    """The rollout with only the groups where ``keep`` ``(groups,)`` (bool) is true, e.g.
    ``select_groups(batch, ~zero_std_groups(batch.rewards, batch.num_generations))``."""
    g = batch.num_generations
    groups = batch.rewards.shape[0] // g
    check_tensor("keep", keep, dtype="bool", shape=(groups,))
    rows = torch.arange(groups * g).view(groups, g)[keep].flatten()
    return _rows(batch, rows)


def concat_rollouts(batches: Sequence[Rollout]) -> Rollout:
    """One rollout from several with the same prompt width and group size, rows in order;
    the completion columns are right-padded to the widest batch (padding is outside every
    mask, and a causal model's real tokens never see it)."""
    if not batches:
        raise ValueError("batches is empty")
    g = batches[0].num_generations
    widths = [b.input_ids.shape[1] - b.completion_mask.shape[1] for b in batches]
    if any(b.num_generations != g for b in batches) or len(set(widths)) != 1:
        raise ValueError(
            "every batch must have the same num_generations and prompt width, got "
            f"{[b.num_generations for b in batches]} and {widths}"
        )
    width = max(b.completion_mask.shape[1] for b in batches)
    parts = [_rows(b, torch.arange(b.rewards.shape[0]), width) for b in batches]
    return Rollout(
        problems=[p for b in parts for p in b.problems],
        num_generations=g,
        input_ids=torch.cat([b.input_ids for b in parts]),
        attention_mask=torch.cat([b.attention_mask for b in parts]),
        completion_mask=torch.cat([b.completion_mask for b in parts]),
        completions=[c for b in parts for c in b.completions],
        rewards=torch.cat([b.rewards for b in parts]),
        old_logprobs=torch.cat([b.old_logprobs for b in parts]),
        ref_logprobs=torch.cat([b.ref_logprobs for b in parts]),
        kl=torch.cat([b.kl for b in parts]),
    )


def truncated_completions(batch: Rollout) -> torch.Tensor:
    """``(B,)`` bool: which completions stopped without writing EOS (they hit the length
    limit, so their reward judges an unfinished answer)."""
    eos = (batch.input_ids[:, -batch.logits_to_keep :] == EOS_ID) & batch.completion_mask.bool()
    return ~eos.any(dim=1)


def policy_logprobs(
    policy: GPTModel, batch: Rollout, rows: torch.Tensor | slice | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-token log-probs ``(b, n)`` (with gradient) of ``batch``'s completion tokens under
    ``policy``, and the policy's entropy ``(b, n)`` at the same positions (no gradient), for
    the rows ``rows`` (default all). One forward pass; the logit at position ``t`` predicts
    token ``t + 1``, the alignment of :func:`tutorial_code.rl.completion_logprobs`."""
    rows = slice(None) if rows is None else rows
    k = batch.logits_to_keep
    ids = batch.input_ids[rows]
    logits = policy(ids, attention_mask=batch.attention_mask[rows])[:, -k - 1 : -1]
    return token_logprobs(logits, ids[:, -k:]), token_entropy(logits.detach())


def grpo_update(
    trainer: PolicyTrainer,
    batch: Rollout,
    advantages: torch.Tensor,
    config: GRPOConfig,
    *,
    loss_mask: torch.Tensor | None = None,
) -> dict[str, float]:
    """``config.num_iterations`` optimizer steps of :func:`grpo_loss` on one sampled batch.

    Each step accumulates gradients over ``config.gradient_accumulation_steps`` micro-batches
    (consecutive rows). With ``num_iterations == 1`` the old log-probs are the current ones
    detached (TRL's shortcut: ``rho = 1`` exactly); otherwise they are the rollout's
    ``old_logprobs``, so from the second step on ``rho != 1``. ``loss_mask`` ``(B, n)``
    (default ``batch.completion_mask``) selects the tokens of the loss and of its metrics.

    Returns the means over the steps of ``loss`` (what was back-propagated, summed over
    micro-batches), ``policy_loss`` (the same with ``beta = 0``), ``grad_norm`` (before
    clipping) and :func:`grpo_metrics` (its ``kl`` as ``kl_k3``), and the first step's
    ``entropy`` (of the policy that sampled the batch) and ``loss_tokens``.
    """
    b = batch.rewards.shape[0]
    check_tensor("advantages", advantages, dim=1, shape=(b,))
    mask = batch.completion_mask if loss_mask is None else loss_mask
    check_tensor("loss_mask", mask, dim=2, shape=tuple(batch.completion_mask.shape))
    mask = mask.to(batch.completion_mask.dtype)
    chunks = [c for c in torch.arange(b).tensor_split(config.gradient_accumulation_steps) if len(c)]
    items = max(1, int(mask.sum()))  # completion tokens of the whole batch
    divide = 1 if config.loss_type == "dapo" else len(chunks)
    ref = batch.ref_logprobs if config.beta > 0 else None
    kwargs = {
        "epsilon": config.epsilon,
        "epsilon_high": config.epsilon_high,
        "loss_type": config.loss_type,
        "max_completion_length": config.max_completion_length,
        "num_items_in_batch": items if config.loss_type == "dapo" else None,
    }
    totals: dict[str, float] = {}
    first: dict[str, float] = {}
    trainer.policy.train()
    for iteration in range(config.num_iterations):
        trainer.optimizer.zero_grad(set_to_none=True)
        loss_sum = policy_sum = 0.0
        seen = []
        for rows in chunks:
            logp, entropy = policy_logprobs(trainer.policy, batch, rows)
            old = logp.detach() if config.num_iterations == 1 else batch.old_logprobs[rows]
            args = (old, None if ref is None else ref[rows], advantages[rows], mask[rows])
            loss = grpo_loss(logp, *args, beta=config.beta, **kwargs) / divide
            loss.backward()
            loss_sum += loss.item()
            policy_sum += grpo_loss(logp.detach(), *args, beta=0.0, **kwargs).item() / divide
            seen.append((logp.detach(), old, entropy))
        grad_norm = trainer.optimizer_step()
        logp = torch.cat([s[0] for s in seen])
        old = torch.cat([s[1] for s in seen])
        metrics = grpo_metrics(
            logp, old, batch.ref_logprobs, advantages, mask,
            epsilon=config.epsilon, epsilon_high=config.epsilon_high,
        )  # fmt: skip
        metrics["kl_k3"] = metrics.pop("kl")
        step = {"loss": loss_sum, "policy_loss": policy_sum, "grad_norm": grad_norm} | metrics
        for key, value in step.items():
            totals[key] = totals.get(key, 0.0) + value / config.num_iterations
        if iteration == 0:
            entropy = torch.cat([s[2] for s in seen])
            first["entropy"] = float((entropy * mask).sum() / mask.sum().clamp(min=1))
            first["loss_tokens"] = float(mask.sum())
    return totals | first


def _lengths_by_outcome(batch: Rollout) -> dict[str, float]:
    """Mean completion length of the right and of the wrong completions (nan if none)."""
    right = batch.rewards == 1.0
    lengths = batch.lengths.double()
    nan = float("nan")
    return {
        "length_right": lengths[right].mean().item() if bool(right.any()) else nan,
        "length_wrong": lengths[~right].mean().item() if bool((~right).any()) else nan,
    }


def train_grpo(
    config: GRPOConfig,
    *,
    seed: int,
    steps: int,
    eval_every: int = 10,
    time_budget_s: float | None = None,
    reward_fn: RewardFn | None = None,
    rollout_fn: RolloutFn | None = None,
    loss_mask_fn: LossMaskFn | None = None,
    start: str | GPTModel = "sft",
    eval_problems: Sequence[Problem] | None = None,
) -> AlignmentLog:
    """Train a policy with GRPO on the addition task and return the per-step log.

    Each step: ``rollout_fn`` samples a batch, ``reward_fn`` scores it,
    :func:`group_advantages` turns rewards into advantages, ``loss_mask_fn`` picks the tokens
    of the loss, and :func:`grpo_update` takes ``config.num_iterations`` optimizer steps.
    Greedy held-out accuracy is measured before the first step, every ``eval_every`` steps
    and after the last (``log.evals``: ``step``, ``accuracy``, ``trace_fraction``,
    ``length``; on ``eval_problems``, default the first 200 validation problems).

    Hooks (each ``None`` means the plain GRPO stage):

    * ``rollout_fn(trainer, config) -> Rollout`` (or ``(Rollout, stats)``): which completions
      form the batch. Default :func:`online_rollout`. Dynamic sampling (DAPO) plugs in here:
      draw more problems (``tutorial_code.task.sample_problems`` with a seed of its own,
      since ``trainer.sample_problems`` repeats within a step), keep the groups that are not
      :func:`zero_std_groups` with :func:`select_groups`, join rounds with
      :func:`concat_rollouts`, and return ``{"samples": ...}`` in ``stats`` so the log counts
      every sample generated. Groups must stay ``batch.num_generations`` rows, in order.
    * ``reward_fn(batch) -> (B,)``: what each completion earns, default ``batch.rewards`` (the
      checker's 0/1). Overlong reward shaping (DAPO) plugs in here, e.g.
      ``batch.rewards + penalty(batch.lengths)``; the log keeps ``accuracy`` from the checker
      and ``reward`` from this function.
    * ``loss_mask_fn(batch) -> (B, n)``: the 0/1 mask of the tokens that enter the loss,
      default ``batch.completion_mask``. Overlong filtering (DAPO) plugs in here: zero the
      rows of truncated completions (no EOS within ``config.max_completion_length``).

    The token-level loss over micro-batches is not a hook: set ``loss_type="dapo"`` and
    ``gradient_accumulation_steps`` in ``config`` (:func:`grpo_update` passes the whole
    batch's token count as ``num_items_in_batch``).

    Args:
        config: the run's settings.
        seed: seeds the sampling generator and each step's problems.
        steps: the most optimizer-step batches to train on.
        eval_every: steps between evaluations.
        time_budget_s: stop after the first step at which the training time (sampling and
            updates, evaluations excluded) reaches this many seconds.
        start: ``"sft"`` or ``"base"`` (loaded with
            :func:`tutorial_code.checkpoints.load_checkpoint`), or a :class:`GPTModel`,
            which is trained in place (pass one to keep the trained policy). The reference
            model is a frozen copy of the start.

    Returns:
        The harness's :class:`~tutorial_code.rl.AlignmentLog`. Each ``log.steps`` row has
        ``step``, ``time`` (cumulative training seconds), ``samples`` (completions generated
        this step), the batch's ``reward`` (mean of ``reward_fn``), ``accuracy``,
        ``trace_fraction``, ``length`` and ``kl`` (exact per-token ``KL(pi || pi_ref)`` of the
        policy that sampled it), ``frac_reward_zero_std``, ``truncated_fraction``,
        ``length_right`` and ``length_wrong`` (by the checker; ``nan`` if none), and the
        update's ``loss``, ``policy_loss``, ``grad_norm``, ``kl_k3``, ``entropy``,
        ``clip_ratio/low_mean``, ``clip_ratio/high_mean``, ``clip_ratio/region_mean``,
        ``advantage_mean``, ``loss_tokens``; plus whatever ``rollout_fn`` returned.
    """
    check_module("config", config, GRPOConfig)
    check_int("seed", seed, low=0)
    check_int("steps", steps, low=1)
    check_float("time_budget_s", time_budget_s, low=0.0, low_open=True, allow_none=True)
    if isinstance(start, str):
        from tutorial_code.checkpoints import CHECKPOINT_NAMES, load_checkpoint

        policy = load_checkpoint(check_choice("start", start, CHECKPOINT_NAMES))
    else:
        policy = check_module("start", start, GPTModel)
    trainer = PolicyTrainer(
        policy,
        lr=config.lr,
        max_grad_norm=config.max_grad_norm,
        seed=seed,
        eval_problems=eval_problems,
        eval_every=eval_every,
    )
    rollout_fn = online_rollout if rollout_fn is None else rollout_fn
    trainer.evaluate()
    elapsed = 0.0
    for _ in range(steps):
        began = time.perf_counter()
        batch, extra = rollout_fn(trainer, config), {}
        if isinstance(batch, tuple):
            batch, extra = batch
        check_module("rollout_fn's batch", batch, Rollout)
        b, g = batch.rewards.shape[0], batch.num_generations
        rewards = batch.rewards if reward_fn is None else reward_fn(batch)
        check_tensor("reward_fn's rewards", rewards, dim=1, dtype="float", shape=(b,))
        advantages = group_advantages(rewards, g, scale=config.scale_rewards)
        mask = None if loss_mask_fn is None else loss_mask_fn(batch)
        update = grpo_update(trainer, batch, advantages, config, loss_mask=mask)
        elapsed += time.perf_counter() - began
        trainer.step += 1
        trainer.log.steps.append(
            {"step": trainer.step, "time": elapsed, "samples": float(b)}
            | batch.stats()
            | {
                "reward": rewards.double().mean().item(),
                "frac_reward_zero_std": zero_std_groups(rewards, g).double().mean().item(),
                "truncated_fraction": truncated_completions(batch).double().mean().item(),
            }
            | _lengths_by_outcome(batch)
            | update
            | {key: float(value) for key, value in extra.items()}
        )
        if trainer.step % eval_every == 0:
            trainer.evaluate()
        if time_budget_s is not None and elapsed >= time_budget_s:
            break
    if trainer.log.evals[-1]["step"] != trainer.step:
        trainer.evaluate()
    return trainer.log
