"""How fast the SFT checkpoint samples a GRPO-sized batch, with and without a KV cache.

A batch is ``--prompts`` test problems times ``--generations`` completions each (16 x 8, the
size of one GRPO step in the alignment chapters), sampled at temperature 1 until every row
has written EOS (at most 32 new tokens), through ``tutorial_code.rl.generate_completions``.
Each configuration (``kv_cache=None`` and ``"preallocated"``) is timed ``--repeats`` times,
interleaved, on one thread; the median is reported as completions per second. Both must
produce identical samples (same generator seed), which the script checks.

Usage::

    python experiments/sampling_speed.py      # writes experiments/results/sampling_speed.json
"""

from __future__ import annotations

import argparse
import datetime
import json
import statistics
import sys
import time
from pathlib import Path

import torch

from tutorial_code.checkpoints import load_checkpoint
from tutorial_code.notebook import cpu_model, machine_summary
from tutorial_code.rl import generate_completions
from tutorial_code.task import encode_prompts, sample_problems

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_OUTPUT = ROOT / "experiments" / "results" / "sampling_speed.json"


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--prompts", type=int, default=16)
    parser.add_argument("--generations", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--output", type=Path, default=DEFAULT_OUTPUT)
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    model = load_checkpoint("sft")
    prompts = encode_prompts(sample_problems(args.prompts, split="test"))
    rows = args.prompts * args.generations
    seconds: dict[str, list[float]] = {"none": [], "preallocated": []}
    outputs = {}
    for repeat in range(args.repeats + 1):  # the first round warms up and is not kept
        for name in ("none", "preallocated"):
            start = time.perf_counter()
            out = generate_completions(
                model,
                prompts,
                num_generations=args.generations,
                generator=torch.Generator().manual_seed(repeat),
                kv_cache=None if name == "none" else "preallocated",
            )
            elapsed = time.perf_counter() - start
            if repeat:
                seconds[name].append(elapsed)
            outputs[name] = out.sequences
        if not torch.equal(outputs["none"], outputs["preallocated"]):
            raise RuntimeError("the cached and uncached runs sampled different completions")
    results = {
        "command": "python " + " ".join([sys.argv[0], *(argv or sys.argv[1:])]),
        "date": datetime.date.today().isoformat(),
        "machine": {"summary": machine_summary(), "cpu": cpu_model()},
        "threads": torch.get_num_threads(),
        "prompts": args.prompts,
        "generations": args.generations,
        "rows": rows,
        "seconds": seconds,
        "samples_per_second": {k: rows / statistics.median(v) for k, v in seconds.items()},
    }
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(results, indent=1) + "\n", encoding="utf-8")
    for name, rate in results["samples_per_second"].items():
        print(f"kv_cache={name}: {rate:,.0f} completions/s")
    return results


if __name__ == "__main__":
    main()
