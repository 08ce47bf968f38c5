"""Tests of experiments/comparison.py: its helpers, a re-run slice, and the stored record."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.paths import load_script
from tutorial_code.rl import PolicyTrainer

ROOT = Path(__file__).resolve().parents[2]
RESULTS = ROOT / "experiments" / "results" / "comparison.json"


def _experiment_module():
    return load_script("experiments/comparison.py")


@pytest.fixture(scope="module")
def experiment():
    return _experiment_module()


@pytest.fixture(scope="module")
def stored() -> dict:
    return json.loads(RESULTS.read_text(encoding="utf-8"))


def test_accuracy_at_time_interpolates_linearly(experiment) -> None:
    """Reference: values by hand. Between (10 s, 0.4) and (30 s, 0.8), 25 s is three
    quarters of the way: 0.4 + 0.75 * 0.4 = 0.7; before the first evaluation the first
    accuracy, after the last the last; an evaluation at the budget exactly is returned."""
    times, acc = [0.0, 10.0, 30.0], [0.2, 0.4, 0.8]
    assert experiment.accuracy_at_time(times, acc, 25.0) == pytest.approx(0.7, abs=1e-12)
    assert experiment.accuracy_at_time(times, acc, 5.0) == pytest.approx(0.3, abs=1e-12)
    assert experiment.accuracy_at_time(times, acc, 10.0) == 0.4
    assert experiment.accuracy_at_time(times, acc, 99.0) == 0.8
    assert experiment.accuracy_at_time([20.0, 30.0], [0.5, 0.9], 3.0) == 0.5


def test_accuracy_at_time_rejects_bad_inputs(experiment) -> None:
    """Reference: the documented contract (non-empty lists of equal length)."""
    with pytest.raises(ValueError, match="same length"):
        experiment.accuracy_at_time([0.0, 1.0], [0.5], 0.5)
    with pytest.raises(ValueError, match="non-empty"):
        experiment.accuracy_at_time([], [], 0.5)


def test_eval_curve_accumulates_time_and_samples(experiment) -> None:
    """Reference: a log written by hand. Per-step sample counts (GRPO's log) are summed,
    cumulative ones (PPO's, DPO's) are taken as they are; the setup time is added to every
    evaluation's time, and step 0 is at the setup time."""
    steps = [
        {"step": 1, "time": 2.0, "samples": 128.0},
        {"step": 2, "time": 5.0, "samples": 256.0},
    ]
    evals = [
        {"step": 0, "accuracy": 0.4, "length": 16.0, "trace_fraction": 0.5},
        {"step": 2, "accuracy": 0.6, "length": 18.0, "trace_fraction": 0.7},
    ]
    per_step = experiment.eval_curve(
        steps, evals, time_key="time", setup=1.0, samples_cumulative=False
    )
    assert per_step["seconds"] == [1.0, 6.0]
    assert per_step["samples"] == [0.0, 384.0]
    assert per_step["accuracy"] == [0.4, 0.6] and per_step["length"] == [16.0, 18.0]
    cumulative = experiment.eval_curve(
        steps, evals, time_key="time", setup=0.0, samples_cumulative=True
    )
    assert cumulative["samples"] == [0.0, 256.0] and cumulative["seconds"] == [0.0, 5.0]


def test_a_short_slice_of_the_stored_grpo_run_reproduces(experiment, stored, monkeypatch) -> None:
    """Reference: experiments/results/comparison.json, written by experiments/comparison.py.
    Five updates of GRPO's seed 0, re-run through the script's own ``run``, log the same
    batches (length, exact KL to the reference), start from the same validation accuracy and
    reach the stored validation accuracy after update 5 (a point on the stored curve that
    depends on the training, unlike the start); the tolerances allow another CPU's kernels to
    flip a sampled token (0.03 is 6 of the 200 validation problems)."""
    monkeypatch.setattr(PolicyTrainer, "evaluate", PolicyTrainer.evaluate)  # restored after
    steps = stored["eval_every"]
    record = experiment.run("grpo", 0, steps, stored["eval_every"], None)
    run = stored["runs"]["grpo"]["0"]
    assert record["config"] == run["config"]
    assert record["evals"]["step"] == run["evals"]["step"][:2] == [0, steps]
    assert record["evals"]["accuracy"][0] == run["evals"]["accuracy"][0]
    assert record["evals"]["accuracy"][1] == pytest.approx(run["evals"]["accuracy"][1], abs=0.03)
    assert record["evals"]["accuracy"][1] - record["evals"]["accuracy"][0] > 0.1  # it learned
    for i in range(steps):
        assert record["step_length"][i] == pytest.approx(run["step_length"][i], abs=0.5), i
        assert record["step_kl"][i] == pytest.approx(run["step_kl"][i], rel=0.2, abs=1e-4), i
    assert record["models_in_memory"] == run["models_in_memory"] == 2
    assert record["samples"] == steps * 128


def test_stored_record_is_complete(stored) -> None:
    """Reference: the stored JSON itself. Every method has every seed, each run made the
    stated number of updates, and every evaluation curve starts at step 0 and ends at it."""
    assert stored["seeds"] == [0, 1, 2]
    for method, seeds in stored["runs"].items():
        assert sorted(seeds) == ["0", "1", "2"], method
        for run in seeds.values():
            assert run["evals"]["step"][0] == 0 and run["evals"]["step"][-1] == stored["steps"]
            assert len(run["step_length"]) == stored["steps"], method


def test_pitfall_every_method_must_start_from_the_same_policy(stored) -> None:
    """Reference: the base checkpoint measured here. Every run's evaluation before its first
    update is the same number (the SFT checkpoint on the same 200 problems); the base
    checkpoint, a different start, scores far from it."""
    from tutorial_code.checkpoints import load_checkpoint
    from tutorial_code.rl import evaluate_greedy
    from tutorial_code.task import sample_problems

    starts = {run["evals"]["accuracy"][0] for s in stored["runs"].values() for run in s.values()}
    assert len(starts) == 1
    base = evaluate_greedy(load_checkpoint("base"), sample_problems(200, split="val")).accuracy
    assert abs(base - starts.pop()) > 0.2


def test_pitfall_equal_updates_are_not_equal_compute(stored) -> None:
    """Reference: the stored JSON. At the same number of updates the methods generated
    samples and spent training time that differ by more than a factor of two, so a table at
    equal steps alone compares unequal budgets."""
    samples, seconds = {}, {}
    for method, seeds in stored["runs"].items():
        samples[method] = sum(r["samples"] for r in seeds.values()) / len(seeds)
        seconds[method] = sum(r["train_seconds"] for r in seeds.values()) / len(seeds)
    assert max(samples.values()) > 2 * min(samples.values())
    assert max(seconds.values()) > 2 * min(seconds.values())


def test_pitfall_models_held_are_not_models_needed(stored) -> None:
    """Reference: the stored configurations. DAPO has no KL term (beta = 0), so it needs no
    reference model, yet the shared harness keeps one: two models in memory, like GRPO with
    its KL term; PPO with a reward model holds four."""
    dapo = stored["runs"]["dapo"]["0"]
    assert dapo["config"]["beta"] == 0.0 and dapo["models_in_memory"] == 2
    assert stored["runs"]["ppo_rm"]["0"]["models_in_memory"] == 4
    assert stored["runs"]["ppo_checker"]["0"]["models_in_memory"] == 3


def test_pitfall_timings_vary_between_identical_runs(stored) -> None:
    """Reference: the two stored runs (experiments/results/comparison_40.json, an earlier run
    of the same script for 40 updates). Their first 40 updates are the same computation: every
    validation accuracy agrees exactly, while the training time of the same updates differs
    by more than half for some run."""
    earlier = json.loads((RESULTS.parent / "comparison_40.json").read_text(encoding="utf-8"))
    n = earlier["steps"] // stored["eval_every"] + 1
    ratios = []
    for method, seeds in earlier["runs"].items():
        for seed, run in seeds.items():
            later = stored["runs"][method][seed]["evals"]
            assert run["evals"]["accuracy"] == later["accuracy"][:n], (method, seed)
            ratios.append(run["evals"]["seconds"][-1] / later["seconds"][n - 1])
    assert max(ratios) > 1.5


def test_pitfall_one_kl_measure_for_every_method(stored) -> None:
    """Reference: the stored JSON and the definition of KL (zero between a model and itself).
    The trainers' own logs do not share a KL: offline DPO logs none per step, GRPO and DAPO
    the exact per-token KL of each batch, PPO its sampled batch's; the final evaluation gives
    every policy the same exact per-token measure, which is 0 for the SFT start itself."""
    assert stored["runs"]["dpo"]["0"]["step_kl"] is None
    assert stored["runs"]["grpo"]["0"]["step_kl"] is not None
    assert stored["sft"]["kl"] == 0.0
    for method, seeds in stored["runs"].items():
        for run in seeds.values():
            assert 0.0 < run["final"]["kl"] < 1.0, method
