"""PPO, DPO, GRPO and DAPO from the same SFT checkpoint, for the same number of updates, seeds.

Six methods (``METHODS``), each with the configuration its chapter uses:

* ``ppo_checker``: :class:`tutorial_code.ppo.PPOTrainer`, ``PPOConfig()``, the checker's reward;
* ``ppo_rm``: the same rewarded by the learned reward model
  (:func:`tutorial_code.ppo.train_reward_model`, trained once, its time counted as setup);
* ``dpo``: :class:`tutorial_code.dpo.DPOTrainer`, ``DPOConfig()``, offline pairs sampled once
  from the SFT policy (their sampling time counted as setup, inside the trainer's time);
* ``dpo_online``: the same with fresh pairs from the current policy every 5 steps;
* ``grpo``: :func:`tutorial_code.grpo.train_grpo`, ``GRPOConfig()``;
* ``dapo``: :func:`tutorial_code.dapo.train_dapo`, ``DAPOConfig()``.

Every run starts from ``load_checkpoint("sft")`` and makes ``--steps`` trainer steps (one
sampled batch, or one batch of pairs, per step: the "updates" the comparison equalises; the
optimizer steps per trainer step are recorded as ``optimizer_steps_per_update``). Greedy
accuracy on the 200 validation problems every ``--eval-every`` steps, with the cumulative
training wall time at that step (sampling, scoring and updates; evaluations excluded; plus
the setup time above) and the samples generated so far. After training, on held-out test
problems: greedy accuracy and mean length (``N_TEST``), and ``N_SAMPLES`` samples at
temperature 1 of the first ``N_SAMPLED`` problems: pass@1 and pass@8, their mean length and
the exact per-token KL to the reference (the SFT checkpoint) on the first sample of each.

Memory: each run is a fresh process (``spawn``, one task per process) and records its peak
resident set size (``resource.getrusage(RUSAGE_SELF).ru_maxrss``, which counts torch's
allocations, unlike ``tracemalloc``) and its size right after loading the SFT checkpoint;
``models_in_memory`` counts the ``GPTModel`` instances alive at the end of training (the
policy, the reference, PPO's value model and reward model).

The equal-wall-clock comparison is read from the same runs: :func:`accuracy_at_time`
interpolates each run's evaluations linearly in cumulative training time.

Usage::

    nice -n 10 python experiments/comparison.py --jobs 2      # experiments/results/comparison.json
    python experiments/comparison.py --methods grpo --seeds 0 --steps 2 --output /tmp/c.json
    python experiments/comparison.py --only-sft    # (re)evaluate the SFT start into the output

``experiments/results/comparison_40.json`` is an earlier run of this script for 40 updates;
chapter 11 compares its timings with the 60-update run's.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import gc
import json
import multiprocessing
import os
import resource
import sys
import tempfile
import time
import warnings
from pathlib import Path

import torch

from tutorial_code.records import dumps, rounded

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_OUTPUT = ROOT / "experiments" / "results" / "comparison.json"
METHODS = ("ppo_checker", "ppo_rm", "dpo", "dpo_online", "grpo", "dapo")
N_TEST, N_SAMPLED, N_SAMPLES = 500, 200, 8


def rss_mib() -> float:
    """Peak resident set size of this process so far, MiB (``ru_maxrss`` is KiB on Linux)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def accuracy_at_time(times: list[float], accuracies: list[float], budget: float) -> float:
    """Accuracy at ``budget`` seconds, linear between the evaluations ``(times[i],
    accuracies[i])`` (times non-decreasing); the last accuracy past the last time, the first
    before the first."""
    if not times or len(times) != len(accuracies):
        raise ValueError("times and accuracies must be non-empty and of the same length")
    if budget <= times[0]:
        return accuracies[0]
    for (t0, a0), (t1, a1) in zip(zip(times, accuracies), zip(times[1:], accuracies[1:])):
        if budget <= t1:
            return a1 if t1 == t0 else a0 + (a1 - a0) * (budget - t0) / (t1 - t0)
    return accuracies[-1]


def eval_curve(
    steps: list[dict], evals: list[dict], *, time_key: str, setup: float, samples_cumulative: bool
) -> dict[str, list[float]]:
    """The evaluations with the cumulative time and samples at their step."""
    time_at, samples_at, total = {0: setup}, {0: 0.0}, 0.0
    for row in steps:
        total = row["samples"] if samples_cumulative else total + row["samples"]
        time_at[row["step"]] = row[time_key] + setup
        samples_at[row["step"]] = total
    return {
        "step": [int(e["step"]) for e in evals],
        "seconds": [time_at[e["step"]] for e in evals],
        "samples": [samples_at[e["step"]] for e in evals],
        "accuracy": [e["accuracy"] for e in evals],
        "length": [e["length"] for e in evals],
        "trace_fraction": [e["trace_fraction"] for e in evals],
    }


@torch.no_grad()
def final_evaluation(policy, *, seed: int) -> dict:
    """Greedy test accuracy and length; pass@k, sampled length and KL to the SFT start."""
    from tutorial_code.checkpoints import load_checkpoint
    from tutorial_code.rl import (
        evaluate_greedy,
        evaluate_sampling,
        generate_completions,
        kl_to_reference,
    )
    from tutorial_code.task import encode_prompts, sample_problems

    policy.eval()
    test = sample_problems(N_TEST, split="test")
    greedy = evaluate_greedy(policy, test)
    sampled = evaluate_sampling(
        policy,
        test[:N_SAMPLED],
        n=N_SAMPLES,
        generator=torch.Generator().manual_seed(10_000 + seed),
    )
    out = generate_completions(
        policy,
        encode_prompts(test[:N_SAMPLED]),
        generator=torch.Generator().manual_seed(20_000 + seed),
    )
    ref = load_checkpoint("sft")
    kl = kl_to_reference(
        policy, ref, out.sequences, out.completion_mask, attention_mask=out.attention_mask
    )
    length = out.completion_mask.sum(dim=1).double().mean().item()
    return {
        "greedy_accuracy": greedy.accuracy,
        "greedy_length": greedy.mean_length,
        "greedy_trace_fraction": greedy.trace_fraction,
        "pass@1": sampled.pass_at(1),
        f"pass@{N_SAMPLES}": sampled.pass_at(N_SAMPLES),
        "sampled_length": sampled.mean_length,
        "kl": kl,
        "kl_sequence": kl * length,
    }


def count_models() -> int:
    """``GPTModel`` instances alive in this process."""
    from tutorial_code.model import GPTModel

    gc.collect()
    with warnings.catch_warnings():  # isinstance on torch's deprecated module attributes
        warnings.simplefilter("ignore")
        return sum(isinstance(o, GPTModel) for o in gc.get_objects())


def count_models_at_evaluations() -> list[int]:
    """Record :func:`count_models` at every harness evaluation (GRPO's and DAPO's trainer is
    local to ``train_grpo``, so the models are counted while it is alive); the list of
    counts, filled as training goes."""
    from tutorial_code.rl import PolicyTrainer

    counts: list[int] = []
    evaluate = PolicyTrainer.evaluate

    def counting(self: PolicyTrainer) -> dict[str, float]:
        counts.append(count_models())
        return evaluate(self)

    PolicyTrainer.evaluate = counting
    return counts


def run(method: str, seed: int, steps: int, eval_every: int, rm_path: str | None) -> dict:
    """One training run (in a fresh process) and its record."""
    torch.set_num_threads(1)
    from tutorial_code.checkpoints import load_checkpoint

    policy = load_checkpoint("sft")
    rss_start = rss_mib()
    counts = count_models_at_evaluations()
    setup = 0.0
    wall = time.perf_counter()
    if method.startswith("ppo"):
        from tutorial_code.ppo import PPOConfig, PPOTrainer

        rm = None
        if method == "ppo_rm":
            blob = torch.load(rm_path, weights_only=False)
            rm, setup = blob["model"], blob["seconds"]
        config = PPOConfig()
        trainer = PPOTrainer(
            config,
            seed=seed,
            reward="checker" if rm is None else "reward_model",
            reward_model=rm,
            policy=policy,
            eval_every=eval_every,
        )
        log = trainer.train(steps)
        curve = eval_curve(
            log.steps, log.evals, time_key="seconds", setup=setup, samples_cumulative=True
        )
        per_update = config.num_ppo_epochs * config.num_mini_batches
        config_dict = dataclasses.asdict(config)
    elif method.startswith("dpo"):
        from tutorial_code.dpo import DPOConfig, DPOTrainer

        config = DPOConfig()
        trainer = DPOTrainer(
            config,
            seed=seed,
            online=method == "dpo_online",
            eval_every=eval_every,
            policy=policy,
        )
        setup, samples_setup = (
            trainer.train_seconds,
            float(trainer.samples),
        )  # the offline pairs: sampled and scored by the ref
        log = trainer.train(steps)
        curve = eval_curve(
            log.steps, log.evals, time_key="time", setup=0.0, samples_cumulative=True
        )
        curve["seconds"][0] = setup
        curve["samples"][0] = samples_setup
        per_update = 1
        config_dict = dataclasses.asdict(config)
    else:
        if method == "grpo":
            from tutorial_code.grpo import GRPOConfig, train_grpo

            config, train = GRPOConfig(), train_grpo
        else:
            from tutorial_code.dapo import DAPOConfig, train_dapo

            config, train = DAPOConfig(), train_dapo
        log = train(config, seed=seed, steps=steps, eval_every=eval_every, start=policy)
        curve = eval_curve(
            log.steps, log.evals, time_key="time", setup=0.0, samples_cumulative=False
        )
        per_update = config.num_iterations
        config_dict = config.to_dict()
    models = max([count_models(), *counts])
    train_wall = time.perf_counter() - wall
    rss_train = rss_mib()
    final = final_evaluation(policy, seed=seed)
    step_kl = [row.get("kl") for row in log.steps]
    return {
        "method": method,
        "seed": seed,
        "steps": steps,
        "config": config_dict,
        "optimizer_steps_per_update": per_update,
        "setup_seconds": setup,
        "train_seconds": curve["seconds"][-1],
        "wall_seconds_with_evals": train_wall,
        "samples": curve["samples"][-1],
        "evals": curve,
        "step_kl": step_kl if all(k is not None for k in step_kl) else None,
        "step_length": [row.get("length") for row in log.steps],
        "final": final,
        "models_in_memory": models,
        "rss_mib_after_load": rss_start,
        "peak_rss_mib_training": rss_train,
        "peak_rss_mib": rss_mib(),
    }


def evaluate_sft() -> dict:
    """The final evaluation of the SFT checkpoint itself (seed 0): every run's start."""
    torch.set_num_threads(1)
    from tutorial_code.checkpoints import load_checkpoint

    return final_evaluation(load_checkpoint("sft"), seed=0)


def _run_star(args: tuple) -> dict:
    t0 = time.perf_counter()
    record = run(*args)
    final = record["final"]
    print(
        f"{record['method']:>12} seed {record['seed']}: test {final['greedy_accuracy']:.3f}, "
        f"kl {final['kl']:.3f}, train {record['train_seconds']:.0f} s, "
        f"run {time.perf_counter() - t0:.0f} s, peak {record['peak_rss_mib']:.0f} MiB",
        flush=True,
    )
    return record


def train_rm(path: str) -> dict:
    """Train the reward model once, save it with its training time; its record."""
    torch.set_num_threads(1)
    from tutorial_code.ppo import RewardModelConfig, train_reward_model

    t0 = time.perf_counter()
    rm, record = train_reward_model(RewardModelConfig())
    seconds = time.perf_counter() - t0
    torch.save({"model": rm, "seconds": seconds}, path)
    return {
        "config": dataclasses.asdict(RewardModelConfig()),
        "seconds": seconds,
        "pairs": record["pairs"],
    }


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--methods", nargs="+", choices=METHODS, default=list(METHODS))
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--steps", type=int, default=60)
    parser.add_argument("--eval-every", type=int, default=5)
    parser.add_argument("--jobs", type=int, default=1)
    parser.add_argument("--output", type=Path, default=DEFAULT_OUTPUT)
    parser.add_argument(
        "--only-sft", action="store_true", help="add the SFT evaluation to an existing output"
    )
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    from tutorial_code.notebook import cpu_model, machine_summary

    command = "python " + " ".join([Path(sys.argv[0]).name, *(argv or sys.argv[1:])])
    if args.only_sft:
        results = json.loads(args.output.read_text(encoding="utf-8"))
        results["sft"] = rounded(evaluate_sft())
        results["sft_command"] = command
        args.output.write_text(dumps(results, allow_nan=False), encoding="utf-8")
        return results

    started = time.perf_counter()
    ctx = multiprocessing.get_context("spawn")
    with tempfile.TemporaryDirectory() as tmp:
        rm_path = os.path.join(tmp, "rm.pt")
        reward_model = None
        with ctx.Pool(args.jobs, maxtasksperchild=1) as pool:
            # The reward model trains while the other runs start; its runs queue last.
            rm_job = pool.apply_async(train_rm, (rm_path,)) if "ppo_rm" in args.methods else None
            tasks = [
                (m, s, args.steps, args.eval_every, rm_path)
                for m in args.methods
                for s in args.seeds
            ]
            jobs = [pool.apply_async(_run_star, (t,)) for t in tasks if t[0] != "ppo_rm"]
            sft_job = pool.apply_async(evaluate_sft)
            if rm_job is not None:
                reward_model = rm_job.get()
                jobs += [pool.apply_async(_run_star, (t,)) for t in tasks if t[0] == "ppo_rm"]
            records = [job.get() for job in jobs]
            sft = sft_job.get()
    results = {
        "command": command,
        "date": datetime.date.today().isoformat(),
        "machine": {"summary": machine_summary(), "cpu": cpu_model(), "jobs": args.jobs},
        "threads": 1,
        "methods": args.methods,
        "seeds": args.seeds,
        "steps": args.steps,
        "eval_every": args.eval_every,
        "final_eval": {"test": N_TEST, "sampled": N_SAMPLED, "samples": N_SAMPLES},
        "memory_measure": "resource.getrusage(RUSAGE_SELF).ru_maxrss of a fresh process per run",
        "reward_model": reward_model,
        "sft": sft,
        "runs": {m: {str(r["seed"]): r for r in records if r["method"] == m} for m in args.methods},
        "total_wall_seconds": time.perf_counter() - started,
    }
    results = rounded(results)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(dumps(results, allow_nan=False), encoding="utf-8")
    print(f"wrote {args.output} in {results['total_wall_seconds']:.0f} s", flush=True)
    return results


if __name__ == "__main__":
    main()
