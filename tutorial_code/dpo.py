"""DPO: direct preference optimisation from pairs, its loss variants and a trainer (chapter 8).

Rafailov et al. (2023) show that the KL-regularised objective of RLHF,
``max_pi E[r(x, y)] - beta * KL(pi || pi_ref)``, has the closed-form optimum
``pi*(y|x) = pi_ref(y|x) exp(r(x, y) / beta) / Z(x)``; solving it for the reward and putting
that into the Bradley-Terry model turns preference learning into a classification loss on the
policy's own log-probabilities. No reward model is trained and nothing is sampled during
training. The pieces, each implemented once:

* :func:`dpo_loss`: the per-pair loss under TRL's ``loss_type`` names, ``"sigmoid"`` (DPO,
  conservative DPO with ``label_smoothing``), ``"robust"`` (Chowdhury et al., 2024),
  ``"hinge"`` (SLiC, Zhao et al., 2023) and ``"ipo"`` (Azar et al., 2023), with the implicit
  rewards ``beta * (log pi - log pi_ref)``; :func:`dpo_metrics` is what TRL logs
  (``rewards/chosen``, ``rewards/accuracies``, ``logps/chosen``, ...).
* :func:`preference_batch` and :func:`concatenated_forward`: chosen and rejected completions
  in one right-padded batch and one forward pass, prompt and padding masked, through
  :func:`tutorial_code.rl.sequence_logprobs`; :func:`reference_logps` runs the frozen
  reference model once per pair, in eval mode and without a graph.
* :class:`DPOConfig`, :class:`DPOTrainer` and :func:`train_dpo`: the whole pipeline on the
  testbed task, from the SFT checkpoint: pairs from the policy's own samples (chosen =
  correct, rejected = wrong), offline DPO, or online (iterated) DPO that samples fresh pairs
  from the current policy every few steps; logged with :class:`tutorial_code.rl.PolicyTrainer`.
* :func:`optimal_policy` and :func:`fit_tabular_dpo`: the derivation checked on a table,
  the exact KL-regularised optimum against a tabular policy fitted with the DPO loss.

Shapes: ``B`` pairs, ``S`` tokens per row, ``X`` prompts and ``Y`` responses of a table.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

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
from tutorial_code.model import GPTModel
from tutorial_code.rl import (
    AlignmentLog,
    PolicyTrainer,
    evaluate_sampling,
    generate_completions,
    kl_to_reference,
    sequence_logprobs,
)
from tutorial_code.task import (
    PAD,
    Problem,
    decode_completion,
    encode_prompts,
    preference_pairs,
    reward,
    sft_batch,
)

__all__ = [
    "LOSS_TYPES",
    "DPOConfig",
    "DPOTrainer",
    "PreferenceBatch",
    "concatenated_forward",
    "dpo_loss",
    "dpo_metrics",
    "fit_tabular_dpo",
    "optimal_policy",
    "preference_batch",
    "reference_logps",
    "sample_pairs",
    "train_dpo",
]

#: The loss functions of :func:`dpo_loss` (TRL's ``loss_type`` names).
LOSS_TYPES = ("sigmoid", "robust", "hinge", "ipo")


# --------------------------------------------------------------------------------------
# The loss and its metrics
# --------------------------------------------------------------------------------------


def _check_label_smoothing(label_smoothing: float, loss_type: str) -> float:
    if loss_type in ("sigmoid", "robust"):
        return check_float("label_smoothing", label_smoothing, low=0.0, high=0.5, high_open=True)
    value = check_float("label_smoothing", label_smoothing)
    if value != 0.0:
        raise ValueError(
            f"label_smoothing must be 0 for loss_type={loss_type!r} (it applies to 'sigmoid' "
            f"and 'robust'), got {value!r}"
        )
    return value


def dpo_loss(
    policy_chosen_logps: torch.Tensor,
    policy_rejected_logps: torch.Tensor,
    reference_chosen_logps: torch.Tensor,
    reference_rejected_logps: torch.Tensor,
    *,
    beta: float = 0.1,
    loss_type: str = "sigmoid",
    label_smoothing: float = 0.0,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Per-pair preference losses and implicit rewards, each ``(B,)`` (TRL's ``dpo_loss``).

    The inputs are ``log pi(y | x)`` of the chosen (``y_w``) and rejected (``y_l``)
    completions under the policy and the reference model. With the log-ratio margin
    ``delta = (log pi(y_w) - log pi_ref(y_w)) - (log pi(y_l) - log pi_ref(y_l))`` and
    ``eps = label_smoothing``:

    * ``"sigmoid"``: ``-(1 - eps) log sigma(beta delta) - eps log sigma(-beta delta)``.
      With ``eps = 0`` this is DPO (Rafailov et al., 2023, eq. 7); with ``eps > 0`` it is
      conservative DPO (Mitchell, 2023): the cross-entropy against a label that is right with
      probability ``1 - eps``, minimal at ``beta delta = log((1 - eps) / eps)``, not at
      infinity. ``eps`` in ``[0, 0.5)``.
    * ``"robust"``: ``(-(1 - eps) log sigma(beta delta) + eps log sigma(-beta delta)) /
      (1 - 2 eps)`` (Chowdhury et al., 2024, "Provably Robust DPO"): an unbiased estimate of
      the clean DPO loss when each label was flipped with probability ``eps`` in
      ``[0, 0.5)``.
    * ``"hinge"``: ``relu(1 - beta delta)`` (SLiC-HF, Zhao et al., 2023, with margin
      ``1 / beta``).
    * ``"ipo"``: ``(delta - 1 / (2 beta))^2`` (Azar et al., 2023, eq. 17, ``beta`` as their
      ``tau``): a squared loss whose minimum is a finite margin. Pass **length-averaged**
      log-probs (``average=True`` in :func:`concatenated_forward`), as the IPO authors and
      TRL do; with sums the target margin would not depend on the length.

    ``label_smoothing`` must be 0 for ``"hinge"`` and ``"ipo"``. (TRL up to 0.28 applied it
    to ``"sigmoid"`` in the same way; since 0.29 TRL ignores it for ``"sigmoid"``.)

    Returns:
        ``(losses, chosen_rewards, rejected_rewards)``: the losses (average them for the
        batch loss) and the implicit rewards ``beta (log pi - log pi_ref)`` of the chosen and
        rejected completions, detached (they are for logging).
    """
    check_tensor("policy_chosen_logps", policy_chosen_logps, dim=1, dtype="float")
    check_same_shape(
        policy_chosen_logps=policy_chosen_logps,
        policy_rejected_logps=policy_rejected_logps,
        reference_chosen_logps=reference_chosen_logps,
        reference_rejected_logps=reference_rejected_logps,
    )
    beta = check_float("beta", beta, low=0.0, low_open=True)
    check_choice("loss_type", loss_type, LOSS_TYPES)
    eps = _check_label_smoothing(label_smoothing, loss_type)

    chosen_logratios = policy_chosen_logps - reference_chosen_logps  # log pi/pi_ref (y_w)
    rejected_logratios = policy_rejected_logps - reference_rejected_logps  # ... (y_l)
    delta = chosen_logratios - rejected_logratios
    if loss_type == "sigmoid":
        # -(1 - eps) log sigma(beta delta) - eps log sigma(-beta delta)
        losses = -(1 - eps) * F.logsigmoid(beta * delta) - eps * F.logsigmoid(-beta * delta)
    elif loss_type == "robust":
        # the clean loss corrected for labels flipped with probability eps
        losses = (-(1 - eps) * F.logsigmoid(beta * delta) + eps * F.logsigmoid(-beta * delta)) / (
            1 - 2 * eps
        )
    elif loss_type == "hinge":
        losses = torch.relu(1 - beta * delta)  # max(0, 1 - beta delta)
    else:
        losses = (delta - 1 / (2 * beta)) ** 2  # (delta - 1 / (2 tau))^2
    chosen_rewards = beta * chosen_logratios.detach()
    rejected_rewards = beta * rejected_logratios.detach()
    return losses, chosen_rewards, rejected_rewards


def dpo_metrics(
    chosen_rewards: torch.Tensor,
    rejected_rewards: torch.Tensor,
    policy_chosen_logps: torch.Tensor,
    policy_rejected_logps: torch.Tensor,
) -> dict[str, float]:
    """The batch statistics TRL's ``DPOTrainer`` logs, under its names (all ``(B,)`` inputs).

    ``rewards/chosen`` and ``rewards/rejected`` (mean implicit rewards),
    ``rewards/accuracies`` (fraction of pairs with chosen reward strictly above rejected),
    ``rewards/margins`` (mean difference), ``logps/chosen`` and ``logps/rejected`` (mean
    policy log-probs of the completions).
    """
    check_tensor("chosen_rewards", chosen_rewards, dim=1, dtype="float")
    check_same_shape(
        chosen_rewards=chosen_rewards,
        rejected_rewards=rejected_rewards,
        policy_chosen_logps=policy_chosen_logps,
        policy_rejected_logps=policy_rejected_logps,
    )
    if chosen_rewards.numel() == 0:
        raise ValueError("the batch has no pairs")
    return {
        "rewards/chosen": chosen_rewards.mean().item(),
        "rewards/rejected": rejected_rewards.mean().item(),
        "rewards/accuracies": (chosen_rewards > rejected_rewards).float().mean().item(),
        "rewards/margins": (chosen_rewards - rejected_rewards).mean().item(),
        "logps/chosen": policy_chosen_logps.detach().mean().item(),
        "logps/rejected": policy_rejected_logps.detach().mean().item(),
    }


# --------------------------------------------------------------------------------------
# Pairs as one batch, and their log-probabilities
# --------------------------------------------------------------------------------------


@dataclass
class PreferenceBatch:
    """``B`` pairs as one right-padded batch: rows ``0 .. B-1`` are ``prompt + chosen + EOS``,
    rows ``B .. 2B-1`` are ``prompt + rejected + EOS`` (TRL's concatenated layout).

    Attributes:
        input_ids: ``(2B, S)`` token ids, padded on the right with ``PAD``.
        completion_mask: ``(2B, S)`` 1 on completion tokens and their EOS, 0 on the prompt
            and the padding.
    """

    input_ids: torch.Tensor
    completion_mask: torch.Tensor

    @property
    def num_pairs(self) -> int:
        return self.input_ids.shape[0] // 2

    @property
    def lengths(self) -> tuple[torch.Tensor, torch.Tensor]:
        """``(B,)`` completion lengths in tokens (EOS included) of chosen and rejected."""
        n = self.completion_mask.sum(dim=1)
        return n[: self.num_pairs], n[self.num_pairs :]


def _check_pairs(pairs: Sequence[Mapping[str, str]]) -> None:
    if isinstance(pairs, (str, bytes)) or not isinstance(pairs, Sequence) or not pairs:
        raise ValueError("pairs must be a non-empty sequence of {'prompt', 'chosen', 'rejected'}")
    for i, pair in enumerate(pairs):
        if not isinstance(pair, Mapping):
            raise TypeError(f"pairs[{i}] must be a dict, got {type(pair).__name__}")
        for key in ("prompt", "chosen", "rejected"):
            if not isinstance(pair.get(key), str):
                raise ValueError(f"pairs[{i}] must have a str {key!r}, got keys {sorted(pair)}")


def preference_batch(pairs: Sequence[Mapping[str, str]]) -> PreferenceBatch:
    """Tokenize pairs in TRL's explicit-prompt format into one :class:`PreferenceBatch`.

    Each row is built by :func:`tutorial_code.task.sft_batch`: the prompt, the completion and
    EOS, right-padded; the completion mask covers the completion and its EOS only. Right
    padding needs no attention mask: a causal model's real tokens never see the padding after
    them, and the mask keeps the padding out of the log-probs.
    """
    _check_pairs(pairs)
    prompts = [p["prompt"] for p in pairs]
    completions = [p["chosen"] for p in pairs] + [p["rejected"] for p in pairs]
    input_ids, completion_mask = sft_batch(prompts + prompts, completions)
    return PreferenceBatch(input_ids=input_ids, completion_mask=completion_mask)


def concatenated_forward(
    model: nn.Module, batch: PreferenceBatch, *, average: bool = False
) -> tuple[torch.Tensor, torch.Tensor]:
    """``(log pi(y_w | x), log pi(y_l | x))``, each ``(B,)``, from one forward pass.

    Chosen and rejected rows go through the model together (one batch of ``2B`` rows, as
    TRL's ``concatenated_forward``): half the calls, and both halves see the same mode of the
    model. Each log-prob is the sum over completion tokens (``average=True``: the mean, the
    length-normalised variant IPO expects) computed by
    :func:`tutorial_code.rl.sequence_logprobs`, which handles the one-position shift and
    excludes prompt and padding.
    """
    check_module("model", model)
    if not isinstance(batch, PreferenceBatch):
        raise TypeError(f"batch must be a PreferenceBatch, got {type(batch).__name__}")
    logps = sequence_logprobs(model, batch.input_ids, batch.completion_mask, average=average)
    return logps[: batch.num_pairs], logps[batch.num_pairs :]


@torch.no_grad()
def reference_logps(
    ref_model: nn.Module, batch: PreferenceBatch, *, average: bool = False
) -> tuple[torch.Tensor, torch.Tensor]:
    """:func:`concatenated_forward` of the frozen reference model: in eval mode (dropout
    off, so the same pair always gets the same numbers) and without building a graph. The
    model's mode is restored afterwards."""
    was_training = ref_model.training
    ref_model.eval()
    try:
        return concatenated_forward(ref_model, batch, average=average)
    finally:
        ref_model.train(was_training)


# --------------------------------------------------------------------------------------
# The pipeline on the testbed task
# --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class DPOConfig:
    """Hyper-parameters of :func:`train_dpo` (names as TRL's ``DPOConfig`` where it has one).

    Attributes:
        beta: the KL strength ``beta``; for ``"ipo"`` the regulariser ``tau``.
        loss_type: one of :data:`LOSS_TYPES`.
        label_smoothing: ``eps`` of conservative DPO (``"sigmoid"``) or robust DPO.
        average: length-averaged log-probs instead of sums; ``None`` means averaged for
            ``"ipo"`` and summed otherwise (as the DPO paper and TRL).
        lr: AdamW learning rate (no weight decay, no schedule).
        batch_size: pairs per optimizer step.
        max_grad_norm: global gradient-norm clipping (``None``: no clipping).
        n_problems: training problems sampled to build the offline pairs.
        num_generations: samples per problem from which a pair is taken (the first correct
            one is chosen, the first wrong one rejected).
        temperature: sampling temperature for the pairs.
        regenerate_every: online DPO samples new pairs from the current policy every this
            many steps.
        online_problems: problems sampled at each online regeneration.
    """

    beta: float = 0.1
    loss_type: str = "sigmoid"
    label_smoothing: float = 0.0
    average: bool | None = None
    lr: float = 3e-5
    batch_size: int = 32
    max_grad_norm: float | None = 1.0
    n_problems: int = 1024
    num_generations: int = 8
    temperature: float = 1.0
    regenerate_every: int = 5
    online_problems: int = 128

    def __post_init__(self) -> None:
        check_float("beta", self.beta, low=0.0, low_open=True)
        check_choice("loss_type", self.loss_type, LOSS_TYPES)
        _check_label_smoothing(self.label_smoothing, self.loss_type)
        if self.average is not None and not isinstance(self.average, bool):
            raise TypeError(f"average must be None or a bool, got {self.average!r}")
        check_float("lr", self.lr, low=0.0, low_open=True)
        check_int("batch_size", self.batch_size, low=1)
        check_float("max_grad_norm", self.max_grad_norm, low=0.0, low_open=True, allow_none=True)
        check_int("n_problems", self.n_problems, low=1)
        check_int("num_generations", self.num_generations, low=2)
        check_float("temperature", self.temperature, low=0.0, low_open=True)
        check_int("regenerate_every", self.regenerate_every, low=1)
        check_int("online_problems", self.online_problems, low=1)

    @property
    def average_logps(self) -> bool:
        """Whether log-probs are length-averaged (``average``, resolved)."""
        return self.loss_type == "ipo" if self.average is None else self.average


def sample_pairs(
    policy: GPTModel,
    problems: Sequence[Problem],
    *,
    num_generations: int,
    temperature: float = 1.0,
    generator: torch.Generator | None = None,
) -> list[dict[str, str]]:
    """Preference pairs from ``num_generations`` samples of ``policy`` per problem
    (:func:`tutorial_code.task.preference_pairs`: chosen = first correct, rejected = first
    wrong; problems whose samples are all right or all wrong give none).

    A sample in which the policy wrote the padding character ``PAD`` is dropped: as text it
    cannot be told apart from padding (it is wrong anyway, and rare).
    """
    samples = evaluate_sampling(
        policy, problems, n=num_generations, temperature=temperature, generator=generator
    )
    kept = [[c for c in group if PAD not in c] for group in samples.completions]
    return preference_pairs(problems, kept)


@dataclass
class _Pool:
    """The pairs currently trained on, with their reference log-probs (computed once)."""

    pairs: list[dict[str, str]]
    ref_chosen: torch.Tensor
    ref_rejected: torch.Tensor
    order: list[int] = field(default_factory=list)


class DPOTrainer:
    """DPO on the testbed task, on top of :class:`tutorial_code.rl.PolicyTrainer`.

    Args:
        config: the hyper-parameters.
        seed: seeds the pairs' problems and samples, the order of the pairs and evaluation.
        pairs: offline pairs to train on (``{"prompt", "chosen", "rejected"}``); default:
            sampled from the starting policy on ``config.n_problems`` training problems.
        online: sample ``config.online_problems`` fresh problems' pairs from the *current*
            policy every ``config.regenerate_every`` steps (online / iterated DPO, Guo et al.,
            2024; Xu et al., 2023); the reference model stays the starting policy.
        eval_every: steps between evaluations (also before the first and after the last).
        eval_problems: held-out problems for greedy accuracy and the KL (default: 200
            validation problems, as :class:`PolicyTrainer`).
        eval_pairs: held-out pairs on which to log the implicit-reward accuracy
            (``eval_rewards/accuracies``) and margin at each evaluation.
        policy: the starting policy (default ``load_checkpoint("sft")``); also the reference.

    ``self.log`` (an :class:`~tutorial_code.rl.AlignmentLog`) gets one row per step
    (``loss``, ``grad_norm``, :func:`dpo_metrics`, ``num_pairs`` in the pool, training
    ``time`` in seconds and ``samples`` generated so far) and one per evaluation (greedy
    ``accuracy``, ``trace_fraction`` and ``length``; ``kl``, the exact per-token
    ``KL(pi || pi_ref)`` on one sample per problem at temperature 1, with that sample's
    ``sample_accuracy`` and ``sample_length``; the held-out pair metrics). Time spent
    evaluating is not counted in ``time``.
    """

    def __init__(
        self,
        config: DPOConfig,
        *,
        seed: int,
        pairs: Sequence[Mapping[str, str]] | None = None,
        online: bool = False,
        eval_every: int = 10,
        eval_problems: Sequence[Problem] | None = None,
        eval_pairs: Sequence[Mapping[str, str]] | None = None,
        policy: GPTModel | None = None,
    ) -> None:
        if not isinstance(config, DPOConfig):
            raise TypeError(f"config must be a DPOConfig, got {type(config).__name__}")
        check_int("seed", seed, low=0)
        if not isinstance(online, bool):
            raise TypeError(f"online must be a bool, got {online!r}")
        if pairs is not None:
            _check_pairs(pairs)
        if eval_pairs is not None:
            _check_pairs(eval_pairs)
        if policy is None:
            from tutorial_code.checkpoints import load_checkpoint

            policy = load_checkpoint("sft")
        self.config = config
        self.online = online
        self.trainer = PolicyTrainer(
            policy,
            lr=config.lr,
            max_grad_norm=config.max_grad_norm,
            seed=seed,
            eval_problems=eval_problems,
            eval_every=eval_every,
        )
        self.order_generator = torch.Generator().manual_seed(seed)
        self.eval_seed = seed
        self.train_seconds = 0.0
        self.samples = 0
        self.eval_pool = None if eval_pairs is None else self._make_pool(eval_pairs)
        start = time.perf_counter()
        if pairs is None:
            n = config.online_problems if online else config.n_problems
            pairs = self._sample_pairs(n)
        self.pool = self._make_pool(pairs)
        self.train_seconds += time.perf_counter() - start

    @property
    def policy(self) -> GPTModel:
        return self.trainer.policy

    @property
    def ref_model(self) -> GPTModel:
        return self.trainer.ref_model

    @property
    def log(self) -> AlignmentLog:
        return self.trainer.log

    @property
    def step(self) -> int:
        return self.trainer.step

    @property
    def pairs(self) -> list[dict[str, str]]:
        """The pairs currently trained on."""
        return self.pool.pairs

    def _sample_pairs(self, n: int) -> list[dict[str, str]]:
        problems = self.trainer.sample_problems(n)
        self.samples += n * self.config.num_generations
        return sample_pairs(
            self.policy,
            problems,
            num_generations=self.config.num_generations,
            temperature=self.config.temperature,
            generator=self.trainer.generator,
        )

    def _make_pool(self, pairs: Sequence[Mapping[str, str]]) -> _Pool:
        pairs = [dict(p) for p in pairs]
        if not pairs:
            raise ValueError("no preference pairs: every problem's samples were all right or wrong")
        chosen, rejected = [], []
        for start in range(0, len(pairs), 256):  # the reference runs once per pair
            c, r = reference_logps(
                self.ref_model,
                preference_batch(pairs[start : start + 256]),
                average=self.config.average_logps,
            )
            chosen.append(c)
            rejected.append(r)
        return _Pool(pairs, torch.cat(chosen), torch.cat(rejected))

    def _next_indices(self) -> list[int]:
        size = min(self.config.batch_size, len(self.pool.pairs))
        if len(self.pool.order) < size:  # a new epoch over the pool, in a seeded order
            perm = torch.randperm(len(self.pool.pairs), generator=self.order_generator)
            self.pool.order += perm.tolist()
        indices, self.pool.order = self.pool.order[:size], self.pool.order[size:]
        return indices

    def compute_loss(
        self,
        pairs: Sequence[Mapping[str, str]],
        ref_chosen: torch.Tensor,
        ref_rejected: torch.Tensor,
    ) -> tuple[torch.Tensor, dict[str, float]]:
        """The batch loss (mean over pairs) and :func:`dpo_metrics` of the policy on
        ``pairs`` given their reference log-probs."""
        cfg = self.config
        chosen, rejected = concatenated_forward(
            self.policy, preference_batch(pairs), average=cfg.average_logps
        )
        losses, chosen_rewards, rejected_rewards = dpo_loss(
            chosen,
            rejected,
            ref_chosen,
            ref_rejected,
            beta=cfg.beta,
            loss_type=cfg.loss_type,
            label_smoothing=cfg.label_smoothing,
        )
        return losses.mean(), dpo_metrics(chosen_rewards, rejected_rewards, chosen, rejected)

    def train_step(self) -> dict[str, float]:
        """One optimizer step on the next batch of pairs (after re-sampling the pool when
        online and due); returns and logs its row."""
        start = time.perf_counter()
        cfg = self.config
        if self.online and self.step > 0 and self.step % cfg.regenerate_every == 0:
            fresh = self._sample_pairs(cfg.online_problems)
            if fresh:  # keep the old pool if every problem was all right or all wrong
                self.pool = self._make_pool(fresh)
        indices = self._next_indices()
        self.policy.train()
        loss, stats = self.compute_loss(
            [self.pool.pairs[i] for i in indices],
            self.pool.ref_chosen[indices],
            self.pool.ref_rejected[indices],
        )
        grad_norm = self.trainer.update(loss)
        self.trainer.step += 1
        self.train_seconds += time.perf_counter() - start
        row = {
            "step": self.step,
            "loss": loss.item(),
            "grad_norm": grad_norm,
            **stats,
            "num_pairs": len(self.pool.pairs),
            "time": self.train_seconds,
            "samples": self.samples,
        }
        self.log.steps.append(row)
        return row

    @torch.no_grad()
    def evaluate(self) -> dict[str, float]:
        """Greedy accuracy, trace use and length on the held-out problems, the KL to the
        reference on one sample per problem, and the held-out pairs' implicit-reward
        accuracy; appended to ``log.evals`` and returned."""
        row = self.trainer.evaluate()
        problems = self.trainer.eval_problems
        out = generate_completions(
            self.policy,
            encode_prompts(problems),
            generator=torch.Generator().manual_seed(self.eval_seed),
        )
        row["kl"] = kl_to_reference(
            self.policy,
            self.ref_model,
            out.sequences,
            out.completion_mask,
            attention_mask=out.attention_mask,
        )
        texts = [decode_completion(ids) for ids in out.completion_ids]
        row["sample_accuracy"] = sum(reward(p, t) for p, t in zip(problems, texts)) / len(texts)
        row["sample_length"] = out.completion_mask.sum(dim=1).double().mean().item()
        if self.eval_pool is not None:
            was_training = self.policy.training
            self.policy.eval()
            try:
                loss, metrics = self.compute_loss(
                    self.eval_pool.pairs, self.eval_pool.ref_chosen, self.eval_pool.ref_rejected
                )
            finally:
                self.policy.train(was_training)
            row["eval_loss"] = loss.item()
            row.update({f"eval_{k}": v for k, v in metrics.items()})
        return row

    def train(self, steps: int, *, time_budget_s: float | None = None) -> AlignmentLog:
        """Run up to ``steps`` steps, stopping early once ``time_budget_s`` seconds of
        training (pair sampling included, evaluation excluded) are spent. Evaluates before
        the first step (if not yet), every ``eval_every`` steps and after the last."""
        check_int("steps", steps, low=1)
        check_float("time_budget_s", time_budget_s, low=0.0, low_open=True, allow_none=True)
        if not self.log.evals:
            self.evaluate()
        for _ in range(steps):
            if time_budget_s is not None and self.train_seconds >= time_budget_s:
                break
            self.train_step()
            if self.step % self.trainer.eval_every == 0:
                self.evaluate()
        if self.log.evals[-1]["step"] != self.step:
            self.evaluate()
        return self.log


def train_dpo(
    config: DPOConfig,
    *,
    seed: int,
    steps: int,
    pairs: Sequence[Mapping[str, str]] | None = None,
    online: bool = False,
    eval_every: int = 10,
    time_budget_s: float | None = None,
    eval_problems: Sequence[Problem] | None = None,
    eval_pairs: Sequence[Mapping[str, str]] | None = None,
) -> AlignmentLog:
    """DPO from ``load_checkpoint("sft")``: :class:`DPOTrainer` for ``steps`` steps (or
    until ``time_budget_s`` seconds of training); returns its log. See :class:`DPOTrainer`
    for the arguments and what is logged."""
    trainer = DPOTrainer(
        config,
        seed=seed,
        pairs=pairs,
        online=online,
        eval_every=eval_every,
        eval_problems=eval_problems,
        eval_pairs=eval_pairs,
    )
    return trainer.train(steps, time_budget_s=time_budget_s)


# --------------------------------------------------------------------------------------
# The derivation on a table
# --------------------------------------------------------------------------------------


def optimal_policy(
    ref_logprobs: torch.Tensor, rewards: torch.Tensor, *, beta: float
) -> torch.Tensor:
    """``log pi*(y | x)`` ``(X, Y)`` maximising ``E_pi[r] - beta KL(pi || pi_ref)`` per prompt.

    ``pi*(y|x) = pi_ref(y|x) exp(r(x, y) / beta) / Z(x)`` with
    ``Z(x) = sum_y pi_ref(y|x) exp(r(x, y) / beta)`` (Rafailov et al., 2023, eq. 4), computed
    as a log-softmax. ``ref_logprobs`` are ``log pi_ref`` ``(X, Y)`` (rows normalised),
    ``rewards`` the same shape.
    """
    check_tensor("ref_logprobs", ref_logprobs, dim=2, dtype="float")
    check_same_shape(ref_logprobs=ref_logprobs, rewards=rewards)
    beta = check_float("beta", beta, low=0.0, low_open=True)
    return torch.log_softmax(ref_logprobs + rewards / beta, dim=-1)


def fit_tabular_dpo(
    ref_logprobs: torch.Tensor,
    prompts: torch.Tensor,
    chosen: torch.Tensor,
    rejected: torch.Tensor,
    *,
    beta: float,
    loss_type: str = "sigmoid",
    max_iter: int = 500,
) -> torch.Tensor:
    """A tabular policy ``log pi`` ``(X, Y)`` fitted by minimising the mean :func:`dpo_loss`.

    The policy is a free table of logits ``theta`` (``pi = softmax(theta)`` per prompt),
    started at the reference; pair ``i`` prefers response ``chosen[i]`` over ``rejected[i]``
    for prompt ``prompts[i]`` (three ``(N,)`` int tensors). Repeated pairs are counted once
    with their multiplicity as a weight, so the cost does not grow with ``N``; the weighted
    mean is the mean over the ``N`` pairs. The loss is minimised with L-BFGS (strong Wolfe
    line search) in the dtype of ``ref_logprobs`` (use float64), for at most ``max_iter``
    iterations: with few pairs the minimum may lie at infinity (a response that never won
    gets probability 0), and the fit stops on the way there.
    """
    check_tensor("ref_logprobs", ref_logprobs, dim=2, dtype="float")
    check_tensor("prompts", prompts, dim=1, dtype="int")
    check_same_shape(prompts=prompts, chosen=chosen, rejected=rejected)
    check_tensor("chosen", chosen, dtype="int")
    check_tensor("rejected", rejected, dtype="int")
    check_int("max_iter", max_iter, low=1)
    n_prompts, n_responses = ref_logprobs.shape
    if prompts.numel() == 0:
        raise ValueError("need at least one pair")
    if not (0 <= int(prompts.min()) and int(prompts.max()) < n_prompts):
        raise ValueError(f"prompts must be in [0, {n_prompts})")
    for name, t in (("chosen", chosen), ("rejected", rejected)):
        if not (0 <= int(t.min()) and int(t.max()) < n_responses):
            raise ValueError(f"{name} must be in [0, {n_responses})")
    ref = ref_logprobs.detach()
    unique, counts = torch.unique(
        torch.stack([prompts, chosen, rejected]), dim=1, return_counts=True
    )
    x, y_w, y_l = unique
    weights = counts.to(ref.dtype) / prompts.numel()
    theta = ref.clone().requires_grad_(True)
    optimizer = torch.optim.LBFGS(
        [theta],
        lr=1.0,
        max_iter=max_iter,
        tolerance_grad=1e-12,
        tolerance_change=1e-15,
        history_size=50,
        line_search_fn="strong_wolfe",
    )

    def closure() -> torch.Tensor:
        optimizer.zero_grad()
        logp = torch.log_softmax(theta, dim=-1)
        losses, _, _ = dpo_loss(
            logp[x, y_w], logp[x, y_l], ref[x, y_w], ref[x, y_l], beta=beta, loss_type=loss_type
        )
        loss = (weights * losses).sum()
        loss.backward()
        return loss

    optimizer.step(closure)
    return torch.log_softmax(theta.detach(), dim=-1)
