"""DPO on the alignment testbed: the pipeline, a beta sweep, sum vs mean log-probs, the loss
variants and online DPO, each from the SFT checkpoint with several seeds.

For every seed the script samples preference pairs once from the SFT policy (``--problems``
training problems x 8 samples at temperature 1; chosen = the first correct sample, rejected =
the first wrong one) and trains every configuration of :data:`RUNS` on those same pairs, so
that the configurations differ only in the loss. ``online`` instead samples fresh pairs from
the current policy every few steps. During training: greedy accuracy on 200 validation
problems, the exact per-token KL to the reference on one sample per problem, and the
implicit-reward accuracy on held-out pairs (from validation problems), every ``eval_every``
steps; every step: TRL's metrics on the batch. After training: greedy accuracy, trace use and
length on the 500 test problems of the interlude chapter (and pass@k from 16 samples per
problem for ``main`` and ``online``).

Everything runs on one CPU thread with fixed seeds. Results, with every raw number, the
command, the machine and the date, go to ``experiments/results/dpo.json``, which chapter 8
reads.

Usage::

    python experiments/dpo.py                     # all runs, seeds 0 1 2
    python experiments/dpo.py --runs main hinge --seeds 0 --output /tmp/dpo.json
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import platform
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import torch

from tutorial_code.checkpoints import load_checkpoint
from tutorial_code.dpo import DPOConfig, DPOTrainer, sample_pairs
from tutorial_code.notebook import cpu_model, machine_summary
from tutorial_code.records import dumps, rounded
from tutorial_code.rl import evaluate_greedy, evaluate_sampling
from tutorial_code.task import sample_problems

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_OUTPUT = ROOT / "experiments" / "results" / "dpo.json"
#: The interlude's held-out test problems and its sampling evaluation (n = 16, T = 1).
N_TEST, N_SAMPLES, SAMPLE_SEED = 500, 16, 1234
#: Held-out pairs for the implicit-reward accuracy: SFT samples on validation problems.
EVAL_PAIR_PROBLEMS, EVAL_PAIR_SEED = 256, 4321


@dataclass(frozen=True)
class Run:
    """One configuration of the experiment."""

    config: DPOConfig
    steps: int = 80
    eval_every: int = 20
    online: bool = False
    pass_at_k: bool = False


#: Every configuration; all offline ones train on the same pairs for a given seed.
RUNS: dict[str, Run] = {
    "main": Run(DPOConfig(), eval_every=10, pass_at_k=True),
    "lr_1e-4": Run(DPOConfig(lr=1e-4), steps=60, eval_every=10),
    "beta_0.03": Run(DPOConfig(beta=0.03)),
    "beta_0.3": Run(DPOConfig(beta=0.3)),
    "beta_1": Run(DPOConfig(beta=1.0)),
    "mean_beta_0.1": Run(DPOConfig(average=True)),
    "mean_beta_2": Run(DPOConfig(average=True, beta=2.0)),
    "ipo_tau_0.5": Run(DPOConfig(loss_type="ipo", beta=0.5)),
    "hinge": Run(DPOConfig(loss_type="hinge")),
    "cdpo_0.2": Run(DPOConfig(label_smoothing=0.2)),
    "online": Run(DPOConfig(), eval_every=10, online=True, pass_at_k=True),
}


def columns(rows: list[dict[str, float]]) -> dict[str, list[float]]:
    """Per-step rows as one list per key (a smaller, still complete JSON)."""
    return {key: [row[key] for row in rows] for key in rows[0]} if rows else {}


def eval_pairs() -> list[dict[str, str]]:
    """Held-out pairs: SFT samples (8 per problem) on validation problems."""
    problems = sample_problems(EVAL_PAIR_PROBLEMS, split="val", seed=1)
    generator = torch.Generator().manual_seed(EVAL_PAIR_SEED)
    return sample_pairs(load_checkpoint("sft"), problems, num_generations=8, generator=generator)


def final_evaluation(trainer: DPOTrainer, test: list, *, pass_at_k: bool) -> dict:
    """Greedy (and optionally sampled) evaluation of the trained policy on the test problems."""
    greedy = evaluate_greedy(trainer.policy, test)
    result = {
        "greedy_accuracy": greedy.accuracy,
        "greedy_trace_fraction": greedy.trace_fraction,
        "greedy_mean_length": greedy.mean_length,
    }
    if pass_at_k:
        sampled = evaluate_sampling(
            trainer.policy,
            test,
            n=N_SAMPLES,
            generator=torch.Generator().manual_seed(SAMPLE_SEED),
        )
        result["pass_at_k"] = {str(k): sampled.pass_at(k) for k in (1, 2, 4, 8, 16)}
        result["sampled_mean_length"] = sampled.mean_length
        result["sampled_trace_fraction"] = sampled.trace_fraction
    return result


def run_one(
    name: str,
    seed: int,
    *,
    pairs: list[dict[str, str]] | None,
    held_out: list[dict[str, str]],
    test: list,
    steps: int | None = None,
) -> tuple[dict, DPOTrainer]:
    """Train configuration ``name`` with ``seed`` (on ``pairs``, or sampling them when
    ``None``) and return its record and trainer."""
    run = RUNS[name]
    start, cpu_start = time.perf_counter(), time.process_time()
    trainer = DPOTrainer(
        run.config,
        seed=seed,
        pairs=None if run.online else pairs,
        online=run.online,
        eval_every=run.eval_every,
        eval_pairs=held_out,
    )
    trainer.train(run.steps if steps is None else steps)
    record = {
        "steps": columns(trainer.log.steps),
        "evals": columns(trainer.log.evals),
        "final": final_evaluation(trainer, test, pass_at_k=run.pass_at_k),
        "train_seconds": trainer.train_seconds,
        "wall_seconds": time.perf_counter() - start,
        "cpu_seconds": time.process_time() - cpu_start,
        "samples": trainer.samples,
    }
    return record, trainer


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--runs", nargs="+", default=list(RUNS), choices=list(RUNS))
    parser.add_argument("--output", type=Path, default=DEFAULT_OUTPUT)
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    start, cpu_start = time.perf_counter(), time.process_time()
    test = sample_problems(N_TEST, split="test")
    held_out = eval_pairs()
    sft = evaluate_greedy(load_checkpoint("sft"), test)
    print(f"sft: test greedy accuracy {sft.accuracy:.3f}; {len(held_out)} held-out pairs")

    pairs: dict[int, list[dict[str, str]]] = {}
    pair_seconds: dict[int, float] = {}
    for seed in args.seeds:  # the pairs of the offline runs, once per seed
        t0 = time.process_time()
        pairs[seed] = DPOTrainer(DPOConfig(), seed=seed).pairs
        pair_seconds[seed] = time.process_time() - t0
        print(f"seed {seed}: {len(pairs[seed])} pairs in {pair_seconds[seed]:.1f} s", flush=True)

    runs: dict[str, dict] = {}
    for name in args.runs:
        run = RUNS[name]
        runs[name] = {
            "config": dataclasses.asdict(run.config),
            "steps": run.steps,
            "eval_every": run.eval_every,
            "online": run.online,
            "seeds": {},
        }
        for seed in args.seeds:
            record, _ = run_one(name, seed, pairs=pairs[seed], held_out=held_out, test=test)
            runs[name]["seeds"][str(seed)] = record
            best = max(record["evals"]["accuracy"])
            print(
                f"{name} seed {seed}: test {record['final']['greedy_accuracy']:.3f}, best val "
                f"{best:.3f}, kl {record['evals']['kl'][-1]:.3f}, "
                f"{record['wall_seconds']:.0f} s",
                flush=True,
            )

    results = {
        "command": "python " + " ".join([sys.argv[0], *(argv or sys.argv[1:])]),
        "date": datetime.date.today().isoformat(),
        "machine": {
            "summary": machine_summary(),
            "cpu": cpu_model(),
            "python": platform.python_version(),
            "torch": torch.__version__,
            "threads": torch.get_num_threads(),
        },
        "seeds": args.seeds,
        "eval": {
            "val_problems": 200,
            "test_problems": N_TEST,
            "samples_per_problem": N_SAMPLES,
            "sample_seed": SAMPLE_SEED,
            "eval_pair_problems": EVAL_PAIR_PROBLEMS,
            "eval_pair_seed": EVAL_PAIR_SEED,
        },
        "sft": {
            "greedy_accuracy": sft.accuracy,
            "greedy_trace_fraction": sft.trace_fraction,
            "greedy_mean_length": sft.mean_length,
        },
        "pairs": {str(seed): pairs[seed] for seed in args.seeds},
        "pair_cpu_seconds": {str(seed): pair_seconds[seed] for seed in args.seeds},
        "eval_pairs": held_out,
        "runs": runs,
        "total_seconds": time.perf_counter() - start,
        "total_cpu_seconds": time.process_time() - cpu_start,
    }
    results = rounded(results, decimals=6)  # far below seed-to-seed noise
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(dumps(results), encoding="utf-8")
    print(
        f"wrote {args.output} in {results['total_seconds']:.0f} s "
        f"({results['total_cpu_seconds']:.0f} s of CPU time)",
        flush=True,
    )
    return results


if __name__ == "__main__":
    main()
