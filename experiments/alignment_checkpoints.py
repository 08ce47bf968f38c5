"""Rebuild the alignment testbed's checkpoints from scratch and record their curves.

1. Pre-train the base model (``tutorial_code.checkpoints.recipes.pretrain_base``) and save
   ``base.safetensors``.
2. Fine-tune a copy on the fixed SFT set (``finetune_sft``) for ``SFT_RECIPE.steps`` steps and
   save ``sft.safetensors``; keep going for ``--extra-sft-steps`` more steps on the same data
   (not saved) to show where the curve goes. Every ``--eval-every`` steps: greedy accuracy
   on the validation problems and the accuracy of ``--curve-samples`` samples per problem at
   temperature 1.
3. Evaluate both saved checkpoints on the test problems: greedy accuracy, trace use and
   lengths, and ``n = 16`` samples per problem at temperature 1 for pass@k (Chen et al.'s
   unbiased estimator), k = 1 .. 16.

Everything runs on one CPU thread with fixed seeds, so on one machine the checkpoint files
are bit-identical from run to run (the script prints their SHA-256). Results, with every raw
number, the command, the machine and the date, go to
``experiments/results/alignment_checkpoints.json``, which the interlude chapter reads.

Usage::

    python experiments/alignment_checkpoints.py            # rewrites the checkpoints + JSON
    python experiments/alignment_checkpoints.py --output-dir /tmp/ckpt --results /tmp/r.json
"""

from __future__ import annotations

import argparse
import copy
import datetime
import json
import platform
import sys
import time
from pathlib import Path

import torch

from tutorial_code.checkpoints import CHECKPOINT_DIR, load_checkpoint, save_checkpoint
from tutorial_code.checkpoints.recipes import (
    BASE_RECIPE,
    MODEL_CONFIG,
    SFT_RECIPE,
    finetune_sft,
    pretrain_base,
    recipe_dict,
)
from tutorial_code.model import GPTModel
from tutorial_code.notebook import cpu_model, machine_summary
from tutorial_code.rl import evaluate_greedy, evaluate_sampling
from tutorial_code.task import MAX_COMPLETION_LENGTH, sample_problems

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_RESULTS = ROOT / "experiments" / "results" / "alignment_checkpoints.json"
#: Held-out problems: the validation split for the curves, the test split for the final
#: numbers (each drawn with seed 0).
N_VAL, N_TEST = 500, 500
N_SAMPLES, SAMPLE_SEED = 16, 1234


def evaluate(model: GPTModel, problems: list, *, seed: int) -> dict:
    """Greedy and sampled (n = 16, T = 1) evaluation of one checkpoint."""
    greedy = evaluate_greedy(model, problems)
    sampled = evaluate_sampling(
        model, problems, n=N_SAMPLES, generator=torch.Generator().manual_seed(seed)
    )
    greedy_lengths = [len(c) + 1 for c in greedy.completions]  # +1: the EOS
    return {
        "greedy_accuracy": greedy.accuracy,
        "greedy_trace_fraction": greedy.trace_fraction,
        "greedy_mean_length": greedy.mean_length,
        "greedy_correct": greedy.correct.int().tolist(),
        "greedy_lengths": greedy_lengths,
        "pass_at_k": {str(k): sampled.pass_at(k) for k in range(1, N_SAMPLES + 1)},
        "sampled_correct_counts": sampled.correct.sum(dim=1).tolist(),
        "sampled_trace_fraction": sampled.trace_fraction,
        "sampled_mean_length": sampled.mean_length,
        "sampled_lengths": sampled.lengths.flatten().tolist(),
        "sampled_trace": sampled.uses_trace.flatten().int().tolist(),
        "sampled_correct": sampled.correct.flatten().int().tolist(),
        "examples": {
            "problems": [p.prompt for p in problems[:8]],
            "greedy": greedy.completions[:8],
            "sampled": [s[:4] for s in sampled.completions[:8]],
        },
    }


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--output-dir", type=Path, default=CHECKPOINT_DIR)
    parser.add_argument("--results", type=Path, default=DEFAULT_RESULTS)
    parser.add_argument("--extra-sft-steps", type=int, default=1000)
    parser.add_argument("--eval-every", type=int, default=100)
    parser.add_argument("--curve-samples", type=int, default=4)
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    start = time.perf_counter()
    val = sample_problems(N_VAL, split="val")
    test = sample_problems(N_TEST, split="test")

    base, base_log = pretrain_base(BASE_RECIPE)
    base_entry = save_checkpoint(
        base, "base", recipe={"pretrain": recipe_dict(BASE_RECIPE)}, directory=args.output_dir
    )
    pretrain_seconds = time.perf_counter() - start
    print(f"base: {base_entry['bytes']:,} bytes, sha256 {base_entry['sha256']}", flush=True)

    model = copy.deepcopy(base)
    curve: list[dict] = []
    sft_state: dict[str, torch.Tensor] = {}

    def measure(step: int) -> None:
        greedy = evaluate_greedy(model, val)
        sampled = evaluate_sampling(
            model, val, n=args.curve_samples, generator=torch.Generator().manual_seed(step)
        )
        curve.append(
            {
                "step": step,
                "greedy_accuracy": greedy.accuracy,
                "greedy_trace_fraction": greedy.trace_fraction,
                "sampled_accuracy": sampled.pass_at(1),
                "sampled_trace_fraction": sampled.trace_fraction,
                "sampled_mean_length": sampled.mean_length,
            }
        )
        print(
            f"sft step {step}: greedy {greedy.accuracy:.3f} (trace {greedy.trace_fraction:.2f})"
            f", sampled {sampled.pass_at(1):.3f}",
            flush=True,
        )

    def callback(step: int, _stats: object) -> None:
        done = step + 1
        if done == SFT_RECIPE.steps:
            sft_state.update({k: v.clone() for k, v in model.state_dict().items()})
        if done % args.eval_every == 0:
            measure(done)

    measure(0)
    total_sft = SFT_RECIPE.steps + args.extra_sft_steps
    sft_start = time.perf_counter()
    sft_log = finetune_sft(model, SFT_RECIPE, steps=total_sft, callback=callback)
    sft_seconds = time.perf_counter() - sft_start
    sft_model = GPTModel(MODEL_CONFIG)
    sft_model.load_state_dict(sft_state)
    sft_entry = save_checkpoint(
        sft_model,
        "sft",
        recipe={"pretrain": recipe_dict(BASE_RECIPE), "sft": recipe_dict(SFT_RECIPE)},
        directory=args.output_dir,
    )
    print(f"sft: {sft_entry['bytes']:,} bytes, sha256 {sft_entry['sha256']}", flush=True)
    build_seconds = time.perf_counter() - start

    final = {}
    for name in ("base", "sft"):
        final[name] = evaluate(
            load_checkpoint(name, directory=args.output_dir), test, seed=SAMPLE_SEED
        )
        print(
            f"{name}: greedy {final[name]['greedy_accuracy']:.3f}, pass@1 "
            f"{final[name]['pass_at_k']['1']:.3f}, pass@8 {final[name]['pass_at_k']['8']:.3f}",
            flush=True,
        )
    final["sft_extended"] = evaluate(model, test, seed=SAMPLE_SEED)

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
        "model_config": base_entry["config"],
        "parameters": base_entry["parameters"],
        "init": "PyTorch default (GPTModel without gpt2_init_)",
        "recipes": {"pretrain": recipe_dict(BASE_RECIPE), "sft": recipe_dict(SFT_RECIPE)},
        "checkpoints": {"base": base_entry, "sft": sft_entry},
        "eval": {
            "val_problems": N_VAL,
            "test_problems": N_TEST,
            "samples_per_problem": N_SAMPLES,
            "temperature": 1.0,
            "sample_seed": SAMPLE_SEED,
            "max_new_tokens": MAX_COMPLETION_LENGTH + 2,
            "curve_samples": args.curve_samples,
            "eval_every": args.eval_every,
        },
        "pretrain_losses": base_log.losses,
        "sft_losses": sft_log.losses,
        "sft_checkpoint_step": SFT_RECIPE.steps,
        "sft_curve": curve,
        "final": final,
        "seconds": {
            "pretrain": pretrain_seconds,
            "sft_with_curve": sft_seconds,
            "build": build_seconds,
            "total": time.perf_counter() - start,
        },
    }
    args.results.parent.mkdir(parents=True, exist_ok=True)
    args.results.write_text(json.dumps(results, indent=1) + "\n", encoding="utf-8")
    print(f"wrote {args.results} in {results['seconds']['total']:.0f} s", flush=True)
    return results


if __name__ == "__main__":
    main()
