"""Benchmark for chapter 4: tokens per second without a KV cache, with the concatenating
cache and with the pre-allocated cache, on an untrained GPT-2-small-shaped model.

Set-up: ``GPT2_SMALL_CONFIG`` (768 dims, 12 layers, 12 heads, vocabulary 50257,
context 1024), random weights (seed 123), eval mode, ``torch.inference_mode``, CPU, greedy
decoding of 200 new tokens after the 4-token prompt "Hello, I am" (GPT-2 ids
15496, 11, 314, 716, the prompt LLMs-from-scratch uses). Each method is warmed up once,
then the methods are timed in turn (interleaved, so a change in machine load hits all of
them alike): ``--repeats`` rounds with all three, then more rounds with only the two caches,
up to ``--cache-repeats`` (a cached run is ten times shorter, and the two caches differ by a
few per cent, so they get more runs). Within a round the two caches alternate which goes
first. The medians are reported. Tokens per second counts only
the new tokens. The three methods must produce identical tokens; the script checks it.

Memory: the concatenating cache after generation holds ``prompt + new - 1`` tokens (the
last token is never fed back); the pre-allocated cache holds ``context_length`` slots from
the start. "measured" is the bytes of the tensors each cache holds (their storages);
"formula" is ``2 * L * H * D * tokens * B * 4`` bytes (float32).

Usage::

    python benchmarks/kv_cache.py                  # writes benchmarks/results/kv_cache.json
    python benchmarks/kv_cache.py --repeats 5 --cache-repeats 9 --threads 1 --output /tmp/kv.json

The bar: pre-allocated >= 5.3x no cache, and not slower than concatenating (both
from the median tokens/s). Two further comparisons of the two caches, which drifting machine
load disturbs less, are reported beside it: the median of the per-round ratios, and a
"lockstep" run that generates with both caches at once, alternating their steps, and times
only their model calls.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from tutorial_code.costs import kv_cache_bytes
from tutorial_code.generation import generate
from tutorial_code.kv_cache import ConcatKVCache, KVCache, PreallocatedKVCache
from tutorial_code.model import GPT2_SMALL_CONFIG, GPTConfig, GPTModel
from tutorial_code.notebook import cpu_model

ROOT = Path(__file__).resolve().parent.parent

PROMPT_IDS = [15496, 11, 314, 716]  # "Hello, I am" in GPT-2's BPE (tiktoken "gpt2")
BAR_VS_NO_CACHE = 5.3
DEFAULT_OUTPUT = ROOT / "benchmarks" / "results" / "kv_cache.json"


def machine() -> dict[str, object]:
    return {
        "cpu_model": cpu_model(),
        "cpu_count": os.cpu_count(),
        "machine": platform.machine(),
        "torch_threads": torch.get_num_threads(),
        "torch_version": torch.__version__,
        "cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "python_version": platform.python_version(),
        "platform": platform.platform(),
    }


def load_average() -> list[float] | None:
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except OSError:
        return None


def lockstep_seconds(
    model: GPTModel, prompt: torch.Tensor, n_new: int, caches: dict[str, KVCache]
) -> dict[str, float]:
    """Greedy generation with every cache at once, one step of each in turn.

    Returns the seconds each cache's model calls took in total. The caches take their steps
    back to back, so a change in machine load hits them alike; the rest of generation (picking
    the token, appending it) is the same for every cache and is not timed.
    """
    total = dict.fromkeys(caches, 0.0)
    logits: dict[str, torch.Tensor] = {}
    for cache in caches.values():
        cache.reset()
    feed = prompt
    for step in range(n_new):
        names = list(caches)[:: 1 if step % 2 == 0 else -1]
        for name in names:
            start = time.perf_counter()
            logits[name] = model(feed, kv_cache=caches[name])[:, -1, :]
            total[name] += time.perf_counter() - start
        feed = next(iter(logits.values())).argmax(dim=-1, keepdim=True)
        if any(not torch.equal(x.argmax(dim=-1, keepdim=True), feed) for x in logits.values()):
            raise RuntimeError("the caches disagree on the next token")
    return total


def run(
    cfg: GPTConfig,
    *,
    prompt_ids: list[int],
    new_tokens: int,
    repeats: int,
    cache_repeats: int,
    lockstep_repeats: int,
    seed: int = 123,
    log: Callable[[str], None] = print,
) -> dict[str, Any]:
    """Time generation without a cache and with each cache on ``GPTModel(cfg)``; every raw
    number, the medians, the ratios, whether all methods wrote identical tokens, and the
    memory each cache holds at the end (measured from its tensors and by formula)."""
    torch.manual_seed(seed)
    model = GPTModel(cfg).eval()
    prompt = torch.tensor([prompt_ids])
    concat = ConcatKVCache(cfg)
    prealloc = PreallocatedKVCache(cfg, batch_size=1)
    methods = {
        "no_cache": lambda n: generate(model, prompt, n),
        "concat_cache": lambda n: generate(model, prompt, n, kv_cache=concat),
        "preallocated_cache": lambda n: generate(model, prompt, n, kv_cache=prealloc),
    }
    seconds: dict[str, list[float]] = {name: [] for name in methods}
    outputs: dict[str, torch.Tensor] = {}
    with torch.inference_mode():
        for generate_some in methods.values():  # warm-up
            generate_some(min(8, new_tokens))
        rounds = max(repeats, cache_repeats)
        for repeat in range(rounds):
            caches = ["concat_cache", "preallocated_cache"][:: 1 if repeat % 2 == 0 else -1]
            order = (["no_cache"] if repeat < repeats else []) + caches
            for name in order:
                start = time.perf_counter()
                outputs[name] = methods[name](new_tokens)
                seconds[name].append(time.perf_counter() - start)
                log(f"round {repeat + 1}/{rounds}  {name:<19} {seconds[name][-1]:7.2f} s")
        lockstep = []
        for repeat in range(lockstep_repeats):
            caches = {"concat_cache": concat, "preallocated_cache": prealloc}
            lockstep.append(lockstep_seconds(model, prompt, new_tokens, caches))
            log(f"lockstep {repeat + 1}/{lockstep_repeats}  {lockstep[-1]}")

    identical = all(torch.equal(outputs["no_cache"], out) for out in outputs.values())
    median = {name: statistics.median(times) for name, times in seconds.items()}
    tokens_per_s = {name: new_tokens / t for name, t in median.items()}
    ratios = {
        "preallocated_vs_no_cache": tokens_per_s["preallocated_cache"] / tokens_per_s["no_cache"],
        "concat_vs_no_cache": tokens_per_s["concat_cache"] / tokens_per_s["no_cache"],
        "preallocated_vs_concat": tokens_per_s["preallocated_cache"] / tokens_per_s["concat_cache"],
        # the same comparison paired within each round (back-to-back runs), less sensitive to
        # changes in machine load between rounds
        "preallocated_vs_concat_paired_median": statistics.median(
            c / p for c, p in zip(seconds["concat_cache"], seconds["preallocated_cache"])
        ),
        # the model calls of the two caches, alternated step by step within one generation
        "preallocated_vs_concat_lockstep_median": statistics.median(
            one["concat_cache"] / one["preallocated_cache"] for one in lockstep
        ),
    }
    return {
        "model": {
            "emb_dim": cfg.emb_dim,
            "n_layers": cfg.n_layers,
            "n_heads": cfg.n_heads,
            "vocab_size": cfg.vocab_size,
            "context_length": cfg.context_length,
            "qkv_bias": cfg.qkv_bias,
            "seed": seed,
            "dtype": "float32",
        },
        "prompt_tokens": len(prompt_ids),
        "new_tokens": new_tokens,
        "repeats": {"no_cache": len(seconds["no_cache"]), "caches": len(seconds["concat_cache"])},
        "seconds": {name: [round(t, 3) for t in times] for name, times in seconds.items()},
        "lockstep_model_seconds": [
            {name: round(t, 3) for name, t in one.items()} for one in lockstep
        ],
        "median_seconds": {name: round(t, 3) for name, t in median.items()},
        "tokens_per_s": {name: round(v, 2) for name, v in tokens_per_s.items()},
        "ratios": {name: round(v, 2) for name, v in ratios.items()},
        "identical_tokens": identical,
        "memory": memory(cfg, concat, prealloc, held=len(prompt_ids) + new_tokens - 1),
    }


def memory(
    cfg: GPTConfig, concat: ConcatKVCache, prealloc: PreallocatedKVCache, *, held: int
) -> dict[str, dict[str, int]]:
    """Bytes each cache holds after a generation, from its tensors and by formula (float32).

    The concatenating cache holds ``held = prompt + new - 1`` tokens (the last token is never
    fed back); the pre-allocated one ``max_cache_len`` slots from the start.
    """
    shape = dict(
        n_layers=cfg.n_layers,
        n_kv_heads=cfg.n_heads,
        head_dim=cfg.emb_dim // cfg.n_heads,
        bits_per_value=32,
    )
    return {
        "concat_cache": {
            "tokens": held,
            "formula_bytes": kv_cache_bytes(n_tokens=held, **shape),
            "measured_bytes": concat.nbytes,
        },
        "preallocated_cache": {
            "tokens": prealloc.max_cache_len,
            "formula_bytes": kv_cache_bytes(n_tokens=prealloc.max_cache_len, **shape),
            "measured_bytes": prealloc.nbytes,
        },
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--new-tokens", type=int, default=200)
    parser.add_argument("--repeats", type=int, default=3, help="timed runs without a cache")
    parser.add_argument("--cache-repeats", type=int, default=11, help="timed runs of each cache")
    parser.add_argument(
        "--lockstep-repeats", type=int, default=3, help="runs of the lockstep comparison"
    )
    parser.add_argument(
        "--threads", type=int, default=None, help="torch.set_num_threads (default: torch's)"
    )
    parser.add_argument("--output", type=Path, default=DEFAULT_OUTPUT)
    args = parser.parse_args(argv)
    for name in ("new_tokens", "repeats", "cache_repeats", "lockstep_repeats"):
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be >= 1, got {getattr(args, name)}")
    if args.threads is not None:
        torch.set_num_threads(args.threads)

    load_before = load_average()
    measured = run(
        GPT2_SMALL_CONFIG,
        prompt_ids=PROMPT_IDS,
        new_tokens=args.new_tokens,
        repeats=args.repeats,
        cache_repeats=args.cache_repeats,
        lockstep_repeats=args.lockstep_repeats,
        log=lambda line: print(line, flush=True),
    )
    load_after = load_average()
    ratios = measured["ratios"]
    arguments = sys.argv[1:] if argv is None else argv
    result = {
        "description": (
            "tokens/s generating with and without a KV cache, GPT-2-small shape, untrained, CPU"
        ),
        "command": " ".join(["python", "benchmarks/kv_cache.py", *arguments]),
        "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        **measured,
        "bar": {
            "preallocated_vs_no_cache_at_least": BAR_VS_NO_CACHE,
            "preallocated_vs_concat_at_least": 1.0,
            "met": ratios["preallocated_vs_no_cache"] >= BAR_VS_NO_CACHE
            and ratios["preallocated_vs_concat"] >= 1.0,
        },
        "load_average_before": load_before,
        "load_average_after": load_after,
        "machine": machine(),
    }
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    keys = ("tokens_per_s", "ratios", "bar", "identical_tokens")
    print(json.dumps({k: result[k] for k in keys}, indent=2))
    print(f"wrote {args.output}")
    return 0 if measured["identical_tokens"] else 1


if __name__ == "__main__":
    raise SystemExit(main())
