"""The pieces every alignment method of chapters 7-10 shares, each implemented once.

* **Log-probabilities.** :func:`token_logprobs` gathers the log-probabilities of given labels;
  :func:`completion_logprobs` runs a model and returns the log-probability of each of the last
  ``logits_to_keep`` tokens (the one-position shift between a logit and the token it predicts
  lives here and nowhere else); :func:`sequence_logprobs` sums (or averages) them over the
  completion; :func:`completion_loss` is supervised fine-tuning's loss on completion tokens.
* **Masked statistics** as TRL defines them: :func:`masked_mean`, :func:`masked_var`
  (unbiased by default), :func:`masked_whiten` (``eps = 1e-8``).
* **KL divergence.** :func:`kl_estimate` is the per-token estimator of
  ``KL(pi || pi_ref)`` from the log-probs of tokens sampled from ``pi`` (``"k1"``,
  ``"abs"``, ``"k2"``, ``"k3"``; Schulman, 2020, "Approximating KL Divergence");
  :func:`kl_from_logits` is the exact divergence over the whole vocabulary.
* **Sampling and evaluation.** :func:`generate_completions` samples ``num_generations``
  completions per prompt with their per-token log-probs (through
  :func:`tutorial_code.generation.generate`, left-padded); :func:`pass_at_k` is Chen et al.'s
  (2021) unbiased estimator; :func:`evaluate_greedy`, :func:`evaluate_sampling`,
  :func:`kl_to_reference` and :func:`mean_completion_length` measure a policy on the task of
  :mod:`tutorial_code.task`.
* **The harness.** :class:`PolicyTrainer` holds the policy, a frozen reference copy, the
  optimizer, a seeded generator and the per-step :class:`AlignmentLog`; its
  :meth:`~PolicyTrainer.rollout` samples a :class:`Rollout` (completions, rewards, old and
  reference log-probs) and :meth:`~PolicyTrainer.train` runs a chapter's loss function. A
  chapter writes only ``loss_fn(policy, batch) -> (loss, stats)``.

Shapes: ``B`` rows, ``S`` tokens per row (prompt and completion), ``n`` completion tokens,
``V`` the vocabulary, ``P`` problems, ``G`` completions per problem.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

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
from tutorial_code.generation import GenerationOutput, generate, left_pad
from tutorial_code.model import GPTModel
from tutorial_code.stability import clip_grad_norm_, global_grad_norm
from tutorial_code.task import (
    EOS_ID,
    MAX_COMPLETION_LENGTH,
    PAD_ID,
    Problem,
    decode_completion,
    encode_prompts,
    reward,
    sample_problems,
    uses_trace,
)

__all__ = [
    "KL_ESTIMATORS",
    "AlignmentLog",
    "GreedyEvaluation",
    "PolicyTrainer",
    "Rollout",
    "SampledEvaluation",
    "completion_logprobs",
    "completion_loss",
    "evaluate_greedy",
    "evaluate_sampling",
    "generate_completions",
    "greedy_accuracy",
    "kl_estimate",
    "kl_from_logits",
    "kl_to_reference",
    "masked_mean",
    "masked_var",
    "masked_whiten",
    "mean_completion_length",
    "pass_at_k",
    "sequence_logprobs",
    "token_logprobs",
]

#: Room for the longest correct completion and a little more (an unfinished answer is cut).
MAX_NEW_TOKENS = MAX_COMPLETION_LENGTH + 2


# --------------------------------------------------------------------------------------
# Log-probabilities
# --------------------------------------------------------------------------------------


def token_logprobs(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """``log softmax(logits)[..., label]``: ``(B, T, V)`` logits and ``(B, T)`` labels ->
    ``(B, T)``.

    Computed in float32 whatever the logits' dtype (TRL's ``selective_log_softmax``). The
    logits at position ``t`` must be the ones that predict ``labels[:, t]``; use
    :func:`completion_logprobs` to get that alignment from a model.
    """
    check_tensor("logits", logits, dim=3, dtype="float")
    check_tensor("labels", labels, dim=2, dtype="int")
    if logits.shape[:2] != labels.shape:
        raise ValueError(
            f"logits {tuple(logits.shape)} must be (B, T, V) with (B, T) = labels' shape "
            f"{tuple(labels.shape)}"
        )
    logprobs = F.log_softmax(logits.float(), dim=-1)
    return logprobs.gather(-1, labels.long().unsqueeze(-1)).squeeze(-1)


def completion_logprobs(
    model: nn.Module,
    input_ids: torch.Tensor,
    *,
    attention_mask: torch.Tensor | None = None,
    logits_to_keep: int,
) -> torch.Tensor:
    """Log-probabilities ``(B, logits_to_keep)`` of the last ``logits_to_keep`` tokens.

    The logit at position ``t`` predicts the token at ``t + 1``, so the tokens
    ``input_ids[:, S-K:]`` are scored by the logits at positions ``S-K-1 .. S-2`` (``K`` =
    ``logits_to_keep``, at most ``S - 1``: the first token has nothing before it). With left
    padding pass ``attention_mask``, so that positions count real tokens only. Same name and
    alignment as TRL's ``logits_to_keep``.
    """
    check_tensor("input_ids", input_ids, dim=2, dtype="int")
    check_int("logits_to_keep", logits_to_keep, low=1, high=input_ids.shape[1] - 1)
    logits = model(input_ids, attention_mask=attention_mask)  # (B, S, V)
    logits = logits[:, -logits_to_keep - 1 : -1]  # (B, K, V): the logits before each kept token
    return token_logprobs(logits, input_ids[:, -logits_to_keep:])


def _completion_window(input_ids: torch.Tensor, completion_mask: torch.Tensor) -> torch.Tensor:
    """Check ``completion_mask`` and return it over the last ``K`` columns as float ``(B, K)``.

    ``(B, S)`` masks (prompt + completion, e.g. from :func:`tutorial_code.task.sft_batch`)
    give ``K = S - 1``; ``(B, n)`` masks with ``n < S`` (``GenerationOutput.completion_mask``)
    cover the last ``n`` columns.
    """
    check_tensor("input_ids", input_ids, dim=2, dtype="int")
    check_tensor("completion_mask", completion_mask, dim=2)
    b, s = input_ids.shape
    if completion_mask.shape[0] != b or not 1 <= completion_mask.shape[1] <= s:
        raise ValueError(
            f"completion_mask must be (B, S) = {(b, s)} or (B, n) with n < S for the last n "
            f"columns, got {tuple(completion_mask.shape)}"
        )
    if completion_mask.shape[1] == s:
        if bool(completion_mask[:, 0].any()):
            raise ValueError("completion_mask[:, 0] must be 0: the first token is never predicted")
        completion_mask = completion_mask[:, 1:]
    if not bool(((completion_mask == 0) | (completion_mask == 1)).all()):
        raise ValueError("completion_mask must hold only 0 and 1")
    return completion_mask.float()


def sequence_logprobs(
    model: nn.Module,
    input_ids: torch.Tensor,
    completion_mask: torch.Tensor,
    *,
    attention_mask: torch.Tensor | None = None,
    average: bool = False,
) -> torch.Tensor:
    """``log pi(completion | prompt)``: the sum over completion tokens, ``(B,)``.

    ``log pi(y | x) = sum_t log pi(y_t | x, y_<t)`` over the tokens where ``completion_mask``
    is 1; prompt and padding are excluded. ``average=True`` divides by the number of
    completion tokens (the length-normalised variant; the DPO paper and TRL sum).
    ``completion_mask`` is ``(B, S)`` like ``input_ids`` or ``(B, n)`` for the last ``n``
    columns (as :class:`~tutorial_code.generation.GenerationOutput` gives it).
    """
    mask = _completion_window(input_ids, completion_mask)
    logprobs = completion_logprobs(
        model, input_ids, attention_mask=attention_mask, logits_to_keep=mask.shape[1]
    )
    total = (logprobs * mask).sum(dim=1)
    if average:
        return total / mask.sum(dim=1).clamp(min=1.0)
    return total


def completion_loss(
    model: nn.Module,
    input_ids: torch.Tensor,
    completion_mask: torch.Tensor,
    *,
    attention_mask: torch.Tensor | None = None,
) -> torch.Tensor:
    """Supervised fine-tuning's loss: mean cross-entropy over completion tokens only.

    ``-(1 / N) * sum_{b,t} m[b,t] * log pi(y[b,t] | y[b,<t])`` with ``N = sum m``: every
    completion token of the batch weighs the same (TRL's ``completion_only_loss``), and the
    prompt tokens get no gradient. Arguments as in :func:`sequence_logprobs`.
    """
    mask = _completion_window(input_ids, completion_mask)
    if not bool(mask.any()):
        raise ValueError("completion_mask selects no token")
    logprobs = completion_logprobs(
        model, input_ids, attention_mask=attention_mask, logits_to_keep=mask.shape[1]
    )
    return -(logprobs * mask).sum() / mask.sum()


# --------------------------------------------------------------------------------------
# Masked statistics (TRL's definitions)
# --------------------------------------------------------------------------------------


def _check_mask(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    check_tensor("x", x, dtype="float")
    check_same_shape(x=x, mask=mask)
    return mask.to(x.dtype)


def masked_mean(x: torch.Tensor, mask: torch.Tensor, dim: int | None = None) -> torch.Tensor:
    """Mean of ``x`` where ``mask`` is 1: ``sum(x * m) / sum(m)``, over all entries (a scalar)
    or along ``dim``. ``x`` and ``mask`` have the same shape."""
    m = _check_mask(x, mask)
    total = m.sum() if dim is None else m.sum(dim=dim)
    if bool((total == 0).any()):
        raise ValueError("mask selects no entry" + ("" if dim is None else f" along dim {dim}"))
    return ((x * m).sum() if dim is None else (x * m).sum(dim=dim)) / total


def masked_var(x: torch.Tensor, mask: torch.Tensor, unbiased: bool = True) -> torch.Tensor:
    """Variance (a scalar) of the entries of ``x`` where ``mask`` is 1.

    ``mean((x - mu)^2)`` over the selected ``N`` entries, times ``N / (N - 1)`` (Bessel's
    correction) when ``unbiased``, as TRL's ``masked_var``; an unbiased variance needs
    ``N >= 2``.
    """
    mu = masked_mean(x, mask)
    variance = masked_mean((x - mu) ** 2, mask)
    if unbiased:
        n = mask.sum()
        if n < 2:
            raise ValueError(f"an unbiased variance needs at least 2 selected entries, got {n}")
        variance = variance * n / (n - 1)
    return variance


def masked_whiten(x: torch.Tensor, mask: torch.Tensor, shift_mean: bool = True) -> torch.Tensor:
    """``(x - mu) / sqrt(var + 1e-8)`` with the masked mean and unbiased variance (TRL).

    With ``shift_mean=False`` the mean is added back: only the scale changes (TRL uses this
    for rewards). Every entry is transformed, the masked-out ones too; multiply by the mask
    if they must stay 0.
    """
    mu, var = masked_mean(x, mask), masked_var(x, mask)
    whitened = (x - mu) * torch.rsqrt(var + 1e-8)
    return whitened if shift_mean else whitened + mu


# --------------------------------------------------------------------------------------
# KL divergence
# --------------------------------------------------------------------------------------

KL_ESTIMATORS = ("k1", "abs", "k2", "k3")


def kl_estimate(
    logprobs: torch.Tensor,
    ref_logprobs: torch.Tensor,
    estimator: Literal["k1", "abs", "k2", "k3"] = "k3",
) -> torch.Tensor:
    """Per-token estimate of ``KL(pi || pi_ref)`` from tokens sampled from ``pi``.

    With ``r = log pi_ref(y) - log pi(y)`` (Schulman, 2020):

    * ``"k1"``: ``-r = log pi - log pi_ref``, unbiased, high variance, negative half the time;
    * ``"abs"``: ``|r|``, biased (TRL's PPO option ``"abs"``);
    * ``"k2"``: ``r^2 / 2``, biased but low variance (TRL's ``"mse"``);
    * ``"k3"``: ``exp(r) - r - 1 >= 0``, unbiased, lower variance than ``k1`` while
      ``pi_ref / pi`` stays near 1 (GRPO's estimator).

    Both inputs have the same shape; so does the result.
    """
    check_choice("estimator", estimator, KL_ESTIMATORS)
    check_same_shape(logprobs=logprobs, ref_logprobs=ref_logprobs)
    log_ratio = ref_logprobs - logprobs  # r
    if estimator == "k1":
        return -log_ratio
    if estimator == "abs":
        return log_ratio.abs()
    if estimator == "k2":
        return 0.5 * log_ratio**2
    return torch.exp(log_ratio) - log_ratio - 1


def kl_from_logits(logits: torch.Tensor, ref_logits: torch.Tensor) -> torch.Tensor:
    """Exact ``KL(p || q) = sum_v p(v) (log p(v) - log q(v))`` with ``p = softmax(logits)``,
    ``q = softmax(ref_logits)``: ``(..., V)`` -> ``(...)``, in float32."""
    check_tensor("logits", logits, dtype="float")
    check_same_shape(logits=logits, ref_logits=ref_logits)
    logp = F.log_softmax(logits.float(), dim=-1)
    logq = F.log_softmax(ref_logits.float(), dim=-1)
    return (logp.exp() * (logp - logq)).sum(dim=-1)


# --------------------------------------------------------------------------------------
# Sampling and evaluation
# --------------------------------------------------------------------------------------


def generate_completions(
    model: GPTModel,
    prompts: torch.Tensor | Sequence[Sequence[int]],
    *,
    num_generations: int = 1,
    max_new_tokens: int = MAX_NEW_TOKENS,
    temperature: float = 1.0,
    top_k: int | None = None,
    top_p: float | None = None,
    eos_id: int = EOS_ID,
    pad_id: int = PAD_ID,
    generator: torch.Generator | None = None,
    kv_cache: Literal["preallocated", "concat"] | None = "preallocated",
) -> GenerationOutput:
    """Sample ``num_generations`` completions of each prompt, with per-token log-probs.

    ``prompts`` is a ``(P, T0)`` id tensor or ``P`` id lists of any lengths (left-padded with
    ``pad_id``). Rows are prompt-major, like TRL's GRPO: rows ``i*G .. i*G+G-1`` continue
    prompt ``i``. Returns the :class:`~tutorial_code.generation.GenerationOutput` of
    ``generate(..., return_dict=True)``: ``sequences`` and ``attention_mask`` ``(P*G, S)``,
    ``completion_mask`` and ``logprobs`` ``(P*G, n)``; a row stops at ``eos_id`` (included
    in its completion) and is padded after it. ``temperature=0`` is greedy. The model is
    run in eval mode and put back in its previous mode.
    """
    check_module("model", model, GPTModel)
    check_int("num_generations", num_generations, low=1)
    if isinstance(prompts, torch.Tensor):
        check_tensor("prompts", prompts, dim=2, dtype="int")
        ids, mask = prompts, None
    else:
        ids, mask = left_pad(prompts, pad_id=pad_id)
    ids = ids.repeat_interleave(num_generations, dim=0)
    if mask is not None:
        mask = mask.repeat_interleave(num_generations, dim=0)
    was_training = model.training
    model.eval()
    try:
        return generate(
            model,
            ids,
            max_new_tokens,
            attention_mask=mask,
            temperature=temperature,
            top_k=top_k,
            top_p=top_p,
            eos_id=eos_id,
            pad_id=pad_id,
            kv_cache=kv_cache,
            generator=generator,
            return_dict=True,
        )
    finally:
        model.train(was_training)


def pass_at_k(n: int, c: int, k: int) -> float:
    """Chen et al. (2021), eq. 1: the unbiased estimate of pass@k from ``n >= k`` samples of
    which ``c`` are correct, ``1 - C(n - c, k) / C(n, k)``.

    Computed as ``1 - prod_{i = n-c+1}^{n} (1 - k / i)`` (their numerically stable form).
    Averaged over problems it estimates the chance that at least one of ``k`` samples is
    right; ``k = 1`` gives ``c / n``.
    """
    check_int("n", n, low=1)
    check_int("c", c, low=0, high=n)
    check_int("k", k, low=1, high=n)
    if n - c < k:
        return 1.0
    return 1.0 - math.prod(1.0 - k / i for i in range(n - c + 1, n + 1))


def mean_completion_length(completion_mask: torch.Tensor) -> float:
    """Mean number of completion tokens per row (EOS included) of a ``(B, n)`` 0/1 mask."""
    check_tensor("completion_mask", completion_mask, dim=2)
    if completion_mask.shape[0] == 0:
        raise ValueError("completion_mask has no rows")
    return completion_mask.sum(dim=1).double().mean().item()


@dataclass
class GreedyEvaluation:
    """What :func:`evaluate_greedy` measured on ``P`` problems.

    Attributes:
        accuracy: fraction of problems whose greedy completion is right.
        trace_fraction: fraction of completions that write a trace before the answer.
        mean_length: mean completion length in tokens, EOS included.
        completions: the ``P`` completion texts (without EOS).
        correct: ``(P,)`` bool, which completions are right.
    """

    accuracy: float
    trace_fraction: float
    mean_length: float
    completions: list[str]
    correct: torch.Tensor


def _completion_texts(output: GenerationOutput) -> list[str]:
    return [decode_completion(row) for row in output.completion_ids]


def evaluate_greedy(
    model: GPTModel, problems: Sequence[Problem], *, batch_size: int = 500
) -> GreedyEvaluation:
    """Greedy decoding (``temperature = 0``) on ``problems``; accuracy by :func:`reward`."""
    check_int("batch_size", batch_size, low=1)
    if len(problems) == 0:
        raise ValueError("problems must hold at least one Problem to evaluate, got none")
    texts: list[str] = []
    lengths: list[torch.Tensor] = []
    for start in range(0, len(problems), batch_size):
        chunk = problems[start : start + batch_size]
        out = generate_completions(model, encode_prompts(chunk), temperature=0.0)
        texts += _completion_texts(out)
        lengths.append(out.completion_mask.sum(dim=1))
    correct = torch.tensor([reward(p, t) == 1.0 for p, t in zip(problems, texts)])
    return GreedyEvaluation(
        accuracy=correct.double().mean().item(),
        trace_fraction=sum(uses_trace(t) for t in texts) / len(texts),
        mean_length=torch.cat(lengths).double().mean().item(),
        completions=texts,
        correct=correct,
    )


def greedy_accuracy(model: GPTModel, problems: Sequence[Problem]) -> float:
    """Fraction of ``problems`` the greedy completion gets right."""
    return evaluate_greedy(model, problems).accuracy


@dataclass
class SampledEvaluation:
    """What :func:`evaluate_sampling` measured: ``n`` samples for each of ``P`` problems.

    Attributes:
        correct: ``(P, n)`` bool.
        lengths: ``(P, n)`` completion lengths in tokens, EOS included.
        completions: ``P`` lists of ``n`` texts (without EOS).
        uses_trace: ``(P, n)`` bool, which completions write a trace.
    """

    correct: torch.Tensor
    lengths: torch.Tensor
    completions: list[list[str]]
    uses_trace: torch.Tensor

    def pass_at(self, k: int) -> float:
        """pass@k averaged over problems (:func:`pass_at_k` of each problem's counts)."""
        n = self.correct.shape[1]
        counts = self.correct.sum(dim=1).tolist()
        return sum(pass_at_k(n, int(c), k) for c in counts) / len(counts)

    @property
    def trace_fraction(self) -> float:
        return self.uses_trace.double().mean().item()

    @property
    def mean_length(self) -> float:
        return self.lengths.double().mean().item()


def evaluate_sampling(
    model: GPTModel,
    problems: Sequence[Problem],
    *,
    n: int = 16,
    temperature: float = 1.0,
    generator: torch.Generator | None = None,
    batch_size: int = 128,
) -> SampledEvaluation:
    """Sample ``n`` completions per problem at ``temperature`` and check each one.

    ``batch_size`` problems (``batch_size * n`` rows) are generated at a time.
    """
    check_int("n", n, low=1)
    check_int("batch_size", batch_size, low=1)
    check_float("temperature", temperature, low=0.0, low_open=True)
    if len(problems) == 0:
        raise ValueError("problems must hold at least one Problem to evaluate, got none")
    texts: list[str] = []
    lengths = []
    for start in range(0, len(problems), batch_size):
        chunk = problems[start : start + batch_size]
        out = generate_completions(
            model,
            encode_prompts(chunk),
            num_generations=n,
            temperature=temperature,
            generator=generator,
        )
        texts += _completion_texts(out)
        lengths.append(out.completion_mask.sum(dim=1))
    grouped = [texts[i * n : (i + 1) * n] for i in range(len(problems))]
    correct = torch.tensor([[reward(p, t) == 1.0 for t in g] for p, g in zip(problems, grouped)])
    return SampledEvaluation(
        correct=correct,
        lengths=torch.cat(lengths).view(len(problems), n),
        completions=grouped,
        uses_trace=torch.tensor([[uses_trace(t) for t in g] for g in grouped]),
    )


@torch.no_grad()
def kl_to_reference(
    model: nn.Module,
    ref_model: nn.Module,
    input_ids: torch.Tensor,
    completion_mask: torch.Tensor,
    *,
    attention_mask: torch.Tensor | None = None,
) -> float:
    """Mean exact per-token ``KL(pi || pi_ref)`` over the completion tokens of samples.

    At every completion position the full-vocabulary divergence between the two models'
    next-token distributions (:func:`kl_from_logits`), averaged over the positions where
    ``completion_mask`` is 1. On completions sampled from ``pi`` this estimates the sequence
    KL divided by the mean length. Arguments as in :func:`sequence_logprobs`.
    """
    mask = _completion_window(input_ids, completion_mask)
    k = mask.shape[1]
    logits = model(input_ids, attention_mask=attention_mask)[:, -k - 1 : -1]
    ref_logits = ref_model(input_ids, attention_mask=attention_mask)[:, -k - 1 : -1]
    return masked_mean(kl_from_logits(logits, ref_logits), mask).item()


# --------------------------------------------------------------------------------------
# The harness shared by the alignment chapters
# --------------------------------------------------------------------------------------


@dataclass
class Rollout:
    """One batch of sampled completions with everything an on-policy loss needs.

    Attributes:
        problems: the ``B = P * G`` problems, one per row (each repeated ``G`` times).
        num_generations: ``G``, completions per problem (rows ``i*G .. i*G+G-1`` share one).
        input_ids: ``(B, S)`` prompt and completion ids.
        attention_mask: ``(B, S)`` 1 on real tokens.
        completion_mask: ``(B, n)`` 1 on completion tokens up to and including EOS.
        completions: the ``B`` completion texts (without EOS).
        rewards: ``(B,)`` float, :func:`tutorial_code.task.reward` of each completion.
        old_logprobs: ``(B, n)`` per-token log-probs under the policy that sampled (no grad),
            recomputed with a full forward pass; 0 where ``completion_mask`` is 0.
        ref_logprobs: ``(B, n)`` the same under the reference model.
        kl: ``(B, n)`` the exact per-token ``KL(pi || pi_ref)`` at each completion position.
    """

    problems: list[Problem]
    num_generations: int
    input_ids: torch.Tensor
    attention_mask: torch.Tensor
    completion_mask: torch.Tensor
    completions: list[str]
    rewards: torch.Tensor
    old_logprobs: torch.Tensor
    ref_logprobs: torch.Tensor
    kl: torch.Tensor

    @property
    def logits_to_keep(self) -> int:
        """``n``, for :func:`completion_logprobs` on :attr:`input_ids`."""
        return self.completion_mask.shape[1]

    @property
    def lengths(self) -> torch.Tensor:
        """``(B,)`` completion lengths in tokens, EOS included."""
        return self.completion_mask.sum(dim=1)

    def stats(self) -> dict[str, float]:
        """Reward, accuracy, trace use, length and KL (per token) of the batch."""
        correct = [reward(p, c) == 1.0 for p, c in zip(self.problems, self.completions)]
        return {
            "reward": self.rewards.double().mean().item(),
            "accuracy": sum(correct) / len(correct),
            "trace_fraction": sum(uses_trace(c) for c in self.completions) / len(correct),
            "length": mean_completion_length(self.completion_mask),
            "kl": masked_mean(self.kl, self.completion_mask.to(self.kl.dtype)).item(),
        }


@dataclass
class AlignmentLog:
    """Per-step records of :meth:`PolicyTrainer.train`.

    ``steps`` has one dict per optimizer step (``step``, ``loss``, ``grad_norm``, the batch's
    ``reward`` / ``accuracy`` / ``trace_fraction`` / ``length`` / ``kl`` for a
    :class:`Rollout`, and whatever the loss function returned); ``evals`` has one dict per
    evaluation (``step``, greedy ``accuracy``, ``trace_fraction``, ``length``).
    """

    steps: list[dict[str, float]] = field(default_factory=list)
    evals: list[dict[str, float]] = field(default_factory=list)

    def series(self, key: str, *, evals: bool = False) -> list[float]:
        """The values of ``key`` in order (from ``evals`` with ``evals=True``)."""
        rows = self.evals if evals else self.steps
        missing = [r["step"] for r in rows if key not in r]
        if missing or not rows:
            raise KeyError(f"{key!r} is not logged (at steps {missing[:5]})")
        return [r[key] for r in rows]


#: A chapter's loss: ``loss_fn(policy, batch) -> (loss, stats)``.
LossFn = Callable[[GPTModel, Any], tuple[torch.Tensor, dict[str, float]]]


class PolicyTrainer:
    """The policy, a frozen reference model, an optimizer, seeded sampling and a log.

    Args:
        policy: the model to improve (e.g. ``load_checkpoint("sft")``); trained in place.
        ref_model: the frozen reference ``pi_ref``; default a deep copy of ``policy`` as it
            is now. Its parameters get ``requires_grad=False`` and it stays in eval mode.
        optimizer: default ``AdamW(policy.parameters(), lr=lr, weight_decay=0.0)``; pass one
            to train more parameters (e.g. a value head).
        lr: the default optimizer's learning rate.
        max_grad_norm: global gradient-norm clipping (``None``: measure but do not clip).
        seed: seeds sampling (``self.generator``) and the problems of each step.
        eval_problems: problems for greedy evaluation (default: the first 200 of the
            validation split); ``eval_every`` steps apart, and after the last step.
    """

    def __init__(
        self,
        policy: GPTModel,
        *,
        ref_model: GPTModel | None = None,
        optimizer: torch.optim.Optimizer | None = None,
        lr: float = 1e-4,
        max_grad_norm: float | None = 1.0,
        seed: int = 0,
        eval_problems: Sequence[Problem] | None = None,
        eval_every: int = 10,
    ) -> None:
        check_module("policy", policy, GPTModel)
        check_float("lr", lr, low=0.0, low_open=True)
        check_float("max_grad_norm", max_grad_norm, low=0.0, low_open=True, allow_none=True)
        check_int("seed", seed, low=0)
        check_int("eval_every", eval_every, low=1)
        self.policy = policy
        self.ref_model = copy.deepcopy(policy) if ref_model is None else ref_model
        check_module("ref_model", self.ref_model, GPTModel)
        self.ref_model.eval().requires_grad_(False)
        if optimizer is None:
            optimizer = torch.optim.AdamW(policy.parameters(), lr=lr, weight_decay=0.0)
        self.optimizer = check_module("optimizer", optimizer, torch.optim.Optimizer)
        self.max_grad_norm = max_grad_norm
        self.seed = seed
        self.generator = torch.Generator().manual_seed(seed)
        self.eval_problems = list(
            sample_problems(200, split="val") if eval_problems is None else eval_problems
        )
        self.eval_every = eval_every
        self.step = 0
        self.log = AlignmentLog()

    def sample_problems(self, n: int) -> list[Problem]:
        """``n`` training problems for the current step (seeded by ``seed`` and the step)."""
        return sample_problems(n, split="train", seed=1_000_003 * (self.seed + 1) + self.step)

    @torch.no_grad()
    def rollout(
        self,
        problems: Sequence[Problem],
        *,
        num_generations: int = 8,
        temperature: float = 1.0,
        max_new_tokens: int = MAX_NEW_TOKENS,
    ) -> Rollout:
        """Sample ``num_generations`` completions per problem from the current policy and
        score them: rewards, old (policy) and reference log-probs, exact per-token KL."""
        out = generate_completions(
            self.policy,
            encode_prompts(problems),
            num_generations=num_generations,
            max_new_tokens=max_new_tokens,
            temperature=temperature,
            generator=self.generator,
        )
        rows = [p for p in problems for _ in range(num_generations)]
        texts = _completion_texts(out)
        k = out.completion_mask.shape[1]
        was_training = self.policy.training
        self.policy.eval()
        try:
            logits = self.policy(out.sequences, attention_mask=out.attention_mask)
        finally:
            self.policy.train(was_training)
        ref_logits = self.ref_model(out.sequences, attention_mask=out.attention_mask)
        logits, ref_logits = logits[:, -k - 1 : -1], ref_logits[:, -k - 1 : -1]
        labels = out.completion_ids
        mask = out.completion_mask.float()
        return Rollout(
            problems=rows,
            num_generations=num_generations,
            input_ids=out.sequences,
            attention_mask=out.attention_mask,
            completion_mask=out.completion_mask,
            completions=texts,
            rewards=torch.tensor([reward(p, t) for p, t in zip(rows, texts)]),
            old_logprobs=token_logprobs(logits, labels) * mask,
            ref_logprobs=token_logprobs(ref_logits, labels) * mask,
            kl=kl_from_logits(logits, ref_logits) * mask,
        )

    def update(self, loss: torch.Tensor) -> float:
        """One optimizer step on ``loss``: zero, backward, clip, step; returns the gradient
        norm before clipping."""
        if not isinstance(loss, torch.Tensor) or loss.dim() != 0 or not loss.requires_grad:
            raise ValueError("loss must be a scalar tensor that requires grad")
        self.policy.train()
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        return self.optimizer_step()

    def optimizer_step(self) -> float:
        """Clip the gradients already accumulated in ``.grad`` (by ``max_grad_norm``; with
        ``None`` only measure them) and take one optimizer step; returns the gradient norm
        before clipping. :meth:`update` is ``zero_grad``, ``backward``, then this; a trainer
        that accumulates gradients over micro-batches calls it once after their backwards."""
        params = [p for g in self.optimizer.param_groups for p in g["params"]]
        if self.max_grad_norm is None:
            norm = global_grad_norm(params).item()
        else:
            norm = clip_grad_norm_(params, self.max_grad_norm).item()
        self.optimizer.step()
        return norm

    def evaluate(self) -> dict[str, float]:
        """Greedy evaluation on ``eval_problems``, appended to ``log.evals`` and returned."""
        result = evaluate_greedy(self.policy, self.eval_problems)
        row = {
            "step": self.step,
            "accuracy": result.accuracy,
            "trace_fraction": result.trace_fraction,
            "length": result.mean_length,
        }
        self.log.evals.append(row)
        return row

    def online_batch(
        self, *, batch_size: int = 16, num_generations: int = 8, temperature: float = 1.0
    ) -> Rollout:
        """The on-policy batch of GRPO-style methods: ``batch_size`` fresh training problems,
        ``num_generations`` completions each."""
        check_int("batch_size", batch_size, low=1)
        return self.rollout(
            self.sample_problems(batch_size),
            num_generations=num_generations,
            temperature=temperature,
        )

    def train(
        self,
        loss_fn: LossFn,
        *,
        steps: int,
        get_batch: Callable[[PolicyTrainer], Any] | None = None,
        num_iterations: int = 1,
    ) -> AlignmentLog:
        """Run ``steps`` steps: get a batch, then ``num_iterations`` updates on it.

        ``get_batch(trainer)`` defaults to :meth:`online_batch` with its defaults; for
        offline methods (DPO) return a batch of pairs instead. ``loss_fn(policy, batch)``
        returns the scalar loss and a dict of floats to log. Evaluates before the first
        step (if the log has no evaluation yet), every ``eval_every`` steps and after the
        last one.
        """
        check_int("steps", steps, low=1)
        check_int("num_iterations", num_iterations, low=1)
        get_batch = PolicyTrainer.online_batch if get_batch is None else get_batch
        if not self.log.evals:
            self.evaluate()
        for _ in range(steps):
            batch = get_batch(self)
            batch_stats = batch.stats() if isinstance(batch, Rollout) else {}
            for _ in range(num_iterations):
                loss, stats = loss_fn(self.policy, batch)
                grad_norm = self.update(loss)
            self.step += 1
            self.log.steps.append(
                {"step": self.step, "loss": loss.item(), "grad_norm": grad_norm}
                | batch_stats
                | {k: float(v) for k, v in stats.items()}
            )
            if self.step % self.eval_every == 0:
                self.evaluate()
        if self.log.evals[-1]["step"] != self.step:
            self.evaluate()
        return self.log
