"""DAPO: GRPO with decoupled clipping, dynamic sampling, token-level loss and length shaping.

DAPO (Yu et al., 2025, "DAPO: An Open-Source LLM Reinforcement Learning System at Scale",
arXiv:2503.14476) keeps GRPO's group-relative advantages (:mod:`tutorial_code.grpo`) and
changes six things, each of which is one argument or one small function here:

* **Clip-Higher** (section 3.1): a wider upper clip, ``epsilon_high = 0.28`` beside
  ``epsilon = 0.2``, passed to :func:`tutorial_code.grpo.grpo_loss`;
  :func:`probability_bounds` gives the probabilities a token can reach before the clip stops
  its gradient;
* **Dynamic Sampling** (section 3.2): :func:`filter_groups` keeps the groups whose checker
  rewards are not all equal, and :func:`dynamic_sampling_rollout` samples more prompts until
  the batch holds ``prompts_per_step`` such groups, at most ``max_num_gen_batches`` rounds;
* **Token-level policy-gradient loss** (section 3.3, eq. 12):
  ``loss_type="dapo"`` in :func:`~tutorial_code.grpo.grpo_loss`, which divides by the
  completion tokens of the whole generation batch (``num_items_in_batch``) when the batch is
  split into micro-batches;
* **Overlong reward shaping** (section 3.4, eq. 13): :func:`overlong_penalty`, added to the
  ``+1 / -1`` correctness reward by :func:`dapo_rewards`;
* **Overlong filtering** (section 3.4): :func:`overlong_filter_mask` drops truncated
  completions from the loss;
* **No KL term** (section 2.3): ``beta = 0``; a long-reasoning policy is meant to move far from
  where it started, so DAPO does not hold it near a reference model.

:class:`DAPOConfig` collects the switches, with the values we use on the book's small task as
defaults and the paper's values in :meth:`DAPOConfig.paper` and the ``PAPER_*`` constants;
:func:`train_dapo` runs :func:`tutorial_code.grpo.train_grpo` with DAPO's rollout, reward and
loss-mask hooks and returns the same :class:`~tutorial_code.rl.AlignmentLog`.

Shapes: ``N = groups x group_size`` completions ordered group by group, ``n`` completion
tokens per row (padded); ``(N,)`` per-completion and ``(N, n)`` per-token tensors.
"""

from __future__ import annotations

import dataclasses
import functools
import warnings
from collections.abc import Sequence
from dataclasses import dataclass

import torch

from tutorial_code.checks import (
    check_choice,
    check_float,
    check_int,
    check_module,
    check_tensor,
)
from tutorial_code.grpo import (
    GRPOConfig,
    concat_rollouts,
    online_rollout,
    select_groups,
    train_grpo,
    truncated_completions,
    zero_std_groups,
)
from tutorial_code.model import GPTModel
from tutorial_code.rl import AlignmentLog, PolicyTrainer, Rollout
from tutorial_code.task import Problem, sample_problems

__all__ = [
    "ON_MAX_NUM_GEN_BATCHES",
    "PAPER_BETA",
    "PAPER_EPSILON",
    "PAPER_EPSILON_HIGH",
    "PAPER_GEN_BATCH_SIZE",
    "PAPER_LR",
    "PAPER_MAX_NUM_GEN_BATCHES",
    "PAPER_MAX_RESPONSE_LENGTH",
    "PAPER_NUM_GENERATIONS",
    "PAPER_OVERLONG_BUFFER_LEN",
    "PAPER_PROMPTS_PER_STEP",
    "PAPER_TABLE1_AIME",
    "PAPER_UPDATES_PER_ROLLOUT",
    "DAPOConfig",
    "dapo_rewards",
    "dapo_rollout",
    "dynamic_sampling_rollout",
    "filter_groups",
    "overlong_filter_mask",
    "overlong_penalty",
    "probability_bounds",
    "train_dapo",
]

# --------------------------------------------------------------------------------------
# The paper's settings (Qwen2.5-32B on DAPO-Math-17K; Yu et al., 2025, section 4.1, and
# verl's recipe recipe/dapo/run_dapo_qwen2.5_32b.sh)
# --------------------------------------------------------------------------------------

#: Lower clip ``1 - epsilon`` of the probability ratio (verl: ``clip_ratio_low``).
PAPER_EPSILON = 0.2
#: Upper clip ``1 + epsilon_high`` (Clip-Higher; verl: ``clip_ratio_high``).
PAPER_EPSILON_HIGH = 0.28
#: Most tokens generated per response: 16,384 expected plus the 4,096-token cache.
PAPER_MAX_RESPONSE_LENGTH = 20_480
#: The soft-punishment cache ``L_cache`` of eq. 13 (verl: ``overlong_buffer.len``).
PAPER_OVERLONG_BUFFER_LEN = 4_096
#: Responses sampled per prompt (a group).
PAPER_NUM_GENERATIONS = 16
#: Prompts per training step (verl: ``train_batch_size``).
PAPER_PROMPTS_PER_STEP = 512
#: Prompts per generation round of dynamic sampling (verl: ``gen_batch_size = 3 x 512``).
PAPER_GEN_BATCH_SIZE = 1_536
#: Cap on generation rounds per step (verl: ``filter_groups.max_num_gen_batches``).
PAPER_MAX_NUM_GEN_BATCHES = 10
#: AdamW learning rate (with a linear warm-up over the first 20 rollout steps).
PAPER_LR = 1e-6
#: No KL penalty (section 2.3).
PAPER_BETA = 0.0
#: Optimizer steps per rollout step: 512 x 16 responses in mini-batches of 512, so every
#: step after the first is off-policy and the clip can act.
PAPER_UPDATES_PER_ROLLOUT = 16
#: The paper's Table 1: AIME 2024 accuracy (avg@32, %) as each technique is added in turn.
PAPER_TABLE1_AIME = {
    "naive GRPO": 30,
    "+ overlong filtering": 36,
    "+ clip-higher": 38,
    "+ soft overlong punishment": 41,
    "+ token-level loss": 42,
    "+ dynamic sampling (DAPO)": 50,
}

#: What :func:`dynamic_sampling_rollout` does when the cap on rounds is reached.
ON_MAX_NUM_GEN_BATCHES = ("raise", "warn")


# --------------------------------------------------------------------------------------
# Clip-Higher
# --------------------------------------------------------------------------------------


def probability_bounds(
    old_probs: torch.Tensor, *, epsilon: float = 0.2, epsilon_high: float | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """How far one update can move a token's probability before the clip stops its gradient.

    With ``rho = pi / pi_old`` clipped to ``[1 - epsilon, 1 + epsilon_high]``, a token with a
    positive advantage stops receiving gradient once ``pi > (1 + epsilon_high) pi_old``, and
    one with a negative advantage once ``pi < (1 - epsilon) pi_old`` (DAPO, section 3.1).
    Returns ``((1 - epsilon) pi_old, (1 + epsilon_high) pi_old)``, each shaped like
    ``old_probs``; ``epsilon_high=None`` means ``epsilon``. An upper bound above 1 is no
    constraint at all. The room is proportional to ``pi_old``: with ``epsilon = 0.2`` a token
    at 0.01 can reach 0.012 and one at 0.9 can reach 1.08 (the paper's example), so a rare
    token can barely grow; ``epsilon_high = 0.28`` lets it reach 0.0128.
    """
    check_tensor("old_probs", old_probs, dtype="float")
    if bool(((old_probs < 0) | (old_probs > 1)).any()):
        raise ValueError("old_probs must hold probabilities in [0, 1]")
    low = check_float("epsilon", epsilon, low=0.0, high=1.0, low_open=True, high_open=True)
    high = (
        low
        if epsilon_high is None
        else check_float("epsilon_high", epsilon_high, low=0.0, low_open=True)
    )
    return (1.0 - low) * old_probs, (1.0 + high) * old_probs


# --------------------------------------------------------------------------------------
# Dynamic sampling
# --------------------------------------------------------------------------------------


def filter_groups(rewards: torch.Tensor, group_size: int) -> torch.Tensor:
    """``(groups,)`` bool: keep the groups whose rewards are not all equal (std > 0).

    DAPO's dynamic sampling (section 3.2; verl's ``filter_groups`` with ``metric: acc``) drops
    a group when all its completions are right or all are wrong: its advantages are all 0,
    so it adds nothing to the policy gradient but still dilutes the batch. ``rewards`` ``(N,)``
    are the checker's rewards, ordered group by group (``N = groups x group_size``). A group
    of one completion is dropped too (its advantage is 0 here); verl keeps such groups,
    because its GRPO advantage of a lone completion is its raw score. The complement of
    :func:`tutorial_code.grpo.zero_std_groups`, which decides "all equal" exactly.
    """
    return ~zero_std_groups(rewards, group_size)


def _round_problems(trainer: PolicyTrainer, n: int, round_: int) -> list[Problem]:
    """The problems of generation round ``round_`` of the trainer's current step.

    Round 0 draws what plain GRPO would (:meth:`PolicyTrainer.sample_problems`), so a run
    with dynamic sampling sees the same first prompts as one without; later rounds draw
    from a separate stream of seeds (negative, so never one the trainer itself uses).
    """
    if round_ == 0:
        return trainer.sample_problems(n)
    seed = -((trainer.seed + 1) * 10**9 + trainer.step * 10**3 + round_)
    return sample_problems(n, split="train", seed=seed)


def _sampled_stats(rounds: int, samples: int, groups: int, constant: int) -> dict[str, float]:
    return {
        "num_gen_batches": float(rounds),
        "samples": float(samples),
        "sampled_groups": float(groups),
        "sampled_frac_zero_std": constant / groups,
    }


def dynamic_sampling_rollout(
    trainer: PolicyTrainer, config: DAPOConfig
) -> tuple[Rollout, dict[str, float]]:
    """Over-sample prompts until the batch has ``config.prompts_per_step`` informative groups.

    Each generation round samples ``config.num_generations`` completions for each of
    ``config.gen_batch_size`` fresh training problems (default ``prompts_per_step``) and keeps
    the groups :func:`filter_groups` accepts (checker rewards not all equal). Rounds continue
    until enough groups are kept; the batch is then cut to exactly ``prompts_per_step``
    groups, in the order they were sampled (verl's ``DAPORayTrainer``). The policy does not
    change between rounds, so every kept completion is on-policy.

    At most ``config.max_num_gen_batches`` rounds: if they do not find enough groups,
    ``config.on_max_num_gen_batches="raise"`` raises ``RuntimeError`` (as verl does) and
    ``"warn"`` warns and returns the groups found so far (a smaller batch; still
    ``RuntimeError`` if there is none). So the sampler always terminates and never returns a
    group without signal.

    Returns the batch and what it cost, for the log: ``num_gen_batches`` (rounds),
    ``samples`` (completions generated, kept or not), ``sampled_groups`` and
    ``sampled_frac_zero_std`` (the fraction of the sampled groups that were dropped).
    """
    check_module("config", config, DAPOConfig)
    target = config.prompts_per_step
    per_round = config.gen_batch_size or target
    kept: list[Rollout] = []
    n_kept = samples = groups = constant = 0
    rounds = 0
    while n_kept < target and rounds < config.max_num_gen_batches:
        problems = _round_problems(trainer, per_round, rounds)
        batch = trainer.rollout(
            problems,
            num_generations=config.num_generations,
            temperature=config.temperature,
            max_new_tokens=config.max_completion_length,
        )
        rounds += 1
        keep = filter_groups(batch.rewards, config.num_generations)
        samples += batch.rewards.shape[0]
        groups += keep.shape[0]
        constant += int((~keep).sum())
        if bool(keep.any()):
            kept.append(select_groups(batch, keep))
            n_kept += int(keep.sum())
    if n_kept < target:
        message = (
            f"dynamic sampling kept {n_kept} of the {target} groups it needs after "
            f"{rounds} generation rounds ({groups} groups sampled, {constant} all right or all "
            "wrong): the problems are too easy or too hard for the policy; raise "
            "max_num_gen_batches"
        )
        if config.on_max_num_gen_batches == "raise":
            raise RuntimeError(message + " or set on_max_num_gen_batches='warn'")
        if n_kept == 0:
            raise RuntimeError(message + "; there is no group to train on")
        warnings.warn(message + "; training on the smaller batch", RuntimeWarning, stacklevel=2)
    batch = concat_rollouts(kept)
    if n_kept > target:
        batch = select_groups(batch, torch.arange(n_kept) < target)
    return batch, _sampled_stats(rounds, samples, groups, constant)


def dapo_rollout(trainer: PolicyTrainer, config: DAPOConfig) -> tuple[Rollout, dict[str, float]]:
    """The batch of one DAPO step: :func:`dynamic_sampling_rollout` if
    ``config.dynamic_sampling``, else GRPO's batch (the same problems and samples as
    :func:`tutorial_code.grpo.online_rollout`) with the same statistics, so that every run
    logs ``sampled_frac_zero_std``: the fraction of sampled groups without signal."""
    check_module("config", config, DAPOConfig)
    if config.dynamic_sampling:
        return dynamic_sampling_rollout(trainer, config)
    batch = online_rollout(trainer, config)
    constant = int(zero_std_groups(batch.rewards, config.num_generations).sum())
    return batch, _sampled_stats(1, batch.rewards.shape[0], config.prompts_per_step, constant)


# --------------------------------------------------------------------------------------
# Overlong reward shaping and overlong filtering
# --------------------------------------------------------------------------------------


def overlong_penalty(
    lengths: torch.Tensor,
    *,
    max_length: int,
    cache_length: int,
    penalty_factor: float = 1.0,
) -> torch.Tensor:
    """DAPO's soft overlong punishment (eq. 13), a float tensor shaped like ``lengths``.

    With ``L_max = max_length`` and ``L_cache = cache_length``::

        R_length(L) = 0                                  if L <= L_max - L_cache
                    = ((L_max - L_cache) - L) / L_cache  if L_max - L_cache < L <= L_max
                    = -1                                 if L > L_max

    The penalty grows linearly from 0 to -1 across the last ``cache_length`` tokens before the
    limit (the soft band), so a response that is merely long is penalised a little and one
    that runs into the limit fully; it is added to the correctness reward. Example:
    ``max_length=100, cache_length=20``: lengths 80, 90, 100, 101 give 0, -0.5, -1, -1.
    ``penalty_factor`` scales it (verl's ``overlong_buffer.penalty_factor``; the paper's is 1).
    verl computes ``min(-(L - (L_max - L_cache)) / L_cache, 0)``, the same up to ``L_max``;
    it never sees ``L > L_max`` because generation stops there.

    Args:
        lengths: completion lengths in tokens (any shape, integer or float, ``>= 0``).
        max_length: ``L_max``, the generation limit.
        cache_length: ``L_cache``, the width of the soft band, ``1 <= cache_length <=
            max_length``.
    """
    check_tensor("lengths", lengths)
    if lengths.dtype == torch.bool or bool((lengths < 0).any()):
        raise ValueError("lengths must be non-negative token counts")
    check_int("max_length", max_length, low=1)
    check_int("cache_length", cache_length, low=1, high=max_length)
    factor = check_float("penalty_factor", penalty_factor, low=0.0)
    expected = max_length - cache_length  # L_max - L_cache: the longest unpenalised length
    lengths = lengths.to(torch.get_default_dtype())
    soft = (expected - lengths) / cache_length
    penalty = torch.where(
        lengths <= expected,
        torch.zeros_like(lengths),
        torch.where(lengths <= max_length, soft, torch.full_like(lengths, -1.0)),
    )
    return factor * penalty


def dapo_rewards(batch: Rollout, config: DAPOConfig) -> torch.Tensor:
    """``(B,)`` DAPO's reward: ``+1`` if the checker accepts the answer, ``-1`` if not
    (section 2.4), plus :func:`overlong_penalty` of the completion's length (EOS included)
    with ``max_length = config.max_completion_length`` and ``cache_length =
    config.overlong_buffer_len`` when that is set.

    Mapping the checker's 0/1 to -1/+1 alone changes no advantage (group normalisation
    removes any shift and scale); it sets the scale the penalty is measured against: a right
    answer in the middle of the soft band (-0.5) still beats a wrong one by 1.5.
    """
    check_module("batch", batch, Rollout)
    check_module("config", config, DAPOConfig)
    rewards = 2.0 * batch.rewards - 1.0
    if config.overlong_buffer_len is None:
        return rewards
    return rewards + overlong_penalty(
        batch.lengths,
        max_length=config.max_completion_length,
        cache_length=config.overlong_buffer_len,
        penalty_factor=config.overlong_penalty_factor,
    )


def overlong_filter_mask(completion_mask: torch.Tensor, truncated: torch.Tensor) -> torch.Tensor:
    """The loss mask ``(B, n)`` without the tokens of truncated completions.

    DAPO's overlong filtering (section 3.4): a completion cut by the generation limit is
    scored as wrong even when its reasoning was fine, so its tokens would be pushed down for
    being long, not for being wrong. Masking them removes that noise; they still count in
    their group's mean and standard deviation. ``completion_mask`` ``(B, n)`` 0/1 and
    ``truncated`` ``(B,)`` bool (:func:`tutorial_code.grpo.truncated_completions`); TRL's
    ``mask_truncated_completions`` does the same.
    """
    check_tensor("completion_mask", completion_mask, dim=2)
    check_tensor("truncated", truncated, dtype="bool", shape=(completion_mask.shape[0],))
    return completion_mask * (~truncated).to(completion_mask.dtype)[:, None]


def _overlong_filter_loss_mask(batch: Rollout) -> torch.Tensor:
    return overlong_filter_mask(batch.completion_mask, truncated_completions(batch))


# --------------------------------------------------------------------------------------
# The configuration and the trainer
# --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class DAPOConfig(GRPOConfig):
    """A DAPO run: :class:`~tutorial_code.grpo.GRPOConfig` with DAPO's switches.

    The defaults are what the book uses on its three-digit addition task (completions of at
    most 30 tokens, a 200k-parameter policy, one CPU thread); :meth:`paper` returns the
    paper's values. Switching every DAPO change off (``epsilon_high=None``,
    ``dynamic_sampling=False``, ``loss_type="grpo"``, ``overlong_buffer_len=None``,
    ``overlong_filtering=False``, ``beta=0.04``) gives plain GRPO, step for step.

    Attributes (beyond :class:`~tutorial_code.grpo.GRPOConfig`'s; changed defaults marked):
        beta: 0.0 (changed): no KL penalty (paper: 0).
        epsilon_high: 0.28 (changed): Clip-Higher (paper: 0.28).
        loss_type: ``"dapo"`` (changed): token-level loss (paper: token-mean).
        max_completion_length: 28 (changed): the generation limit ``L_max``. Two tokens
            short of the longest traced answer (30 tokens, e.g. ``999+999``), so truncation
            is real on our task, as 20,480 tokens is for the paper's long reasoning.
        num_iterations: 2 (changed): two passes over each batch, so the second is off-policy
            and the clip can act (the paper takes 16 mini-batch steps per rollout).
        dynamic_sampling: drop groups without signal and sample more (paper: on).
        gen_batch_size: prompts per generation round of dynamic sampling; ``None`` means
            ``prompts_per_step`` (paper: 3 x 512).
        max_num_gen_batches: most generation rounds per step (paper and verl: 10).
        on_max_num_gen_batches: ``"raise"`` (verl) or ``"warn"`` and train on fewer groups.
        overlong_buffer_len: ``L_cache`` of the soft overlong punishment, or ``None`` for no
            shaping (ours: 4, so traces of up to 24 tokens are free; paper: 4,096).
        overlong_penalty_factor: scale of the punishment (paper: 1).
        overlong_filtering: drop truncated completions from the loss (off in verl's recipe,
            whose documentation says the paper's best run did without it; the paper's Table 1
            adds it with the other changes).
    """

    beta: float = 0.0
    epsilon_high: float | None = 0.28
    loss_type: str = "dapo"
    max_completion_length: int = 28
    num_iterations: int = 2
    dynamic_sampling: bool = True
    gen_batch_size: int | None = None
    max_num_gen_batches: int = 10
    on_max_num_gen_batches: str = "raise"
    overlong_buffer_len: int | None = 4
    overlong_penalty_factor: float = 1.0
    overlong_filtering: bool = False

    def __post_init__(self) -> None:
        super().__post_init__()
        for name in ("dynamic_sampling", "overlong_filtering"):
            if not isinstance(getattr(self, name), bool):
                raise TypeError(f"{name} must be a bool, got {getattr(self, name)!r}")
        check_int("gen_batch_size", self.gen_batch_size, low=1, allow_none=True)
        check_int("max_num_gen_batches", self.max_num_gen_batches, low=1, high=1000)
        check_choice("on_max_num_gen_batches", self.on_max_num_gen_batches, ON_MAX_NUM_GEN_BATCHES)
        check_int(
            "overlong_buffer_len",
            self.overlong_buffer_len,
            low=1,
            high=self.max_completion_length,
            allow_none=True,
        )
        check_float("overlong_penalty_factor", self.overlong_penalty_factor, low=0.0)

    @classmethod
    def paper(cls) -> DAPOConfig:
        """The paper's settings for Qwen2.5-32B (section 4.1 and verl's recipe), as far as
        this config can state them: 16 mini-batch updates per rollout are not a field here
        (:data:`PAPER_UPDATES_PER_ROLLOUT`), so ``num_iterations`` is the paper's single pass.
        """
        return cls(
            num_generations=PAPER_NUM_GENERATIONS,
            prompts_per_step=PAPER_PROMPTS_PER_STEP,
            beta=PAPER_BETA,
            epsilon=PAPER_EPSILON,
            epsilon_high=PAPER_EPSILON_HIGH,
            loss_type="dapo",
            num_iterations=1,
            lr=PAPER_LR,
            max_completion_length=PAPER_MAX_RESPONSE_LENGTH,
            dynamic_sampling=True,
            gen_batch_size=PAPER_GEN_BATCH_SIZE,
            max_num_gen_batches=PAPER_MAX_NUM_GEN_BATCHES,
            overlong_buffer_len=PAPER_OVERLONG_BUFFER_LEN,
            overlong_penalty_factor=1.0,
            overlong_filtering=False,
        )

    @classmethod
    def grpo(cls, **changes: object) -> DAPOConfig:
        """Every DAPO change switched off (plain GRPO with the toy generation limit and
        ``num_iterations``), then ``changes`` applied: ``DAPOConfig.grpo(beta=0.0)`` is GRPO
        with one DAPO change."""
        off = cls(
            beta=0.04,
            epsilon_high=None,
            loss_type="grpo",
            dynamic_sampling=False,
            overlong_buffer_len=None,
            overlong_filtering=False,
        )
        return dataclasses.replace(off, **changes)


def train_dapo(
    config: DAPOConfig,
    *,
    seed: int,
    steps: int,
    eval_every: int = 10,
    time_budget_s: float | None = None,
    start: str | GPTModel = "sft",
    eval_problems: Sequence[Problem] | None = None,
) -> AlignmentLog:
    """Train a policy with DAPO on the addition task; the log of
    :func:`tutorial_code.grpo.train_grpo`.

    :func:`~tutorial_code.grpo.train_grpo` with three hooks: ``rollout_fn`` is
    :func:`dapo_rollout` (dynamic sampling when ``config.dynamic_sampling``), ``reward_fn`` is
    :func:`dapo_rewards` when ``config.overlong_buffer_len`` is set (otherwise the checker's
    0/1, which gives the same advantages as +1/-1), and ``loss_mask_fn`` drops truncated
    completions when ``config.overlong_filtering``. Clip-Higher, the token-level loss and
    ``beta = 0`` are fields the GRPO update reads. Arguments as in ``train_grpo``.

    Each ``log.steps`` row has ``train_grpo``'s keys (``accuracy`` from the checker,
    ``reward`` from the reward function, ``entropy``, ``kl``, ``frac_reward_zero_std`` of the
    trained batch, ``truncated_fraction``, ...) and :func:`dapo_rollout`'s:
    ``num_gen_batches``, ``samples`` (every completion generated), ``sampled_groups`` and
    ``sampled_frac_zero_std``.
    """
    check_module("config", config, DAPOConfig)
    reward_fn = (
        None
        if config.overlong_buffer_len is None
        else functools.partial(dapo_rewards, config=config)
    )
    loss_mask_fn = _overlong_filter_loss_mask if config.overlong_filtering else None
    return train_grpo(
        config,
        seed=seed,
        steps=steps,
        eval_every=eval_every,
        time_budget_s=time_budget_s,
        reward_fn=reward_fn,
        rollout_fn=dapo_rollout,
        loss_mask_fn=loss_mask_fn,
        start=start,
        eval_problems=eval_problems,
    )
