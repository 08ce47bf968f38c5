"""RLHF with PPO: a reward model, a value model, per-token KL rewards, GAE and clipped losses.

Reinforcement learning from human feedback (Ziegler et al., 2019; Stiennon et al., 2020;
Ouyang et al., 2022) trains a **reward model** on preference pairs, then improves the policy
with PPO (Schulman et al., 2017) against that reward, minus a KL penalty that keeps it near
the reference model. Four networks take part: the policy (trained), the value model
(trained), the reference model (frozen) and the reward model (frozen). Here the value model
is a second network, as in TRL's ``PPOTrainer``, not a second head on the policy's backbone.

* :class:`RewardModel`: the book's GPT backbone and a scalar head (``score``, the name
  ``transformers`` gives it), read at the last real token; :meth:`RewardModel.values` gives
  the head at every position, which is what a value model needs.
  :func:`reward_model_loss` is the Bradley-Terry loss of TRL's ``RewardTrainer``;
  :func:`reward_model_metrics` its accuracy and margin; :func:`train_reward_model` fits one
  on the testbed's preference pairs (:class:`RewardModelConfig`).
* :func:`per_token_rewards`: ``-kl_coef * kl_t`` on every completion token, plus the score
  on the last one: the KL-penalised reward of Ziegler et al. (2019, eq. 2) and Stiennon et
  al. (2020, eq. 1), paid token by token as TRL's ``PPOTrainer`` does.
* :func:`compute_gae`: generalised advantage estimation (Schulman et al., 2016).
* :func:`ppo_policy_loss` and :func:`ppo_value_loss`: the clipped surrogate (Schulman et al.,
  2017, eq. 7, as a loss to minimise) and the clipped value loss, as TRL writes them.
* :class:`AdaptiveKLController` (Ziegler et al., 2019, eq. 3) and :class:`FixedKLController`.
* :class:`PPOConfig`, :class:`PPOTrainer` and :func:`train_ppo`: the loop (rollout, scores,
  values, rewards, GAE, then ``num_ppo_epochs`` passes of minibatch updates) on the shared
  harness :class:`tutorial_code.rl.PolicyTrainer`.
* :func:`rlhf_memory`: the four models' memory for a policy of a given size.

Shapes: ``B`` rows, ``S`` tokens per row (prompt and completion), ``T`` completion tokens.
Every per-token tensor is ``(B, T)`` over the completion tokens, with ``mask`` 1 on real
completion tokens (EOS included) and 0 on the padding after them.
"""

from __future__ import annotations

import copy
import dataclasses
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

from tutorial_code.checks import (
    check_choice,
    check_float,
    check_int,
    check_module,
    check_same_shape,
    check_tensor,
)
from tutorial_code.costs import DTYPE_BYTES, training_memory
from tutorial_code.model import GPTModel
from tutorial_code.rl import (
    KL_ESTIMATORS,
    MAX_NEW_TOKENS,
    AlignmentLog,
    PolicyTrainer,
    Rollout,
    completion_logprobs,
    evaluate_greedy,
    evaluate_sampling,
    kl_estimate,
    masked_mean,
    masked_whiten,
)
from tutorial_code.task import (
    EOS_ID,
    PAD_ID,
    TOKENIZER,
    Problem,
    preference_pairs,
    sample_problems,
)

__all__ = [
    "REWARDS",
    "AdaptiveKLController",
    "FixedKLController",
    "PPOBatch",
    "PPOConfig",
    "PPOTrainer",
    "RewardModel",
    "RewardModelConfig",
    "compute_gae",
    "pair_batch",
    "per_token_rewards",
    "ppo_policy_loss",
    "ppo_value_loss",
    "reward_model_loss",
    "reward_model_metrics",
    "rlhf_memory",
    "rollout_token_mask",
    "train_ppo",
    "train_reward_model",
]

#: Where :func:`train_ppo` takes its reward from.
REWARDS = ("checker", "reward_model")


# --------------------------------------------------------------------------------------
# The reward model (and the value model: the same architecture)
# --------------------------------------------------------------------------------------


class RewardModel(nn.Module):
    """A GPT backbone with a scalar head: ``r(x, y)`` read at the last real token.

    The head is ``nn.Linear(emb_dim, 1)`` on the backbone's final-LayerNorm output
    (:meth:`tutorial_code.model.GPTModel.hidden_states`); the backbone's language-model head
    is not used. ``forward`` returns one score per row, taken at the last position where
    ``attention_mask`` is 1 (the EOS of a finished completion), like ``transformers``'
    ``AutoModelForSequenceClassification`` that TRL's ``RewardTrainer`` trains.
    :meth:`values` returns the head at every position: PPO's value model is this class too
    (TRL builds its value model the same way), read at every completion token instead of
    the last one.

    Args:
        backbone: the GPT to put the head on (e.g. ``load_checkpoint("sft")``, as InstructGPT
            starts its reward model from the SFT model); used in place, not copied.
        head_std: the head's weights are drawn from ``N(0, head_std^2)`` (default
            ``1 / sqrt(emb_dim + 1)``); ``0.0`` starts the head at exactly 0. The bias
            starts at 0.
        generator: seeds the head's initial weights.
    """

    def __init__(
        self,
        backbone: GPTModel,
        *,
        head_std: float | None = None,
        generator: torch.Generator | None = None,
    ) -> None:
        super().__init__()
        check_module("backbone", backbone, GPTModel)
        width = backbone.cfg.emb_dim
        std = 1.0 / math.sqrt(width + 1) if head_std is None else head_std
        check_float("head_std", std, low=0.0)
        self.backbone = backbone
        self.score = nn.Linear(width, 1)
        with torch.no_grad():
            self.score.weight.copy_(torch.randn(1, width, generator=generator) * std)
            self.score.bias.zero_()

    def used_parameters(self) -> list[nn.Parameter]:
        """Every parameter except the backbone's unused language-model head (``out_head``):
        what an optimizer should train."""
        return [p for n, p in self.named_parameters() if not n.startswith("backbone.out_head")]

    def values(
        self, input_ids: torch.Tensor, *, attention_mask: torch.Tensor | None = None
    ) -> torch.Tensor:
        """The scalar head at every position: ``(B, S)`` ids -> ``(B, S)`` float.

        ``values[:, t]`` depends on ``input_ids[:, : t + 1]`` only (a causal backbone).
        """
        hidden = self.backbone.hidden_states(input_ids, attention_mask=attention_mask)
        return self.score(hidden).squeeze(-1)

    def completion_values(
        self,
        input_ids: torch.Tensor,
        *,
        attention_mask: torch.Tensor | None = None,
        logits_to_keep: int,
    ) -> torch.Tensor:
        """Values ``(B, K)`` of the states before each of the last ``K`` tokens.

        ``V_t`` is the value of the state in which completion token ``t`` is chosen: the
        prompt and the completion tokens before ``t``. It is read at position ``S-K-1+t``,
        the position whose logits predict token ``t`` (the same one-position shift as
        :func:`tutorial_code.rl.completion_logprobs`; TRL reads ``[context_length - 1 : -1]``).
        """
        check_tensor("input_ids", input_ids, dim=2, dtype="int")
        check_int("logits_to_keep", logits_to_keep, low=1, high=input_ids.shape[1] - 1)
        values = self.values(input_ids, attention_mask=attention_mask)
        return values[:, -logits_to_keep - 1 : -1]

    def forward(
        self, input_ids: torch.Tensor, *, attention_mask: torch.Tensor | None = None
    ) -> torch.Tensor:
        """Scores ``(B,)``: the head at the last position where ``attention_mask`` is 1.

        ``attention_mask`` ``(B, S)`` marks the real tokens (padding may be on either side;
        padding after the last real token does not change its score). ``None``: every token
        is real and the score is read at the last column.
        """
        values = self.values(input_ids, attention_mask=attention_mask)
        if attention_mask is None:
            return values[:, -1]
        return values.gather(1, last_true_index(attention_mask)[:, None]).squeeze(1)


def last_true_index(mask: torch.Tensor) -> torch.Tensor:
    """``(B,)`` index of the last 1 in each row of a ``(B, S)`` 0/1 mask (a row of zeros
    raises)."""
    check_tensor("mask", mask, dim=2)
    if not bool(mask.bool().any(dim=1).all()):
        raise ValueError("every row of the mask must have at least one real token")
    positions = torch.arange(1, mask.shape[1] + 1, device=mask.device)
    return (mask.bool() * positions).argmax(dim=1)


def rollout_token_mask(rollout: Rollout) -> torch.Tensor:
    """``(B, S)`` 1 on the real tokens of a rollout: the prompt and the completion up to and
    including EOS (the generator's ``attention_mask`` is also 1 on the padding after EOS)."""
    mask = rollout.attention_mask.clone()
    mask[:, -rollout.logits_to_keep :] = rollout.completion_mask
    return mask


def reward_model_loss(
    chosen_rewards: torch.Tensor,
    rejected_rewards: torch.Tensor,
    margin: torch.Tensor | None = None,
) -> torch.Tensor:
    """The pairwise (Bradley-Terry) reward-model loss, a scalar to minimise.

    ``mean(-log sigmoid(r_c - r_r - margin))`` (Ouyang et al., 2022, eq. 1; TRL's
    ``RewardTrainer``, whose optional ``margin`` asks the chosen completion to win by at
    least that much). Under Bradley-Terry ``P(chosen beats rejected) = sigmoid(r_c - r_r)``,
    so this is the negative log-likelihood of the preferences. All inputs are ``(N,)``.
    """
    check_tensor("chosen_rewards", chosen_rewards, dim=1, dtype="float")
    check_same_shape(chosen_rewards=chosen_rewards, rejected_rewards=rejected_rewards)
    difference = chosen_rewards - rejected_rewards
    if margin is not None:
        check_same_shape(chosen_rewards=chosen_rewards, margin=margin)
        difference = difference - margin
    return -F.logsigmoid(difference).mean()


@torch.no_grad()
def reward_model_metrics(
    chosen_rewards: torch.Tensor, rejected_rewards: torch.Tensor
) -> dict[str, float]:
    """What TRL's ``RewardTrainer`` logs: ``accuracy`` (the fraction of pairs with
    ``r_c > r_r``; a tie counts as wrong) and ``margin`` (the mean of ``r_c - r_r``)."""
    check_tensor("chosen_rewards", chosen_rewards, dim=1, dtype="float")
    check_same_shape(chosen_rewards=chosen_rewards, rejected_rewards=rejected_rewards)
    return {
        "accuracy": (chosen_rewards > rejected_rewards).double().mean().item(),
        "margin": (chosen_rewards - rejected_rewards).double().mean().item(),
    }


def pair_batch(
    prompts: Sequence[str], completions: Sequence[str]
) -> tuple[torch.Tensor, torch.Tensor]:
    """``(input_ids, attention_mask)`` ``(B, S)`` of ``prompt + completion + EOS`` rows,
    right-padded with PAD: what :class:`RewardModel` scores (at each row's EOS)."""
    if len(prompts) != len(completions) or not prompts:
        raise ValueError(
            f"prompts and completions must be non-empty and of equal length, got "
            f"{len(prompts)} and {len(completions)}"
        )
    rows = [TOKENIZER.encode(p + c) + [EOS_ID] for p, c in zip(prompts, completions)]
    width = max(len(r) for r in rows)
    input_ids = torch.full((len(rows), width), PAD_ID, dtype=torch.long)
    attention_mask = torch.zeros(len(rows), width, dtype=torch.long)
    for i, row in enumerate(rows):
        input_ids[i, : len(row)] = torch.tensor(row)
        attention_mask[i, : len(row)] = 1
    return input_ids, attention_mask


@dataclass(frozen=True)
class RewardModelConfig:
    """How :func:`train_reward_model` makes the testbed's reward model.

    ``n_problems`` training problems, ``num_generations`` samples each from the SFT policy
    at temperature 1; every problem with a right and a wrong sample gives one preference
    pair (:func:`tutorial_code.task.preference_pairs`). Then ``steps`` AdamW steps on
    batches of ``batch_size`` pairs drawn with replacement. Finally the head is rescaled so
    that the scores of all the SFT samples have mean 0 and standard deviation 1 (Ziegler et
    al., 2019, section 2.2 normalise their reward model the same way), which puts a
    learned reward on the scale the KL coefficient is chosen for.
    """

    n_problems: int = 1500
    num_generations: int = 4
    steps: int = 150
    batch_size: int = 64
    lr: float = 3e-4
    weight_decay: float = 0.0
    max_grad_norm: float = 1.0
    seed: int = 0


def _score_pairs(
    model: RewardModel, pairs: Sequence[dict[str, str]]
) -> tuple[torch.Tensor, torch.Tensor]:
    """Chosen and rejected scores ``(N,)`` in one forward pass (TRL concatenates them too)."""
    prompts = [p["prompt"] for p in pairs] * 2
    completions = [p["chosen"] for p in pairs] + [p["rejected"] for p in pairs]
    ids, mask = pair_batch(prompts, completions)
    scores = model(ids, attention_mask=mask)
    return scores[: len(pairs)], scores[len(pairs) :]


def train_reward_model(
    config: RewardModelConfig = RewardModelConfig(),
    *,
    backbone: GPTModel | None = None,
) -> tuple[RewardModel, dict]:
    """Fit a :class:`RewardModel` on preference pairs sampled from the SFT policy.

    The backbone (default ``load_checkpoint("sft")``) is copied, so the caller's model is
    not changed. Deterministic for a given ``config`` on one machine. Returns the model (in
    eval mode, parameters frozen) and a record: the number of pairs, the per-step ``loss``,
    ``accuracy`` and ``margin``, and the ``normalisation`` (mean and standard deviation of
    the raw scores on the SFT samples) folded into the head.
    """
    from tutorial_code.checkpoints import load_checkpoint

    if not isinstance(config, RewardModelConfig):
        raise TypeError(f"config must be a RewardModelConfig, got {type(config).__name__}")
    check_int("steps", config.steps, low=1)
    check_int("batch_size", config.batch_size, low=1)
    sft = load_checkpoint("sft") if backbone is None else check_module("backbone", backbone)
    generator = torch.Generator().manual_seed(config.seed)
    problems = sample_problems(config.n_problems, split="train", seed=10_000 + config.seed)
    samples = evaluate_sampling(
        sft, problems, n=config.num_generations, generator=generator
    ).completions
    pairs = preference_pairs(problems, samples)
    if not pairs:
        raise ValueError("the SFT samples gave no preference pair; sample more problems")
    model = RewardModel(copy.deepcopy(sft), generator=generator).train()
    params = model.used_parameters()
    optimizer = torch.optim.AdamW(params, lr=config.lr, weight_decay=config.weight_decay)
    record: dict = {"pairs": len(pairs), "loss": [], "accuracy": [], "margin": []}
    for _ in range(config.steps):
        picks = torch.randint(len(pairs), (config.batch_size,), generator=generator).tolist()
        chosen, rejected = _score_pairs(model, [pairs[i] for i in picks])
        loss = reward_model_loss(chosen, rejected)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, config.max_grad_norm)
        optimizer.step()
        metrics = reward_model_metrics(chosen, rejected)
        record["loss"].append(loss.item())
        record["accuracy"].append(metrics["accuracy"])
        record["margin"].append(metrics["margin"])
    model.eval().requires_grad_(False)
    flat = [(p.prompt, c) for p, group in zip(problems, samples) for c in group]
    raw = score_texts(model, [p for p, _ in flat], [c for _, c in flat])
    mean, std = raw.mean().item(), raw.std().item()
    with torch.no_grad():  # r' = (r - mean) / std, folded into the head
        model.score.weight.div_(std)
        model.score.bias.sub_(mean).div_(std)
    record["normalisation"] = {"mean": mean, "std": std}
    return model, record


@torch.no_grad()
def score_texts(
    model: RewardModel,
    prompts: Sequence[str],
    completions: Sequence[str],
    *,
    batch_size: int = 512,
) -> torch.Tensor:
    """Reward-model scores ``(N,)`` of ``prompt + completion + EOS`` texts, in batches."""
    check_int("batch_size", batch_size, low=1)
    out = []
    for start in range(0, len(prompts), batch_size):
        ids, mask = pair_batch(
            prompts[start : start + batch_size], completions[start : start + batch_size]
        )
        out.append(model(ids, attention_mask=mask))
    return torch.cat(out)


# --------------------------------------------------------------------------------------
# Per-token rewards and advantages
# --------------------------------------------------------------------------------------


def _check_prefix_mask(mask: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """A float ``(B, T)`` 0/1 mask of ones followed by zeros in every row, at least one 1."""
    check_same_shape(mask=mask, **{"per-token tensor": like})
    m = mask.to(like.dtype)
    if not bool(((m == 0) | (m == 1)).all()):
        raise ValueError("mask must hold only 0 and 1")
    if bool((m[:, 1:] > m[:, :-1]).any()):
        raise ValueError(
            "mask must be a run of ones (the completion) followed by zeros (padding) in every row"
        )
    if not bool(m[:, 0].all()):
        raise ValueError("every row of mask must have at least one completion token")
    return m


def per_token_rewards(
    score: torch.Tensor,
    logprobs: torch.Tensor,
    ref_logprobs: torch.Tensor,
    mask: torch.Tensor,
    *,
    kl_coef: float,
    estimator: Literal["k1", "abs", "k2", "k3"] = "k1",
) -> torch.Tensor:
    """The reward of each completion token: ``(B, T)``.

    ``r_t = -kl_coef * kl_t`` on every completion token, plus the sequence's ``score`` on its
    last one (its EOS, or the last token of an unfinished completion), 0 on padding.
    ``kl_t`` is :func:`tutorial_code.rl.kl_estimate` of ``KL(pi || pi_ref)`` at token ``t``;
    with ``"k1"`` it is the log-ratio ``log pi(y_t) - log pi_ref(y_t)`` (a log-ratio, not a
    probability ratio), so summed over the completion the penalty is ``kl_coef`` times the
    sequence's log-ratio, ``log pi(y|x) - log pi_ref(y|x)``: Ziegler et al. (2019), eq. 2,
    ``R(x, y) = r(x, y) - beta log(pi(y|x) / rho(y|x))``, spread over tokens.

    Args:
        score: ``(B,)`` the reward model's score (or the checker's reward) of each sequence.
        logprobs: ``(B, T)`` log-probs of the sampled tokens under the policy that sampled
            them (no gradient).
        ref_logprobs: ``(B, T)`` the same under the reference model.
        mask: ``(B, T)`` 1 on completion tokens, then 0 on padding.
        kl_coef: ``beta >= 0``.
        estimator: ``"k1"`` (TRL's ``"kl"``, its default), ``"abs"``, ``"k2"`` (TRL's
            ``"mse"``) or ``"k3"``.
    """
    check_tensor("logprobs", logprobs, dim=2, dtype="float")
    check_same_shape(logprobs=logprobs, ref_logprobs=ref_logprobs)
    check_tensor("score", score, dim=1, shape=(logprobs.shape[0],), dtype="float")
    kl_coef = check_float("kl_coef", kl_coef, low=0.0)
    check_choice("estimator", estimator, KL_ESTIMATORS)
    m = _check_prefix_mask(mask, logprobs)
    kl = kl_estimate(logprobs.detach(), ref_logprobs.detach(), estimator)
    rewards = -kl_coef * kl * m  # -beta * kl_t on every completion token, 0 on padding
    last = m.sum(dim=1).long() - 1  # (B,) the last completion token
    rows = torch.arange(rewards.shape[0])
    rewards[rows, last] += score.detach().to(rewards.dtype)  # + r(x, y) at the end
    return rewards


def compute_gae(
    rewards: torch.Tensor,
    values: torch.Tensor,
    mask: torch.Tensor,
    *,
    gamma: float = 1.0,
    lam: float = 0.95,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Generalised advantage estimation (Schulman et al., 2016, eq. 16): ``(advantages,
    returns)``, both ``(B, T)``.

    ``delta_t = r_t + gamma V_{t+1} - V_t`` with ``V = 0`` after the last completion token
    (the episode ends there), and ``A_t = delta_t + gamma lam A_{t+1}``, i.e.
    ``A_t = sum_l (gamma lam)^l delta_{t+l}``; ``returns = A + V`` are the value model's
    targets (the lambda-return). Neither is whitened: whiten the advantages with
    :func:`tutorial_code.rl.masked_whiten` over ``mask`` if wanted. Padding is ignored: it
    gets 0 in both outputs, whatever ``rewards`` and ``values`` hold there.

    Args:
        rewards: ``(B, T)`` from :func:`per_token_rewards`.
        values: ``(B, T)`` the value model's ``V_t`` (no gradient is kept).
        mask: ``(B, T)`` 1 on completion tokens, then 0 on padding.
    """
    check_tensor("rewards", rewards, dim=2, dtype="float")
    check_same_shape(rewards=rewards, values=values)
    gamma = check_float("gamma", gamma, low=0.0, high=1.0)
    lam = check_float("lam", lam, low=0.0, high=1.0)
    m = _check_prefix_mask(mask, rewards)
    rewards, values = rewards.detach() * m, values.detach() * m  # padding contributes 0
    advantages = torch.zeros_like(rewards)
    last_advantage = torch.zeros_like(rewards[:, 0])
    for t in reversed(range(rewards.shape[1])):
        next_value = values[:, t + 1] if t + 1 < rewards.shape[1] else 0.0  # 0 at padding too
        delta = rewards[:, t] + gamma * next_value - values[:, t]  # delta_t
        last_advantage = delta + gamma * lam * last_advantage  # A_t = delta_t + g l A_{t+1}
        advantages[:, t] = last_advantage
    advantages = advantages * m
    return advantages, advantages + values


# --------------------------------------------------------------------------------------
# The clipped losses
# --------------------------------------------------------------------------------------


def ppo_policy_loss(
    logprobs: torch.Tensor,
    old_logprobs: torch.Tensor,
    advantages: torch.Tensor,
    mask: torch.Tensor,
    *,
    cliprange: float = 0.2,
) -> tuple[torch.Tensor, torch.Tensor]:
    """PPO's clipped policy loss, to minimise, and the fraction of clipped tokens.

    With ``rho_t = exp(logprobs_t - old_logprobs_t)`` (the new policy's probability of the
    sampled token over the sampling policy's)::

        loss = masked_mean( max(-A_t rho_t, -A_t clip(rho_t, 1 - eps, 1 + eps)) )

    the negative of Schulman et al.'s (2017, eq. 7) ``L^CLIP = E[min(rho A, clip(rho) A)]``,
    averaged over every completion token of the batch (TRL's ``PPOTrainer``).
    ``old_logprobs`` and ``advantages`` are constants: they are detached here, so the
    gradient flows through ``logprobs`` only. ``clipfrac`` is the fraction of tokens whose
    clipped term is the larger (TRL's ``policy/clipfrac``): there the gradient is 0.
    """
    check_tensor("logprobs", logprobs, dim=2, dtype="float")
    check_same_shape(logprobs=logprobs, old_logprobs=old_logprobs, advantages=advantages)
    cliprange = check_float("cliprange", cliprange, low=0.0, low_open=True)
    m = _check_prefix_mask(mask, logprobs)
    ratio = torch.exp(logprobs - old_logprobs.detach())  # rho_t
    a = advantages.detach()
    unclipped = -a * ratio
    clipped = -a * torch.clamp(ratio, 1.0 - cliprange, 1.0 + cliprange)
    loss = masked_mean(torch.maximum(unclipped, clipped), m)
    clipfrac = masked_mean((clipped > unclipped).to(m.dtype), m).detach()
    return loss, clipfrac


def ppo_value_loss(
    values: torch.Tensor,
    old_values: torch.Tensor,
    returns: torch.Tensor,
    mask: torch.Tensor,
    *,
    cliprange_value: float | None = 0.2,
) -> torch.Tensor:
    """The clipped value loss, to minimise::

        0.5 * masked_mean( max((v - R)^2, (clip(v, v_old - c, v_old + c) - R)^2) )

    ``values`` ``v`` come from the value model being trained, ``old_values`` from it when
    the batch was sampled, ``returns`` ``R`` from :func:`compute_gae`. Taking the larger of
    the two errors means a step that moves ``v`` more than ``c`` from ``v_old`` gets no
    gradient to move further (TRL's ``PPOTrainer``, after OpenAI's baselines).
    ``cliprange_value=None`` gives the plain ``0.5 * masked_mean((v - R)^2)``.
    """
    check_tensor("values", values, dim=2, dtype="float")
    check_same_shape(values=values, old_values=old_values, returns=returns)
    m = _check_prefix_mask(mask, values)
    returns = returns.detach()
    unclipped = (values - returns) ** 2
    if cliprange_value is None:
        return 0.5 * masked_mean(unclipped, m)
    c = check_float("cliprange_value", cliprange_value, low=0.0, low_open=True)
    old = old_values.detach()
    clipped = (torch.clamp(values, old - c, old + c) - returns) ** 2
    return 0.5 * masked_mean(torch.maximum(unclipped, clipped), m)


# --------------------------------------------------------------------------------------
# KL controllers
# --------------------------------------------------------------------------------------


class FixedKLController:
    """A constant KL coefficient with the interface of :class:`AdaptiveKLController`."""

    def __init__(self, kl_coef: float) -> None:
        self.value = check_float("kl_coef", kl_coef, low=0.0)

    def update(self, current_kl: float, n_steps: int) -> float:
        """Does nothing; returns :attr:`value`."""
        check_float("current_kl", current_kl)
        check_int("n_steps", n_steps, low=1)
        return self.value


class AdaptiveKLController:
    """Adapts the KL coefficient towards a target KL (Ziegler et al., 2019, eq. 3).

    After a batch with KL ``KL_t`` over ``n_steps`` samples::

        e_t = clip(KL_t / target - 1, -0.2, 0.2)
        beta <- beta * (1 + e_t * n_steps / horizon)

    so ``beta`` grows while the policy is further from the reference than ``target`` and
    shrinks while it is closer, by at most a factor ``1 +- 0.2 n_steps / horizon`` per
    update (TRL's ``AdaptiveKLController``; the paper's ``K_beta = 0.1`` corresponds to
    ``n_steps / horizon = 0.1``). ``KL_t`` is the mean over sequences of the summed
    per-token KL, in nats.
    """

    def __init__(self, init_kl_coef: float, target: float, horizon: float) -> None:
        self.value = check_float("init_kl_coef", init_kl_coef, low=0.0, low_open=True)
        self.target = check_float("target", target, low=0.0, low_open=True)
        self.horizon = check_float("horizon", horizon, low=0.0, low_open=True)

    def update(self, current_kl: float, n_steps: int) -> float:
        """Apply one update; returns the new coefficient."""
        current_kl = check_float("current_kl", current_kl)
        check_int("n_steps", n_steps, low=1)
        proportional_error = min(max(current_kl / self.target - 1.0, -0.2), 0.2)  # e_t
        self.value *= 1.0 + proportional_error * n_steps / self.horizon
        return self.value


# --------------------------------------------------------------------------------------
# The PPO loop
# --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class PPOConfig:
    """Every hyper-parameter of :func:`train_ppo`, with the values the chapter uses.

    Names follow TRL's ``PPOConfig`` where it has the knob. A step samples ``batch_size``
    training problems with ``num_generations`` completions each at ``temperature``, then
    makes ``num_ppo_epochs`` passes over them in ``num_mini_batches`` shuffled mini-batches,
    one optimizer step per mini-batch.

    * ``kl_coef``: the initial coefficient (TRL's default, 0.05); ``adaptive_kl=True`` then
      adapts it towards ``kl_target`` nats per sequence with ``kl_horizon``
      (:class:`AdaptiveKLController`; with 64 samples a step the coefficient moves by at
      most 4% a step), ``adaptive_kl=False`` keeps it fixed. ``kl_estimator``: k1 (TRL's
      default), k3, abs or k2.
    * ``whiten_advantages``: whiten the advantages over the batch's completion tokens
      (TRL always does); ``cliprange_value=None`` turns value clipping off.
    * ``value_head_std``: the value model's head starts at ``N(0, std^2)``; 0 starts every
      value at exactly 0.
    """

    batch_size: int = 64
    num_generations: int = 1
    temperature: float = 1.0
    max_new_tokens: int = MAX_NEW_TOKENS
    num_ppo_epochs: int = 4
    num_mini_batches: int = 2
    lr: float = 1e-4
    max_grad_norm: float = 1.0
    cliprange: float = 0.2
    cliprange_value: float | None = 0.2
    vf_coef: float = 0.1
    gamma: float = 1.0
    lam: float = 0.95
    kl_coef: float = 0.05
    kl_estimator: Literal["k1", "abs", "k2", "k3"] = "k1"
    adaptive_kl: bool = True
    kl_target: float = 2.0
    kl_horizon: float = 320.0
    whiten_advantages: bool = True
    value_head_std: float = 0.0

    def __post_init__(self) -> None:
        for name in ("batch_size", "num_generations", "num_ppo_epochs", "num_mini_batches"):
            check_int(name, getattr(self, name), low=1)
        check_int("max_new_tokens", self.max_new_tokens, low=1)
        check_float("temperature", self.temperature, low=0.0, low_open=True)
        check_float("lr", self.lr, low=0.0, low_open=True)
        check_float("max_grad_norm", self.max_grad_norm, low=0.0, low_open=True)
        check_float("cliprange", self.cliprange, low=0.0, low_open=True)
        check_float(
            "cliprange_value", self.cliprange_value, low=0.0, low_open=True, allow_none=True
        )
        check_float("vf_coef", self.vf_coef, low=0.0)
        check_float("gamma", self.gamma, low=0.0, high=1.0)
        check_float("lam", self.lam, low=0.0, high=1.0)
        check_float("kl_coef", self.kl_coef, low=0.0)
        check_choice("kl_estimator", self.kl_estimator, KL_ESTIMATORS)
        check_float("kl_target", self.kl_target, low=0.0, low_open=True)
        check_float("kl_horizon", self.kl_horizon, low=0.0, low_open=True)
        check_float("value_head_std", self.value_head_std, low=0.0)
        rows = self.batch_size * self.num_generations
        if rows % self.num_mini_batches:
            raise ValueError(
                f"batch_size * num_generations = {rows} rows must split evenly into "
                f"num_mini_batches = {self.num_mini_batches}"
            )
        if self.adaptive_kl and self.kl_coef == 0:
            raise ValueError("adaptive_kl needs kl_coef > 0 to start from")

    def replace(self, **changes: object) -> PPOConfig:
        """A copy with some fields changed (``dataclasses.replace``)."""
        return dataclasses.replace(self, **changes)


@dataclass
class PPOBatch:
    """One step's experience: the rollout and everything PPO computes from it.

    Attributes:
        rollout: the sampled completions with old and reference log-probs
            (:class:`tutorial_code.rl.Rollout`).
        mask: ``(B, T)`` float, 1 on completion tokens.
        scores: ``(B,)`` the score each sequence is rewarded with (checker or reward model).
        rm_scores: ``(B,)`` the reward model's scores, if there is a reward model.
        values: ``(B, T)`` the value model's ``V_t`` when sampled (0 on padding).
        kl: ``(B, T)`` the configured estimator of the per-token KL (0 on padding).
        rewards, advantages, returns: ``(B, T)``; advantages whitened if configured.
    """

    rollout: Rollout
    mask: torch.Tensor
    scores: torch.Tensor
    rm_scores: torch.Tensor | None
    values: torch.Tensor
    kl: torch.Tensor
    rewards: torch.Tensor
    advantages: torch.Tensor
    returns: torch.Tensor


class PPOTrainer:
    """PPO on the testbed: policy, value model, frozen reference, reward, KL controller.

    The policy starts as ``load_checkpoint("sft")`` (or ``policy``) and the reference is a
    frozen copy of it; the value model is a separate :class:`RewardModel` on another copy
    of the same backbone, as in TRL (see the chapter for why). One AdamW optimizer trains
    both on ``pg_loss + vf_coef * vf_loss``; the gradient norm of both together is clipped.
    Sampling, the training problems and the mini-batch order are seeded by ``seed``
    through the harness (:class:`tutorial_code.rl.PolicyTrainer`), whose ``log`` this
    trainer fills.

    Args:
        config: the hyper-parameters.
        seed: the run's seed.
        reward: ``"checker"`` (the task's program) or ``"reward_model"``.
        reward_model: the frozen :class:`RewardModel` (required for
            ``reward="reward_model"``; with ``"checker"`` its score is logged, not used).
        policy: the starting policy (default ``load_checkpoint("sft")``; used in place).
        eval_problems: greedy evaluation problems (default 200 of the validation split).
        eval_every: evaluate every so many steps (and before the first and after the last).
    """

    def __init__(
        self,
        config: PPOConfig = PPOConfig(),
        *,
        seed: int = 0,
        reward: Literal["checker", "reward_model"] = "checker",
        reward_model: RewardModel | None = None,
        policy: GPTModel | None = None,
        eval_problems: Sequence[Problem] | None = None,
        eval_every: int = 10,
    ) -> None:
        from tutorial_code.checkpoints import load_checkpoint

        if not isinstance(config, PPOConfig):
            raise TypeError(f"config must be a PPOConfig, got {type(config).__name__}")
        check_choice("reward", reward, REWARDS)
        if reward_model is not None:
            check_module("reward_model", reward_model, RewardModel)
            reward_model.eval().requires_grad_(False)
        elif reward == "reward_model":
            raise ValueError(
                "reward='reward_model' needs a reward_model (e.g. train_reward_model()[0])"
            )
        self.config = config
        self.reward = reward
        self.reward_model = reward_model
        policy = load_checkpoint("sft") if policy is None else policy
        check_module("policy", policy, GPTModel)
        self.value_model = RewardModel(
            copy.deepcopy(policy),
            head_std=config.value_head_std,
            generator=torch.Generator().manual_seed(seed),
        )
        optimizer = torch.optim.AdamW(
            [*policy.parameters(), *self.value_model.used_parameters()],
            lr=config.lr,
            weight_decay=0.0,
        )
        self.harness = PolicyTrainer(
            policy,
            optimizer=optimizer,
            max_grad_norm=config.max_grad_norm,
            seed=seed,
            eval_problems=eval_problems,
            eval_every=eval_every,
        )
        if config.adaptive_kl:
            self.kl_ctl: FixedKLController | AdaptiveKLController = AdaptiveKLController(
                config.kl_coef, config.kl_target, config.kl_horizon
            )
        else:
            self.kl_ctl = FixedKLController(config.kl_coef)
        self.samples = 0
        self.train_seconds = 0.0

    @property
    def policy(self) -> GPTModel:
        return self.harness.policy

    @property
    def ref_model(self) -> GPTModel:
        return self.harness.ref_model

    @property
    def log(self) -> AlignmentLog:
        return self.harness.log

    @torch.no_grad()
    def make_experience(self) -> PPOBatch:
        """Sample a batch and compute scores, values, per-token rewards and advantages."""
        cfg = self.config
        rollout = self.harness.rollout(
            self.harness.sample_problems(cfg.batch_size),
            num_generations=cfg.num_generations,
            temperature=cfg.temperature,
            max_new_tokens=cfg.max_new_tokens,
        )
        mask = rollout.completion_mask.float()
        token_mask = rollout_token_mask(rollout)
        rm_scores = None
        if self.reward_model is not None:
            rm_scores = self.reward_model(rollout.input_ids, attention_mask=token_mask)
        scores = rm_scores if self.reward == "reward_model" else rollout.rewards.float()
        self.value_model.eval()
        values = (
            self.value_model.completion_values(
                rollout.input_ids,
                attention_mask=rollout.attention_mask,
                logits_to_keep=rollout.logits_to_keep,
            )
            * mask
        )
        kl = kl_estimate(rollout.old_logprobs, rollout.ref_logprobs, cfg.kl_estimator) * mask
        rewards = per_token_rewards(
            scores,
            rollout.old_logprobs,
            rollout.ref_logprobs,
            mask,
            kl_coef=self.kl_ctl.value,
            estimator=cfg.kl_estimator,
        )
        advantages, returns = compute_gae(rewards, values, mask, gamma=cfg.gamma, lam=cfg.lam)
        if cfg.whiten_advantages:
            advantages = masked_whiten(advantages, mask) * mask
        return PPOBatch(
            rollout=rollout,
            mask=mask,
            scores=scores,
            rm_scores=rm_scores,
            values=values,
            kl=kl,
            rewards=rewards,
            advantages=advantages,
            returns=returns,
        )

    def loss(self, batch: PPOBatch, rows: torch.Tensor) -> tuple[torch.Tensor, dict[str, float]]:
        """The loss to minimise on the mini-batch ``rows`` of ``batch``, and its statistics.

        ``loss = pg_loss + vf_coef * vf_loss``: the clipped policy loss (the negative of the
        objective PPO maximises) plus the clipped value loss. The KL penalty is not a term
        here: it is already inside the rewards, hence inside the advantages.
        """
        cfg = self.config
        rollout = batch.rollout
        ids, attention = rollout.input_ids[rows], rollout.attention_mask[rows]
        mask = batch.mask[rows]
        logprobs = completion_logprobs(
            self.policy, ids, attention_mask=attention, logits_to_keep=mask.shape[1]
        )
        vpred = self.value_model.completion_values(
            ids, attention_mask=attention, logits_to_keep=mask.shape[1]
        )
        old_logprobs = rollout.old_logprobs[rows]
        pg_loss, clipfrac = ppo_policy_loss(
            logprobs, old_logprobs, batch.advantages[rows], mask, cliprange=cfg.cliprange
        )
        vf_loss = ppo_value_loss(
            vpred,
            batch.values[rows],
            batch.returns[rows],
            mask,
            cliprange_value=cfg.cliprange_value,
        )
        loss = pg_loss + cfg.vf_coef * vf_loss
        log_ratio = logprobs.detach() - old_logprobs
        stats = {
            "pg_loss": pg_loss.item(),
            "vf_loss": vf_loss.item(),
            "clipfrac": clipfrac.item(),
            "approxkl": (0.5 * masked_mean(log_ratio**2, mask)).item(),  # TRL's approxkl
        }
        return loss, stats

    def update(self, batch: PPOBatch) -> dict[str, float]:
        """``num_ppo_epochs`` passes over ``batch`` in shuffled mini-batches, one optimizer
        step each; the means of the losses and diagnostics over those steps."""
        cfg = self.config
        n_rows = batch.rollout.input_ids.shape[0]
        size = n_rows // cfg.num_mini_batches
        self.policy.train()
        self.value_model.train()
        totals: dict[str, float] = {}
        for _ in range(cfg.num_ppo_epochs):
            order = torch.randperm(n_rows, generator=self.harness.generator)
            for start in range(0, n_rows, size):
                loss, stats = self.loss(batch, order[start : start + size])
                stats["grad_norm"] = self.harness.update(loss)
                stats["loss"] = loss.item()
                for key, value in stats.items():
                    totals[key] = totals.get(key, 0.0) + value
        n = cfg.num_ppo_epochs * cfg.num_mini_batches
        return {key: value / n for key, value in totals.items()}

    def step(self) -> dict[str, float]:
        """One PPO step (experience, then updates, then the KL controller); the step's
        record, also appended to :attr:`log`."""
        start = time.perf_counter()
        batch = self.make_experience()
        kl_coef = self.kl_ctl.value
        stats = self.update(batch)
        mask = batch.mask
        sequence_kl = batch.kl.sum(dim=1).mean().item()  # the estimator, nats per sequence
        self.kl_ctl.update(sequence_kl, batch.rollout.input_ids.shape[0])
        self.train_seconds += time.perf_counter() - start
        self.samples += batch.rollout.input_ids.shape[0]
        self.harness.step += 1
        rollout_stats = batch.rollout.stats()
        row = {
            "step": self.harness.step,
            **rollout_stats,
            "kl_sequence": batch.rollout.kl.sum(dim=1).mean().item(),
            "kl_estimate_sequence": sequence_kl,
            "score": batch.scores.double().mean().item(),
            "kl_coef": kl_coef,
            "non_score_reward": (batch.rewards.sum(dim=1) - batch.scores).mean().item(),
            "value_mean": masked_mean(batch.values, mask).item(),
            "return_mean": masked_mean(batch.returns, mask).item(),
            **stats,
            "samples": self.samples,
            "seconds": self.train_seconds,
        }
        if batch.rm_scores is not None:
            row["rm_score"] = batch.rm_scores.double().mean().item()
        self.log.steps.append(row)
        return row

    def evaluate(self) -> dict[str, float]:
        """Greedy evaluation on the held-out problems: ``accuracy``, ``trace_fraction``,
        ``length`` (as :meth:`tutorial_code.rl.PolicyTrainer.evaluate`), the reward model's
        mean score of those completions (``rm_score``, if there is a reward model), and the
        ``samples`` and training ``seconds`` so far; appended to :attr:`log` and returned."""
        problems = self.harness.eval_problems
        result = evaluate_greedy(self.policy, problems)
        row = {
            "step": self.harness.step,
            "accuracy": result.accuracy,
            "trace_fraction": result.trace_fraction,
            "length": result.mean_length,
            "samples": self.samples,
            "seconds": self.train_seconds,
        }
        if self.reward_model is not None:
            prompts = [p.prompt for p in problems]
            scores = score_texts(self.reward_model, prompts, result.completions)
            row["rm_score"] = scores.double().mean().item()
        self.log.evals.append(row)
        return row

    def train(self, steps: int, *, time_budget_s: float | None = None) -> AlignmentLog:
        """Run up to ``steps`` PPO steps, or fewer if the training time (sampling, scoring
        and updates; evaluations excluded) reaches ``time_budget_s``. Evaluates before the
        first step (if the log has none yet), every ``eval_every`` steps and after the last.
        """
        check_int("steps", steps, low=1)
        check_float("time_budget_s", time_budget_s, low=0.0, low_open=True, allow_none=True)
        if not self.log.evals:
            self.evaluate()
        for _ in range(steps):
            if time_budget_s is not None and self.train_seconds >= time_budget_s:
                break
            self.step()
            if self.harness.step % self.harness.eval_every == 0:
                self.evaluate()
        if self.log.evals[-1]["step"] != self.harness.step:
            self.evaluate()
        return self.log


def train_ppo(
    config: PPOConfig = PPOConfig(),
    *,
    seed: int,
    steps: int,
    reward: Literal["checker", "reward_model"] = "checker",
    reward_model: RewardModel | None = None,
    eval_every: int = 10,
    time_budget_s: float | None = None,
) -> AlignmentLog:
    """PPO from ``load_checkpoint("sft")``: the entry point for comparing methods.

    Runs :class:`PPOTrainer` for ``steps`` steps (or until ``time_budget_s`` seconds of
    training, evaluations excluded) and returns its log. ``log.steps`` has, per step, the
    batch's checker ``reward`` and ``accuracy``, the ``score`` it was trained on,
    ``rm_score`` (with a reward model), the exact per-token ``kl`` to the reference and its
    per-sequence sum ``kl_sequence``, ``length``, ``trace_fraction``, ``kl_coef``, the
    losses, ``clipfrac``, ``approxkl``, ``grad_norm``, ``samples`` so far and training
    ``seconds``; ``log.evals`` has greedy held-out ``accuracy``, ``length``,
    ``trace_fraction`` (and ``rm_score``) every ``eval_every`` steps. Use
    :class:`PPOTrainer` directly to keep the trained policy.
    """
    trainer = PPOTrainer(
        config, seed=seed, reward=reward, reward_model=reward_model, eval_every=eval_every
    )
    return trainer.train(steps, time_budget_s=time_budget_s)


# --------------------------------------------------------------------------------------
# Memory of the four models
# --------------------------------------------------------------------------------------


def rlhf_memory(
    n_params: float,
    *,
    value_params: float | None = None,
    reward_params: float | None = None,
    shared_value_backbone: bool = False,
    frozen_dtype: torch.dtype = torch.bfloat16,
) -> dict[str, float]:
    """Bytes of the model states RLHF-PPO holds for a policy of ``n_params`` parameters.

    The policy and the value model are trained with mixed-precision Adam, 16 bytes per
    parameter (:func:`tutorial_code.costs.training_memory`); the reference model (the
    policy's size) and the reward model are frozen weights in ``frozen_dtype``. The value
    and reward models default to the policy's size; InstructGPT paired its 175B policy with
    a 6B reward model and a 6B value function. With ``shared_value_backbone`` the value
    model is a head on the policy's backbone and costs nothing extra. Activations, the KV
    cache of generation and temporary buffers come on top. Returns bytes per model and the
    ``"total"``.
    """
    n = check_float("n_params", n_params, low=0.0, low_open=True)
    n_value = check_float("value_params", n if value_params is None else value_params, low=0.0)
    n_reward = check_float("reward_params", n if reward_params is None else reward_params, low=0.0)
    check_choice("frozen_dtype", frozen_dtype, DTYPE_BYTES)
    rows = {
        "policy": training_memory(n).model_states,
        "value": 0.0 if shared_value_backbone else training_memory(n_value).model_states,
        "reference": n * DTYPE_BYTES[frozen_dtype],
        "reward": n_reward * DTYPE_BYTES[frozen_dtype],
    }
    rows["total"] = sum(rows.values())
    return rows
