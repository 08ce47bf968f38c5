"""tutorial_code.reasoning: majority vote, best-of-n and their exact k-sample estimators.

References: brute-force enumeration of every ordered k-tuple of distinct samples (which
applies the deterministic tie rules of :func:`majority_vote` and :func:`best_of_n` to every
order, so it measures what a user running them on i.i.d. samples gets), values derived by hand
in the docstrings, and Chen et al.'s pass@k (:func:`tutorial_code.rl.pass_at_k`).
"""

from __future__ import annotations

import dataclasses
import itertools
import json
import random
from fractions import Fraction
from pathlib import Path

import pytest
import torch

from tests.paths import load_script
from tutorial_code.checkpoints import load_checkpoint
from tutorial_code.checkpoints.recipes import SFTRecipe, sft_examples
from tutorial_code.grpo import train_grpo
from tutorial_code.ppo import train_reward_model
from tutorial_code.reasoning import best_of_n, best_of_n_accuracy, maj_at_k, majority_vote
from tutorial_code.rl import pass_at_k
from tutorial_code.task import sample_problems


def brute_force_maj(answers, correct, k):
    """Mean over every ordered k-tuple of distinct samples of [majority_vote(tuple) == right]."""
    hits = total = 0
    for rows in itertools.permutations(range(len(answers)), k):
        hits += majority_vote([answers[i] for i in rows]) == correct
        total += 1
    return Fraction(hits, total)


def brute_force_best(scores, correct, k):
    """Mean over every ordered k-tuple of distinct samples of the best_of_n pick's correctness."""
    hits = total = 0
    for rows in itertools.permutations(range(len(scores)), k):
        pick = int(best_of_n(torch.tensor([scores[i] for i in rows], dtype=torch.float64)))
        hits += correct[rows[pick]]
        total += 1
    return Fraction(hits, total)


# --------------------------------------------------------------------------------------
# majority_vote
# --------------------------------------------------------------------------------------


def test_majority_vote_picks_the_most_frequent_answer():
    """Hand example: 322 appears three times, 332 twice."""
    assert majority_vote([332, 322, 322, None, 332, 322]) == 322


def test_majority_vote_tie_goes_to_the_first_seen_answer():
    """Hand example from the docstring: 332 and 322 have two votes each; 332 came first."""
    assert majority_vote([332, 322, None, 322, 332]) == 332
    assert majority_vote([322, 332, None, 322, 332]) == 322


def test_majority_vote_abstentions():
    """None abstains: one vote beats three abstentions; all abstaining gives None."""
    assert majority_vote([None, None, 7, None]) == 7
    assert majority_vote([None, None]) is None


def test_majority_vote_rejects_bad_input():
    with pytest.raises(ValueError, match="at least one"):
        majority_vote([])
    with pytest.raises(TypeError, match="answers"):
        majority_vote("332")
    with pytest.raises(TypeError, match="answers"):
        majority_vote({1, 2})


# --------------------------------------------------------------------------------------
# maj_at_k
# --------------------------------------------------------------------------------------


def test_maj_at_k_hand_values():
    """Derived by hand over the 6 pairs and 4 triples of answers [1, 1, 2, 3] (right: 1).

    k=2: {1,1} wins, the four {1,x} are two-way ties (1/2 each), {2,3} loses: 3/6 = 1/2.
    k=3: {1,1,2} and {1,1,3} win, {1,2,3} twice is a three-way tie (1/3): (2 + 2/3)/4 = 2/3.
    With an abstention, [1, None, 2], k=2: {1,None} wins, {1,2} ties, {None,2} loses: 1/2.
    """
    assert maj_at_k([1, 1, 2, 3], 1, 1) == pytest.approx(0.5, abs=1e-15)
    assert maj_at_k([1, 1, 2, 3], 1, 2) == pytest.approx(0.5, abs=1e-15)
    assert maj_at_k([1, 1, 2, 3], 1, 3) == pytest.approx(2 / 3, abs=1e-15)
    assert maj_at_k([1, 1, 2, 3], 1, 4) == 1.0
    assert maj_at_k([1, None, 2], 1, 2) == pytest.approx(0.5, abs=1e-15)


@pytest.mark.parametrize("seed", range(40))
def test_maj_at_k_matches_brute_force_enumeration(seed):
    """Every k-tuple of up to 7 answers (with repeats, abstentions and ties), all k."""
    rng = random.Random(seed)
    n = rng.randint(1, 7)
    pool = [0, 1, 2, 3, None][: rng.randint(2, 5)]
    answers = [rng.choice(pool) for _ in range(n)]
    for k in range(1, n + 1):
        want = brute_force_maj(answers, 0, k)
        assert maj_at_k(answers, 0, k) == pytest.approx(float(want), abs=1e-12), (answers, k)


def test_maj_at_k_equals_first_sample_accuracy_at_k_1():
    """k = 1 is the fraction of right answers (no vote)."""
    answers = [5, 5, 4, None, 5, 3, 4]
    assert maj_at_k(answers, 5, 1) == pytest.approx(3 / 7, abs=1e-15)


def test_maj_at_2_equals_maj_at_1():
    """Two votes that disagree are a tie worth 1/2, so maj@2 = p^2 + 2 p (1-p) / 2 = p.

    Only without abstentions: a right answer beside an abstention wins outright, so there
    maj@2 > maj@1 (hand value for [0, None, 1]: 1/2 against 1/3).
    """
    rng = random.Random(1)
    for _ in range(20):
        answers = [rng.choice([0, 1, 2]) for _ in range(9)]
        assert maj_at_k(answers, 0, 2) == pytest.approx(maj_at_k(answers, 0, 1), abs=1e-12)
    assert maj_at_k([0, None, 1], 0, 2) == pytest.approx(1 / 2, abs=1e-15)
    assert maj_at_k([0, None, 1], 0, 1) == pytest.approx(1 / 3, abs=1e-15)


def test_majority_vote_hurts_when_a_wrong_answer_is_more_likely():
    """Right answer 3 of 10, one wrong answer 7 of 10: voting converges on the wrong one.

    maj@k falls with k while pass@k (any right sample) rises: a vote only helps when the right
    answer is the policy's most likely answer.
    """
    answers = [1] * 3 + [2] * 7
    curve = [maj_at_k(answers, 1, k) for k in range(1, 11)]
    assert curve[0] == pytest.approx(0.3)
    assert all(b <= a + 1e-12 for a, b in zip(curve[::2], curve[2::2]))  # odd k: no ties
    assert curve[-1] == 0.0
    assert pass_at_k(10, 3, 9) == 1.0


def test_maj_at_k_rejects_bad_input():
    with pytest.raises(ValueError, match="k"):
        maj_at_k([1, 2], 1, 3)
    with pytest.raises(ValueError, match="k"):
        maj_at_k([1, 2], 1, 0)
    with pytest.raises(TypeError, match="k"):
        maj_at_k([1, 2], 1, 1.0)
    with pytest.raises(ValueError, match="correct_answer"):
        maj_at_k([1, 2], None, 1)
    with pytest.raises(ValueError, match="at least one"):
        maj_at_k([], 1, 1)


# --------------------------------------------------------------------------------------
# best_of_n and best_of_n_accuracy
# --------------------------------------------------------------------------------------


def test_best_of_n_picks_argmax_and_first_on_ties():
    """torch.argmax's documented rule: the first maximal index."""
    scores = torch.tensor([[0.1, 0.9, 0.3], [0.5, 0.5, 0.2]])
    assert best_of_n(scores).tolist() == [1, 0]


def test_best_of_n_rejects_bad_input():
    with pytest.raises(ValueError, match="NaN"):
        best_of_n(torch.tensor([0.0, float("nan")]))
    with pytest.raises(ValueError, match="floating"):
        best_of_n(torch.tensor([1, 2]))
    with pytest.raises(TypeError, match="Tensor"):
        best_of_n([0.1, 0.2])
    with pytest.raises(ValueError, match="n >= 1"):
        best_of_n(torch.zeros(2, 0))


def test_best_of_n_accuracy_hand_value():
    """scores [3, 2, 1], correct [F, T, T], k=2: of the 3 pairs only {1, 2} picks a right
    sample, so 1/3; k=1 is the mean correctness 2/3; k=3 always picks the wrong sample 0."""
    scores = torch.tensor([[3.0, 2.0, 1.0]])
    correct = torch.tensor([[False, True, True]])
    assert best_of_n_accuracy(scores, correct, 1).item() == pytest.approx(2 / 3, abs=1e-15)
    assert best_of_n_accuracy(scores, correct, 2).item() == pytest.approx(1 / 3, abs=1e-15)
    assert best_of_n_accuracy(scores, correct, 3).item() == 0.0


@pytest.mark.parametrize("seed", range(30))
def test_best_of_n_accuracy_matches_brute_force_enumeration(seed):
    """Every k-tuple of up to 7 samples, scores with deliberate ties, all k."""
    rng = random.Random(seed)
    n = rng.randint(1, 7)
    scores = [float(rng.randint(0, 3)) for _ in range(n)]
    correct = [rng.random() < 0.5 for _ in range(n)]
    s, c = torch.tensor([scores], dtype=torch.float64), torch.tensor([correct])
    for k in range(1, n + 1):
        want = float(brute_force_best(scores, correct, k))
        assert best_of_n_accuracy(s, c, k).item() == pytest.approx(want, abs=1e-12)


def test_best_of_n_with_the_oracle_scorer_is_pass_at_k():
    """Chen et al.'s estimator 1 - C(n-c, k)/C(n, k): scores = correctness ranks right first."""
    rng = random.Random(2)
    correct = torch.tensor([[rng.random() < p for _ in range(16)] for p in (0.0, 0.1, 0.5, 1.0)])
    for k in (1, 2, 5, 16):
        got = best_of_n_accuracy(correct.double(), correct, k)
        want = [pass_at_k(16, int(c), k) for c in correct.sum(dim=1)]
        assert got.tolist() == pytest.approx(want, abs=1e-12)


def test_best_of_n_with_a_constant_scorer_is_one_sample_accuracy():
    """All scores tied: the pick is uniform, so every k gives the mean correctness."""
    correct = torch.tensor([[True, False, False, True, False]])
    for k in range(1, 6):
        got = best_of_n_accuracy(torch.zeros(1, 5), correct, k).item()
        assert got == pytest.approx(0.4, abs=1e-12)


def test_pitfall_summed_logprob_prefers_short_completions():
    """Hand example: a 5-token answer at -0.5 per token (sum -2.5, mean -0.5) against a
    30-token traced answer at -0.1 per token (sum -3.0, mean -0.1). The summed log-prob picks
    the short one, the per-token mean the long one: a scorer's length bias decides the pick."""
    short = torch.full((5,), -0.5, dtype=torch.float64)
    long = torch.full((30,), -0.1, dtype=torch.float64)
    summed = torch.stack([short.sum(), long.sum()])
    mean = torch.stack([short.mean(), long.mean()])
    assert best_of_n(summed).item() == 0
    assert best_of_n(mean).item() == 1


def test_best_of_n_accuracy_rejects_bad_input():
    s, c = torch.zeros(2, 3), torch.zeros(2, 3, dtype=torch.bool)
    with pytest.raises(ValueError, match="k"):
        best_of_n_accuracy(s, c, 4)
    with pytest.raises(ValueError, match="shape"):
        best_of_n_accuracy(s, c[:, :2], 1)
    with pytest.raises(ValueError, match="bool"):
        best_of_n_accuracy(s, c.long(), 1)
    with pytest.raises(ValueError, match="NaN"):
        best_of_n_accuracy(torch.full((2, 3), float("nan")), c, 1)
    with pytest.raises(ValueError, match="dimension"):
        best_of_n_accuracy(s[0], c[0], 1)


# --------------------------------------------------------------------------------------
# The stored experiment
# --------------------------------------------------------------------------------------

ROOT = Path(__file__).resolve().parents[2]
RESULTS = ROOT / "experiments" / "results" / "reasoning.json"


def _experiment_module():
    return load_script("experiments/reasoning.py")


def test_a_slice_of_the_stored_experiment_reproduces() -> None:
    """Reference: experiments/results/reasoning.json, written by experiments/reasoning.py.

    Re-run: the SFT checkpoint's samples for the first 100 test problems (same seed, so the
    same draws; a different last bit on another CPU can rarely flip one sampled token), the
    first two GRPO steps of the SFT + RL route's seed 0, and the first five fine-tuning steps
    of the ``sft_original`` route's seed 0.
    """
    stored = json.loads(RESULTS.read_text())
    experiment = _experiment_module()
    assert stored["grpo_config"] == experiment.GRPO.to_dict()
    test = sample_problems(stored["test_problems"], split="test")[: experiment.BATCH]
    sft = load_checkpoint("sft")
    samples = experiment.sample_policy(
        sft, test, n=stored["samples"], seed=stored["sft"]["sampling_seed"]
    )
    counts = [sum(row) for row in samples["correct"]]
    want = stored["sft"]["correct_counts"][: experiment.BATCH]
    same = sum(a == b for a, b in zip(counts, want))
    assert same >= 0.9 * len(want), (same, len(want))
    assert sum(counts) == pytest.approx(sum(want), rel=0.02)

    log = train_grpo(
        experiment.GRPO, seed=0, steps=2, start=sft, eval_problems=sample_problems(4, split="val")
    )
    run = stored["routes"]["sft_rl"][0]["log"]
    for i, row in enumerate(log.steps):
        assert row["reward"] == pytest.approx(run["reward"][i], abs=0.02), i
        assert row["loss"] == pytest.approx(run["loss"][i], abs=2e-4), i

    record = stored["routes"]["sft_original"][0]
    prompts, completions = sft_examples(SFTRecipe(seed=record["seed"]))
    losses = experiment.finetune(
        load_checkpoint("base"), prompts, completions, steps=5, seed=record["seed"]
    )
    assert losses == pytest.approx(record["losses"][:5], rel=1e-4)


def test_stored_experiment_supports_the_chapter() -> None:
    """Reference: the stored JSON itself. Three seeds per route; the curves' k = 1 points are
    the sampled accuracy; pass@k (oracle best-of-k) is never below maj@k; pure RL from the
    shipped base gets (almost) no reward signal."""
    stored = json.loads(RESULTS.read_text())
    for name, records in stored["routes"].items():
        assert sorted(r["seed"] for r in records) == [0, 1, 2], name
    for final in [stored["sft"]] + [r["final"] for r in stored["routes"]["sft_rl"]]:
        curves = final["curves"]
        assert curves["maj"][0] == pytest.approx(final["pass@1"], abs=1e-6)
        assert all(p >= m - 1e-9 for p, m in zip(curves["pass"], curves["maj"]))
    zero_signal = [min(r["log"]["frac_reward_zero_std"]) for r in stored["routes"]["rl_from_base"]]
    assert min(zero_signal) > 0.8


def test_best_of_n_by_the_reward_model_slice_reproduces() -> None:
    """Reference: the ``reward_model_best_of_n`` record of experiments/results/reasoning.json,
    written by ``experiments/reasoning.py --only-reward-model``.

    Re-run: chapter 7's reward model (same config, so the same training; its normalisation
    must match), the SFT checkpoint's samples for the first 100 test problems (same seed), and
    the reward model's scores of the first problems' samples, which the JSON stores. A sampled
    token can rarely flip on another CPU, so nine in ten scores must match.
    """
    stored = json.loads(RESULTS.read_text())
    run = stored["reward_model_best_of_n"]
    experiment = _experiment_module()
    assert run["reward_model_config"] == dataclasses.asdict(experiment.RM_CONFIG)
    rm, record = train_reward_model(experiment.RM_CONFIG)
    assert record["pairs"] == run["reward_model_pairs"]
    for key, value in run["reward_model_normalisation"].items():
        assert record["normalisation"][key] == pytest.approx(value, rel=1e-3), key
    test = sample_problems(stored["test_problems"], split="test")[: experiment.BATCH]
    samples = experiment.sample_policy(
        load_checkpoint("sft"), test, n=stored["samples"], seed=stored["sft"]["sampling_seed"]
    )
    m = run["stored_problems"]
    scores = experiment.score_samples(rm, test[:m], {"texts": samples["texts"][:m]})
    want = torch.tensor(run["sft"]["first_scores"])
    close = torch.isclose(scores.double(), want.double(), rtol=1e-3, atol=1e-3)
    assert close.double().mean().item() >= 0.9, (scores, want)


def test_stored_reward_model_curves_are_consistent() -> None:
    """Reference: the stored JSON and pass@k. Best-of-1 by any scorer is one sample's
    accuracy (pass@1); best-of-k by the reward model never beats the oracle (pass@k)."""
    stored = json.loads(RESULTS.read_text())
    run = stored["reward_model_best_of_n"]
    finals = [stored["sft"]] + [r["final"] for r in stored["routes"]["sft_rl"]]
    rows = [run["sft"]] + run["sft_rl"]
    assert [r["seed"] for r in run["sft_rl"]] == [r["seed"] for r in stored["routes"]["sft_rl"]]
    assert run["k"] == stored["sft"]["curves"]["k"]
    for final, row in zip(finals, rows):
        assert row["best_rm"][0] == pytest.approx(final["pass@1"], abs=1e-6)
        assert all(b <= p + 1e-6 for b, p in zip(row["best_rm"], final["curves"]["pass"]))
