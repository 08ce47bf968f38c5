"""GRPO from the SFT checkpoint on the addition task: the baseline and its ablations, 3 seeds.

Every run starts from ``load_checkpoint("sft")``, samples fresh training problems with the
true checker as the reward, and trains with :func:`tutorial_code.grpo.train_grpo` for
``--steps`` steps, evaluating greedy accuracy on 200 validation problems every 10 steps. After
the last step the policy is evaluated on the 500 test problems: greedy accuracy, and pass@1 /
pass@8 from 8 samples per problem at temperature 1. The runs (``RUNS``) change one setting of
the baseline each (128 completions per step throughout):

* ``grpo``: the baseline, ``GRPOConfig()`` (G = 8, 16 prompts, beta = 0.04, ``"grpo"``);
* ``G2``, ``G4``: group size 2 and 4 (64 and 32 prompts per step);
* ``beta0``: no KL penalty (TRL's default);
* ``bnpo``, ``dr_grpo``: token-level aggregations (the Dr. GRPO length effect);
* ``mu2``: two optimizer steps per sampled batch (``num_iterations=2``).

The SFT checkpoint itself is evaluated the same way (sampling seed 1000). One thread; the
training time of each run (sampling and updates, evaluations excluded) is recorded, but the
chapter quotes no timing from it. Everything else is deterministic on one machine.

Usage::

    python experiments/grpo.py             # writes experiments/results/grpo.json
    python experiments/grpo.py --runs grpo --seeds 0 --steps 3 --output /tmp/slice.json
"""

from __future__ import annotations

import argparse
import datetime
import functools
import sys
import time
from pathlib import Path

import torch

from tutorial_code.checkpoints import load_checkpoint
from tutorial_code.grpo import GRPOConfig, train_grpo
from tutorial_code.model import GPTModel
from tutorial_code.notebook import cpu_model, machine_summary
from tutorial_code.records import dumps, rounded
from tutorial_code.rl import evaluate_greedy, evaluate_sampling
from tutorial_code.task import sample_problems

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_OUTPUT = ROOT / "experiments" / "results" / "grpo.json"

#: Seven significant digits (float32 carries about that many); NaN stored as null.
_round = functools.partial(rounded, nan_to_none=True)

BASELINE = GRPOConfig()
RUNS: dict[str, GRPOConfig] = {
    "grpo": BASELINE,
    "G2": GRPOConfig(num_generations=2, prompts_per_step=64),
    "G4": GRPOConfig(num_generations=4, prompts_per_step=32),
    "beta0": GRPOConfig(beta=0.0),
    "bnpo": GRPOConfig(loss_type="bnpo"),
    "dr_grpo": GRPOConfig(loss_type="dr_grpo"),
    "mu2": GRPOConfig(num_iterations=2),
}
#: The per-step quantities stored (the log has a few more).
STEP_KEYS = (
    "step",
    "time",
    "reward",
    "accuracy",
    "trace_fraction",
    "length",
    "length_right",
    "length_wrong",
    "kl",
    "kl_k3",
    "loss",
    "policy_loss",
    "grad_norm",
    "entropy",
    "frac_reward_zero_std",
    "clip_ratio/region_mean",
    "truncated_fraction",
)
TEST_PROBLEMS = 500
SAMPLES = 8


def final_evaluation(policy: GPTModel, *, sampling_seed: int) -> dict[str, float]:
    """Greedy and sampled accuracy of ``policy`` on the test problems."""
    test = sample_problems(TEST_PROBLEMS, split="test")
    greedy = evaluate_greedy(policy, test)
    sampled = evaluate_sampling(
        policy, test, n=SAMPLES, generator=torch.Generator().manual_seed(sampling_seed)
    )
    return {
        "greedy_accuracy": greedy.accuracy,
        "greedy_trace_fraction": greedy.trace_fraction,
        "greedy_length": greedy.mean_length,
        "pass@1": sampled.pass_at(1),
        f"pass@{SAMPLES}": sampled.pass_at(SAMPLES),
        "sampled_trace_fraction": sampled.trace_fraction,
        "sampled_length": sampled.mean_length,
    }


def run(name: str, seed: int, steps: int, *, eval_every: int = 10) -> dict:
    """One training run of ``RUNS[name]`` and its final evaluation."""
    policy = load_checkpoint("sft")
    started = time.perf_counter()
    log = train_grpo(RUNS[name], seed=seed, steps=steps, eval_every=eval_every, start=policy)
    wall = time.perf_counter() - started
    record = {
        "name": name,
        "seed": seed,
        "wall_seconds": wall,
        "steps": {k: [_round(row[k]) for row in log.steps] for k in STEP_KEYS},
        "evals": {k: [_round(row[k]) for row in log.evals] for k in log.evals[0]},
    }
    record["steps"]["step"] = [row["step"] for row in log.steps]
    record["evals"]["step"] = [row["step"] for row in log.evals]
    record["final"] = final_evaluation(policy, sampling_seed=1000 + seed)
    return record


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", nargs="+", choices=list(RUNS), default=list(RUNS))
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--steps", type=int, default=60)
    parser.add_argument("--output", type=Path, default=DEFAULT_OUTPUT)
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    started = time.perf_counter()
    results = {
        "command": "python " + " ".join([sys.argv[0], *(argv or sys.argv[1:])]),
        "date": datetime.date.today().isoformat(),
        "machine": {"summary": machine_summary(), "cpu": cpu_model()},
        "threads": torch.get_num_threads(),
        "steps": args.steps,
        "seeds": args.seeds,
        "test_problems": TEST_PROBLEMS,
        "samples_per_problem": SAMPLES,
        "configs": {name: RUNS[name].to_dict() for name in args.runs},
        "sft": final_evaluation(load_checkpoint("sft"), sampling_seed=1000),
        "runs": [],
    }
    for name in args.runs:
        for seed in args.seeds:
            record = run(name, seed, args.steps)
            results["runs"].append(record)
            final = record["final"]
            print(
                f"{name:>8} seed {seed}: greedy {final['greedy_accuracy']:.3f}, "
                f"pass@1 {final['pass@1']:.3f}, pass@{SAMPLES} {final[f'pass@{SAMPLES}']:.3f}, "
                f"{record['wall_seconds']:.0f} s",
                flush=True,
            )
    results["total_seconds"] = time.perf_counter() - started
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(dumps(results), encoding="utf-8")
    return results


if __name__ == "__main__":
    main()
