"""DAPO's changes one at a time, on the addition task, from the SFT checkpoint, over seeds.

Arms (``--arms``, default all): ``grpo`` (every DAPO change off: ``DAPOConfig.grpo()``), one
arm per change added alone to it (``clip_higher``, ``dynamic_sampling``,
``token_level_loss``, ``overlong_shaping``, ``overlong_filtering``, ``no_kl``), and ``dapo``
(``DAPOConfig()``: all but overlong filtering, as verl's recipe).
Every arm uses the same batch (16 prompts x 8 completions per optimizer step), learning rate,
generation limit (28 tokens) and two passes per batch, and trains for ``--steps`` steps with
:func:`tutorial_code.dapo.train_dapo` for each seed.

For each run the script stores the whole per-step log (accuracy, reward, entropy, KL,
lengths, clip fractions, the fraction of sampled groups without signal, samples generated,
...), the greedy validation accuracy every ``--eval-every`` steps, and a final evaluation of
the trained policy on held-out test problems: greedy accuracy (first ``--test`` problems,
at the task's 32-token limit, as the interlude measured the SFT model), and ``--samples``
completions at temperature 1 for each of the first ``--sampled`` test problems at the
training limit, with their lengths (the length distribution), truncation and pass@k; the
same final evaluation of the SFT checkpoint itself is stored as ``start``. Wall and CPU
seconds of every run are recorded; one torch thread.

Usage::

    python experiments/dapo_ablation.py    # writes experiments/results/dapo_ablation.json
    python experiments/dapo_ablation.py --arms grpo dapo --seeds 0 --steps 2 --output /tmp/x.json
"""

from __future__ import annotations

import argparse
import datetime
import json
import math
import sys
import time
from pathlib import Path

import torch

from tutorial_code.checkpoints import load_checkpoint
from tutorial_code.dapo import DAPOConfig, train_dapo
from tutorial_code.notebook import cpu_model, machine_summary
from tutorial_code.rl import evaluate_greedy, generate_completions, pass_at_k
from tutorial_code.task import (
    EOS_ID,
    decode_completion,
    encode_prompts,
    reward,
    sample_problems,
    uses_trace,
)

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_OUTPUT = ROOT / "experiments" / "results" / "dapo_ablation.json"

#: Each arm as changes to ``DAPOConfig.grpo()`` (``None``: the full ``DAPOConfig()``).
ARMS: dict[str, dict | None] = {
    "grpo": {},
    "clip_higher": {"epsilon_high": 0.28},
    "dynamic_sampling": {"dynamic_sampling": True},
    "token_level_loss": {"loss_type": "dapo"},
    "overlong_shaping": {"overlong_buffer_len": 4},
    "overlong_filtering": {"overlong_filtering": True},
    "no_kl": {"beta": 0.0},
    "dapo": None,
}


def arm_config(name: str) -> DAPOConfig:
    """The configuration of arm ``name``."""
    changes = ARMS[name]
    return DAPOConfig() if changes is None else DAPOConfig.grpo(**changes)


@torch.no_grad()
def final_evaluation(
    policy, config: DAPOConfig, *, seed: int, test: int, sampled: int, samples: int
) -> dict:
    """Greedy accuracy on ``test`` test problems; ``samples`` samples of ``sampled`` test
    problems at the training limit: lengths, truncation, trace use, pass@1 and pass@k."""
    problems = sample_problems(max(test, sampled), split="test")
    result: dict = {}
    if test:
        greedy = evaluate_greedy(policy, problems[:test])
        result |= {
            "greedy_accuracy": greedy.accuracy,
            "greedy_trace_fraction": greedy.trace_fraction,
            "greedy_mean_length": greedy.mean_length,
        }
    if sampled:
        chunk = problems[:sampled]
        out = generate_completions(
            policy,
            encode_prompts(chunk),
            num_generations=samples,
            max_new_tokens=config.max_completion_length,
            generator=torch.Generator().manual_seed(10_000 + seed),
        )
        texts = [decode_completion(row) for row in out.completion_ids]
        rows = [p for p in chunk for _ in range(samples)]
        correct = [reward(p, t) == 1.0 for p, t in zip(rows, texts)]
        eos = ((out.completion_ids == EOS_ID) & out.completion_mask.bool()).any(dim=1)
        counts = [sum(correct[i * samples : (i + 1) * samples]) for i in range(len(chunk))]
        result |= {
            "sampled_lengths": out.completion_mask.sum(dim=1).tolist(),
            "sampled_correct": [int(c) for c in correct],
            "sampled_trace": [int(uses_trace(t)) for t in texts],
            "sampled_truncated": [int(not e) for e in eos.tolist()],
            "pass_at_k": {
                str(k): sum(pass_at_k(samples, c, k) for c in counts) / len(counts)
                for k in (1, samples)
            },
        }
    return result


def _finite(value: float) -> float | None:
    """``None`` for a logged ``nan`` (e.g. the mean length of the right answers of a batch
    without one), so that the JSON file is strict JSON."""
    return value if math.isfinite(value) else None


def run(name: str, seed: int, args: argparse.Namespace) -> dict:
    """One training run of arm ``name`` with ``seed`` and its final evaluation."""
    config = arm_config(name)
    policy = load_checkpoint("sft")
    wall, cpu = time.perf_counter(), time.process_time()
    log = train_dapo(config, seed=seed, steps=args.steps, eval_every=args.eval_every, start=policy)
    train_wall, train_cpu = time.perf_counter() - wall, time.process_time() - cpu
    final = final_evaluation(
        policy, config, seed=seed, test=args.test, sampled=args.sampled, samples=args.samples
    )
    return {
        "steps": [{k: _finite(v) for k, v in row.items()} for row in log.steps],
        "evals": log.evals,
        "final": final,
        "seconds": {"train_wall": train_wall, "train_cpu": train_cpu},
    }


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--arms", nargs="+", choices=list(ARMS), default=list(ARMS))
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--steps", type=int, default=60)
    parser.add_argument("--eval-every", type=int, default=10)
    parser.add_argument("--test", type=int, default=500)
    parser.add_argument("--sampled", type=int, default=200)
    parser.add_argument("--samples", type=int, default=8)
    parser.add_argument("--output", type=Path, default=DEFAULT_OUTPUT)
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    started = time.perf_counter()
    start = final_evaluation(
        load_checkpoint("sft"),
        DAPOConfig(),
        seed=0,
        test=args.test,
        sampled=args.sampled,
        samples=args.samples,
    )
    runs: dict[str, dict[str, dict]] = {}
    for name in args.arms:
        runs[name] = {}
        for seed in args.seeds:
            t0 = time.perf_counter()
            runs[name][str(seed)] = run(name, seed, args)
            final = runs[name][str(seed)]["final"]
            print(
                f"{name:>18} seed {seed}: {time.perf_counter() - t0:6.1f} s, greedy test "
                f"accuracy {final.get('greedy_accuracy', float('nan')):.3f}",
                flush=True,
            )
    record = {
        "command": "python " + " ".join([Path(sys.argv[0]).name, *(argv or sys.argv[1:])]),
        "date": datetime.date.today().isoformat(),
        "machine": {"summary": machine_summary(), "cpu": cpu_model()},
        "threads": 1,
        "seeds": args.seeds,
        "steps": args.steps,
        "eval_every": args.eval_every,
        "final_eval": {"test": args.test, "sampled": args.sampled, "samples": args.samples},
        "arms": {name: arm_config(name).to_dict() for name in args.arms},
        "start": start,
        "runs": runs,
        "total_wall_seconds": time.perf_counter() - started,
    }
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(record, indent=1, allow_nan=False) + "\n", encoding="utf-8")
    return record


if __name__ == "__main__":
    main()
