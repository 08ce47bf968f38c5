"""Inference-time scaling: majority vote, best-of-n selection and their exact k-sample accuracy.

A reasoning model can buy accuracy at inference time by sampling several answers to one
problem and keeping one of them. Two rules keep one:

* **majority vote** (self-consistency; Wang et al., 2022, "Self-Consistency Improves Chain of
  Thought Reasoning in Language Models", section 2): sample ``k`` reasoning paths, parse each
  one's final answer and return the most frequent answer (:func:`majority_vote`). It needs no
  scorer, only answers that can be compared for equality;
* **best-of-n** (rejection sampling with a scorer; Cobbe et al., 2021, "Training Verifiers to
  Solve Math Word Problems", section 4; Nakano et al., 2021, "WebGPT"): score each of ``k``
  samples and return the best-scored one (:func:`best_of_n`). With an oracle scorer (the
  task's checker) its accuracy is pass@k (Chen et al., 2021, eq. 1); with a learned or cheap
  scorer it is lower.

**Estimating maj@k and best-of-k from n >= k samples.** Drawing ``k`` fresh samples per
problem and voting gives a noisy estimate, and a separate draw for every ``k`` of a curve is
wasteful. Chen et al.'s trick for pass@k generalises: sample ``n >= k`` answers once, and
average the rule's outcome over *all* ``C(n, k)`` subsets of size ``k``. Since the ``n``
samples are i.i.d., every ``k``-subset is distributed as ``k`` fresh samples, so the average
is an **unbiased** estimate of the ``k``-sample accuracy (a U-statistic; Hoeffding, 1948),
with less variance than using one subset. Both functions below compute that average
**exactly** (integer counting, no Monte Carlo), in time polynomial in ``n``:

* :func:`maj_at_k`: counts, for each number ``x`` of correct answers in the subset, the
  subsets in which no wrong answer appears more than ``x`` times (a product of truncated
  binomial generating functions, one per distinct wrong answer);
* :func:`best_of_n_accuracy`: after sorting by score, the sample at rank ``i`` (0 = best) is
  the best of a random ``k``-subset with probability ``C(n - 1 - i, k - 1) / C(n, k)``.

**Ties.** :func:`majority_vote` breaks a tie between equally frequent answers in favour of the
one that appears *first* in its input; :func:`best_of_n` in favour of the first index with the
highest score (``torch.argmax``'s rule). Both rules are deterministic, and on i.i.d. samples
in random order each tied candidate is equally likely to come first, so the expected accuracy
of the deterministic rule equals that of a uniformly random tie break: a tie between ``m``
answers, one of them right, counts ``1 / m``. The estimators use that expectation.
Unparseable answers (``None``) abstain from the vote; a vote in which every sample abstains
returns ``None`` (wrong).
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Hashable, Sequence
from fractions import Fraction
from typing import TypeVar

import torch

from tutorial_code.checks import check_int, check_same_shape, check_tensor

__all__ = [
    "best_of_n",
    "best_of_n_accuracy",
    "maj_at_k",
    "majority_vote",
]

A = TypeVar("A", bound=Hashable)


def majority_vote(answers: Sequence[A | None]) -> A | None:
    """The most frequent answer among ``answers`` (self-consistency; Wang et al., 2022).

    ``None`` entries (answers the checker could not parse) abstain. Ties between equally
    frequent answers go to the one whose first occurrence comes first in ``answers``. Returns
    ``None`` only if every entry abstains.

    Example: ``majority_vote([332, 322, None, 322, 332])`` is ``332`` (two votes each; ``332``
    came first).
    """
    if isinstance(answers, (str, bytes)) or not isinstance(answers, Sequence):
        raise TypeError(f"answers must be a sequence of answers, got {type(answers).__name__}")
    if len(answers) == 0:
        raise ValueError("answers must hold at least one answer; got an empty sequence")
    counts = Counter(a for a in answers if a is not None)
    if not counts:
        return None
    # Counter keeps first-insertion order and max() returns the first maximal item.
    return max(counts, key=counts.__getitem__)


def _check_answers(answers: Sequence[A | None], k: int) -> int:
    if isinstance(answers, (str, bytes)) or not isinstance(answers, Sequence):
        raise TypeError(f"answers must be a sequence of answers, got {type(answers).__name__}")
    n = len(answers)
    if n == 0:
        raise ValueError("answers must hold at least one answer; got an empty sequence")
    check_int("k", k, low=1, high=n)
    return n


def maj_at_k(answers: Sequence[A | None], correct_answer: A, k: int) -> float:
    """Exact expected accuracy of a majority vote over ``k`` of the ``n = len(answers)``
    sampled answers to one problem, averaged over all ``C(n, k)`` subsets.

    Unbiased for maj@k, the accuracy of voting over ``k`` fresh i.i.d. samples (see the module
    docstring); ``k = n`` is the vote over all samples. Ties count ``1 / m`` when the right
    answer is one of ``m`` tied answers (the expectation of :func:`majority_vote` on samples
    in random order); ``None`` abstains; ``k = 1`` gives the fraction of right answers.

    **Counting.** Let ``c`` answers be right, let the distinct wrong answers occur
    ``w_1, ..., w_m`` times and let ``a`` samples abstain. A subset with ``x >= 1`` right
    answers and ``y_j`` copies of wrong answer ``j`` wins outright if every ``y_j < x`` and
    ties ``t`` ways if ``t`` of the ``y_j`` equal ``x``; it is credited ``1 / (1 + t)``. The
    number of such subsets is ``C(c, x)`` times the coefficient of ``z^(k - x) u^t`` in
    ``(1 + z)^a * prod_j (sum_{y < x} C(w_j, y) z^y + C(w_j, x) z^x u)``, which a dynamic
    program over the wrong answers builds in ``O(m^2 k^2)`` integer operations per ``x``.

    Args:
        answers: the ``n`` parsed answers, ``None`` for an unparseable one.
        correct_answer: the right answer (compared with ``==``).
        k: votes per problem, ``1 <= k <= n``.
    """
    n = _check_answers(answers, k)
    if correct_answer is None:
        raise ValueError("correct_answer must not be None (None marks an abstaining sample)")
    counts = Counter(a for a in answers if a is not None)
    c = counts.pop(correct_answer, 0)
    wrong = sorted(counts.values())
    abstain = n - c - sum(wrong)
    credit = Fraction(0)
    for x in range(1, min(c, k) + 1):
        rest = k - x  # samples of the subset that are not right answers
        # ways[d][t]: subsets of d wrong answers in which no answer exceeds x and t reach x.
        ways = [[0] * (len(wrong) + 1) for _ in range(rest + 1)]
        ways[0][0] = 1
        for w in wrong:
            new = [[0] * (len(wrong) + 1) for _ in range(rest + 1)]
            for d in range(rest + 1):
                for t, count in enumerate(ways[d]):
                    if count == 0:
                        continue
                    for y in range(min(w, x, rest - d) + 1):
                        new[d + y][t + (y == x)] += count * math.comb(w, y)
            ways = new
        for d in range(rest + 1):
            fill = math.comb(abstain, rest - d)  # the abstaining samples make up the rest
            if fill == 0:
                continue
            for t, count in enumerate(ways[d]):
                if count:
                    credit += Fraction(math.comb(c, x) * count * fill, 1 + t)
    return float(credit / math.comb(n, k))


def best_of_n(scores: torch.Tensor) -> torch.Tensor:
    """Index of the best-scored sample: ``(..., n)`` scores -> ``(...)`` int64 indices.

    The selection of best-of-n (Cobbe et al., 2021; Nakano et al., 2021): keep the sample the
    scorer likes most. Ties go to the lowest index (``torch.argmax``'s documented rule). NaN
    scores are rejected rather than silently winning.
    """
    check_tensor("scores", scores, dtype="float")
    if scores.dim() == 0 or scores.shape[-1] == 0:
        raise ValueError(
            f"scores must have n >= 1 samples in its last dimension, got "
            f"shape {tuple(scores.shape)}"
        )
    if bool(torch.isnan(scores).any()):
        raise ValueError("scores contains NaN")
    return scores.argmax(dim=-1)


def best_of_n_accuracy(scores: torch.Tensor, correct: torch.Tensor, k: int) -> torch.Tensor:
    """Exact expected accuracy of best-of-``k`` over all ``k``-subsets of ``n`` samples.

    ``scores`` ``(P, n)`` float (higher is better) and ``correct`` ``(P, n)`` bool for ``P``
    problems -> ``(P,)`` float64, each problem's average over the ``C(n, k)`` subsets of the
    correctness of the subset's best-scored sample; unbiased for best-of-k on ``k`` fresh
    samples, like :func:`maj_at_k`.

    **Derivation.** Sort a problem's samples by score, best first. The sample at rank ``i``
    (0-based) is the best of a ``k``-subset exactly when it is in the subset and the other
    ``k - 1`` members come from the ``n - 1 - i`` samples ranked below it:
    ``C(n - 1 - i, k - 1)`` of the ``C(n, k)`` subsets. So

        best-of-k = sum_i r_(i) C(n - 1 - i, k - 1) / C(n, k).

    Samples with equal scores form a block inside which the pick is uniform (the expectation
    of :func:`best_of_n`'s first-index rule on samples in random order), so each ``r_(i)`` is
    replaced by its block's mean. With the oracle scorer ``scores = correct`` the ``c`` right
    samples rank first and the sum is ``1 - C(n - c, k) / C(n, k)``: pass@k (Chen et al.,
    2021, eq. 1).
    """
    check_tensor("scores", scores, dim=2, dtype="float")
    check_tensor("correct", correct, dim=2, dtype="bool")
    check_same_shape(scores=scores, correct=correct)
    p, n = scores.shape
    check_int("k", k, low=1, high=max(n, 1))
    if n == 0 or p == 0:
        raise ValueError(f"scores must have at least one problem and one sample, got {(p, n)}")
    if bool(torch.isnan(scores).any()):
        raise ValueError("scores contains NaN")
    order = torch.sort(scores.double(), dim=1, descending=True, stable=True)
    right = correct.gather(1, order.indices).double()
    # Tie blocks: a new block starts wherever the sorted score changes.
    starts = torch.ones(p, n, dtype=torch.bool)
    starts[:, 1:] = order.values[:, 1:] != order.values[:, :-1]
    block = starts.long().cumsum(dim=1) - 1
    totals = torch.zeros(p, n, dtype=torch.float64).scatter_add_(1, block, right)
    sizes = torch.zeros(p, n, dtype=torch.float64).scatter_add_(1, block, torch.ones_like(right))
    right = totals.gather(1, block) / sizes.gather(1, block)
    weights = torch.tensor(
        [math.comb(n - 1 - i, k - 1) / math.comb(n, k) for i in range(n)], dtype=torch.float64
    )
    return right @ weights
