"""Benchmark for chapter 5: byte-level BPE training and GPT-2 encoding in pure Python.

Set-up (issue 4): 1,000,000 characters (= bytes, ASCII) of ``english_text(1_000_000, seed=0)``,
500 merges (vocabulary 756), GPT-2's pre-tokenization pattern, wall-clock time
(``time.perf_counter``) in one process.

* **Training.** ``train_bpe(text, 756, method="fast")`` against ``method="naive"`` (timed once:
  it takes minutes) and against Hugging Face ``tokenizers``' ``BpeTrainer`` with the
  ``ByteLevel`` pre-tokenizer (GPT-2's pattern), fed the text line by line, its usual input.
  The fast and naive merges must be identical; the script checks it, and also reports how
  many of the Hugging Face merges equal ours (it also merges the smallest pair among equal
  counts, but of its own ids, whose byte order differs from ours).
* **Encoding.** ``ByteBPETokenizer.from_tiktoken("gpt2").encode(text)``, starting from an
  empty chunk cache every time, against tiktoken's ``gpt2`` encoding (``encode_ordinary``).
  The ids must be identical.

The fast trainer, the Hugging Face trainer and the two encoders are timed in turn
(interleaved, so a change in machine load hits all of them alike) ``--repeats`` times after
one warm-up; medians are reported, with every repeat. Process CPU time is stored too: on a
busy machine it shows how much of the wall time was spent waiting for a core.

Usage::

    python benchmarks/bpe.py                      # writes benchmarks/results/bpe.json
    python benchmarks/bpe.py --naive-merges 20    # time naive on 20 merges, extrapolate x25

``--naive-merges N < 500`` times the naive trainer on N merges and multiplies by 500 / N
(its cost per merge is nearly constant); the output then says ``naive_extrapolated: true``
and the unit test that checks the stored result rejects it. The stored result is a full run.

Bars (issue 4): fast >= 100x faster than naive; fast within 1.5x of ``tokenizers``; our
GPT-2 encoding within 4x of tiktoken, with identical ids.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tutorial_code.bpe import ByteBPETokenizer, pretokenize, train_bpe
from tutorial_code.corpora import english_text
from tutorial_code.data import gpt2_encoding
from tutorial_code.notebook import cpu_model

ROOT = Path(__file__).resolve().parent.parent

TEXT_CHARS = 1_000_000
MERGES = 500
BARS = {"naive_over_fast": 100.0, "fast_over_hf_tokenizers": 1.5, "ours_over_tiktoken_encode": 4.0}
DEFAULT_OUTPUT = ROOT / "benchmarks" / "results" / "bpe.json"


def machine() -> dict[str, Any]:
    import regex
    import tiktoken
    import tokenizers
    import torch

    return {
        "cpu": cpu_model(),
        "cores": os.cpu_count(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "tiktoken": tiktoken.__version__,
        "tokenizers": tokenizers.__version__,
        "regex": regex.__version__,
    }


def timed(function: Callable[[], Any]) -> tuple[float, float, Any]:
    """(wall seconds, process CPU seconds, result) of one call."""
    wall, cpu = time.perf_counter(), time.process_time()
    result = function()
    return time.perf_counter() - wall, time.process_time() - cpu, result


def hf_trainer(text: str, vocab_size: int) -> Callable[[], Any]:
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers

    lines = text.splitlines(keepends=True)

    def train() -> Any:
        tokenizer = Tokenizer(models.BPE())
        tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
        trainer = trainers.BpeTrainer(
            vocab_size=vocab_size,
            min_frequency=0,
            show_progress=False,
            initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
            special_tokens=[],
        )
        tokenizer.train_from_iterator(lines, trainer=trainer)
        return tokenizer

    return train


def byte_decoder() -> dict[str, int]:
    """GPT-2's printable stand-ins for bytes (used by the ByteLevel pre-tokenizer), inverted."""
    printable = [
        *range(ord("!"), ord("~") + 1),
        *range(ord("¡"), ord("¬") + 1),
        *range(ord("®"), ord("ÿ") + 1),
    ]
    chars = printable[:]
    n = 0
    for b in range(256):
        if b not in printable:
            printable.append(b)
            chars.append(256 + n)
            n += 1
    return {chr(c): b for b, c in zip(printable, chars)}


def hf_merges_as_bytes(tokenizer: Any) -> list[tuple[bytes, bytes]]:
    decoder = byte_decoder()
    merges = json.loads(tokenizer.to_str())["model"]["merges"]
    pairs = [m.split(" ") if isinstance(m, str) else m for m in merges]
    return [(bytes(decoder[c] for c in a), bytes(decoder[c] for c in b)) for a, b in pairs]


def our_merges_as_bytes(tokenizer: ByteBPETokenizer) -> list[tuple[bytes, bytes]]:
    token = tokenizer.decode_single_token_bytes
    return [(token(a), token(b)) for a, b in tokenizer.merges]


def summary(values: list[float]) -> dict[str, Any]:
    return {"median_s": statistics.median(values), "all_s": [round(v, 4) for v in values]}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--repeats", type=int, default=5, help="timed runs per method (default 5)")
    parser.add_argument(
        "--naive-merges", type=int, default=MERGES, help="merges for the naive run (default 500)"
    )
    parser.add_argument("--output", type=Path, default=DEFAULT_OUTPUT)
    args = parser.parse_args(argv)
    if not 1 <= args.naive_merges <= MERGES:
        parser.error(f"--naive-merges must be in [1, {MERGES}]")

    load_before = os.getloadavg()
    text = english_text(TEXT_CHARS, seed=0)
    chunks = pretokenize(text)
    n_bytes, n_unique = len(text.encode()), len(set(chunks))
    print(f"text: {n_bytes:,} bytes, {len(chunks):,} chunks, {n_unique:,} distinct")

    gpt2 = ByteBPETokenizer.from_tiktoken("gpt2")
    reference = gpt2_encoding()

    def ours_encode() -> list[int]:
        gpt2._cache.clear()  # every run starts cold, as tiktoken does
        return gpt2.encode(text)

    methods: dict[str, Callable[[], Any]] = {
        "fast": lambda: train_bpe(text, 256 + MERGES, method="fast"),
        "hf_tokenizers": hf_trainer(text, 256 + MERGES),
        "ours_encode": ours_encode,
        "tiktoken_encode": lambda: reference.encode_ordinary(text),
    }
    results = {name: method() for name, method in methods.items()}  # warm-up
    wall: dict[str, list[float]] = {name: [] for name in methods}
    cpu: dict[str, list[float]] = {name: [] for name in methods}
    for repeat in range(args.repeats):
        for name, method in methods.items():
            seconds, cpu_seconds, results[name] = timed(method)
            wall[name].append(seconds)
            cpu[name].append(cpu_seconds)
        times = ", ".join(f"{name} {wall[name][-1]:.3f} s" for name in methods)
        print(f"repeat {repeat + 1}/{args.repeats}: {times}")

    print(f"naive trainer, {args.naive_merges} merges (one run; minutes)...", flush=True)
    naive_seconds, naive_cpu, naive = timed(
        lambda: train_bpe(text, 256 + args.naive_merges, method="naive")
    )
    extrapolated = args.naive_merges < MERGES
    naive_full = naive_seconds * MERGES / args.naive_merges
    fast = results["fast"]
    merges_identical = naive.merges == fast.merges[: args.naive_merges]
    ours_hf = our_merges_as_bytes(fast)
    theirs_hf = hf_merges_as_bytes(results["hf_tokenizers"])
    same_prefix = next(
        (i for i, (x, y) in enumerate(zip(ours_hf, theirs_hf)) if x != y),
        min(len(ours_hf), len(theirs_hf)),
    )
    ids_identical = results["ours_encode"] == results["tiktoken_encode"]

    median = {name: statistics.median(values) for name, values in wall.items()}
    ratios = {
        "naive_over_fast": naive_full / median["fast"],
        "fast_over_hf_tokenizers": median["fast"] / median["hf_tokenizers"],
        "ours_over_tiktoken_encode": median["ours_encode"] / median["tiktoken_encode"],
    }
    met = {
        "naive_over_fast": ratios["naive_over_fast"] >= BARS["naive_over_fast"],
        "fast_over_hf_tokenizers": (
            ratios["fast_over_hf_tokenizers"] <= BARS["fast_over_hf_tokenizers"]
        ),
        "ours_over_tiktoken_encode": (
            ratios["ours_over_tiktoken_encode"] <= BARS["ours_over_tiktoken_encode"]
            and ids_identical
        ),
    }

    def stats(name: str) -> dict[str, Any]:
        return summary(wall[name]) | {"median_cpu_s": statistics.median(cpu[name])}

    result = {
        "config": {
            "text": "tutorial_code.data.english_text(1_000_000, seed=0)",
            "text_bytes": len(text.encode()),
            "chunks": len(chunks),
            "distinct_chunks": len(set(chunks)),
            "merges": MERGES,
            "repeats": args.repeats,
            "naive_merges_timed": args.naive_merges,
            "naive_extrapolated": extrapolated,
            "statistic": "median wall-clock seconds over the repeats (naive: one run)",
        },
        "training": {
            "fast": stats("fast"),
            "hf_tokenizers": stats("hf_tokenizers"),
            "naive": {
                "seconds": naive_seconds,
                "cpu_s": naive_cpu,
                "seconds_for_500_merges": naive_full,
            },
            "merges_identical_naive_vs_fast": merges_identical,
            "hf_merges_same_as_ours": sum(x == y for x, y in zip(ours_hf, theirs_hf)),
            "hf_merges_same_prefix": same_prefix,
            "hf_merges_in_common": len(set(ours_hf) & set(theirs_hf)),
        },
        "encoding": {
            "ours": stats("ours_encode"),
            "tiktoken": stats("tiktoken_encode"),
            "tokens": len(results["tiktoken_encode"]),
            "ids_identical": ids_identical,
        },
        "ratios": ratios,
        "bars": BARS,
        "bars_met": met,
        "machine": machine(),
        "load_average": {
            "before": [round(x, 2) for x in load_before],
            "after": [round(x, 2) for x in os.getloadavg()],
        },
        "date": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC"),
    }
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")

    scale = f" (x{MERGES / args.naive_merges:g} = {naive_full:.1f} s, EXTRAPOLATED)"
    scale = scale if extrapolated else ""
    print(f"naive {naive_seconds:.1f} s for {args.naive_merges} merges{scale}")
    print(
        f"fast {median['fast']:.3f} s, hf tokenizers {median['hf_tokenizers']:.3f} s; "
        f"merges identical (naive vs fast): {merges_identical}"
    )
    print(
        f"encode: ours {median['ours_encode']:.3f} s, tiktoken {median['tiktoken_encode']:.3f} s; "
        f"ids identical: {ids_identical}"
    )
    for name, value in ratios.items():
        print(f"{name:28s} {value:8.2f}   bar {BARS[name]:g}   {'met' if met[name] else 'NOT MET'}")
    print(f"wrote {args.output}")
    return 0 if all(met.values()) and merges_identical else 1


if __name__ == "__main__":
    raise SystemExit(main())
