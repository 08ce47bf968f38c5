"""Benchmark for chapter 5: byte-level BPE training and GPT-2 encoding in pure Python.

Two texts of 1,000,000 UTF-8 bytes each, 500 merges (vocabulary 756), GPT-2's
pre-tokenization pattern, wall-clock time (``time.perf_counter``) in one process:

* ``english``: ``tutorial_code.corpora.english_text(1_000_000, seed=0)``, generated English
  prose. Its words follow a Zipf law over a vocabulary of a few thousand words, so its
  211,550 pre-tokenized chunks hold only 7,706 distinct ones: the deduplication of the fast
  trainer and the chunk cache of the encoder have little left to do.
* ``high_entropy``: :func:`high_entropy_text`, words of random letters in six scripts
  (Latin, accented Latin, Greek, Cyrillic, Chinese characters) and random numbers, drawn with
  Zipf frequencies from a vocabulary of 300,000 such words, with punctuation and line breaks.
  About a quarter of its chunks are distinct and they hold more than a quarter of its bytes,
  the regime of large, varied corpora; it measures what deduplication and caching cannot
  save.

For each text:

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
busy machine it shows how much of the wall time was spent waiting for a core (Hugging Face's
trainer uses more than one thread, so its CPU time can exceed its wall time).

Usage::

    python benchmarks/bpe.py                      # writes benchmarks/results/bpe.json
    python benchmarks/bpe.py --naive-merges 20    # time naive on 20 merges, extrapolate x25

``--naive-merges N < 500`` times the naive trainer on N merges and multiplies by 500 / N
(its cost per merge is nearly constant); the output then says ``naive_extrapolated: true``
and the unit test that checks the stored result rejects it. The stored result is a full run.

Bars, on the English text: fast >= 100x faster than naive; fast within 1.5x of
``tokenizers``; our GPT-2 encoding within 4x of tiktoken, with identical ids. The
high-entropy text has no speed bar (it is there to show where the English result stops
holding), only the correctness checks.
"""

from __future__ import annotations

import argparse
import datetime
import itertools
import json
import os
import platform
import random
import statistics
import sys
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tutorial_code.bpe import ByteBPETokenizer, pretokenize, train_bpe
from tutorial_code.corpora import english_text
from tutorial_code.data import gpt2_encoding
from tutorial_code.notebook import cpu_model

ROOT = Path(__file__).resolve().parent.parent

TEXT_BYTES = 1_000_000
MERGES = 500
BARS = {"naive_over_fast": 100.0, "fast_over_hf_tokenizers": 1.5, "ours_over_tiktoken_encode": 4.0}
DEFAULT_OUTPUT = ROOT / "benchmarks" / "results" / "bpe.json"

#: The scripts of :func:`high_entropy_text`: (share of the vocabulary, alphabet, word lengths).
SCRIPTS: dict[str, tuple[float, str, int, int]] = {
    "latin": (0.45, "abcdefghijklmnopqrstuvwxyz", 2, 10),
    "accented latin": (0.10, "abcdefghijklmnopqrstuvwxyzàáâäçèéêëíîïñóôöúûüßø", 2, 10),
    "greek": (0.05, "".join(map(chr, range(0x3B1, 0x3CA))), 2, 9),
    "cyrillic": (0.10, "".join(map(chr, range(0x430, 0x450))), 2, 10),
    "chinese": (0.15, "".join(map(chr, range(0x4E00, 0x4E00 + 3000))), 1, 4),
    "digits": (0.15, "0123456789", 1, 6),
}
PUNCTUATION = [".", ",", ";", ":", "!", "?", "...", " -", " (", ")", '"', "'"]


def high_entropy_text(
    n_bytes: int, *, seed: int = 0, vocab_size: int = 300_000, s: float = 1.0
) -> str:
    """Exactly ``n_bytes`` UTF-8 bytes of mixed-script text whose words rarely repeat.

    A vocabulary of ``vocab_size`` words of random letters (script chosen with the shares of
    :data:`SCRIPTS`; a fifth of the Latin words capitalised) is drawn with probability
    ``1 / rank**s``; words are separated by spaces, one in eight is followed by punctuation,
    and a line ends every 8 to 20 words. The last character is cut if it would not fit and the
    text is padded with ``.`` to the exact size.
    """
    rng = random.Random(seed)
    names = list(SCRIPTS)
    shares = [SCRIPTS[name][0] for name in names]
    vocabulary = []
    for _ in range(vocab_size):
        _, alphabet, low, high = SCRIPTS[rng.choices(names, shares)[0]]
        word = "".join(rng.choices(alphabet, k=rng.randint(low, high)))
        if word.isascii() and word.isalpha() and rng.random() < 0.2:
            word = word.capitalize()
        vocabulary.append(word)
    cumulative = list(itertools.accumulate(1.0 / (rank + 1) ** s for rank in range(vocab_size)))
    parts, size, in_line = [], 0, 0
    while size < n_bytes:
        piece = (" " if in_line else "") + rng.choices(vocabulary, cum_weights=cumulative)[0]
        if rng.random() < 0.12:
            piece += rng.choice(PUNCTUATION)
        in_line += 1
        if in_line >= rng.randint(8, 20):
            piece += "\n"
            in_line = 0
        parts.append(piece)
        size += len(piece.encode("utf-8"))
    text = "".join(parts).encode("utf-8")[:n_bytes].decode("utf-8", errors="ignore")
    return text + "." * (n_bytes - len(text.encode("utf-8")))


#: The benchmark's texts: name -> (how the text is made, the function that makes it).
CORPORA: dict[str, tuple[str, Callable[[int], str]]] = {
    "english": (
        "tutorial_code.corpora.english_text(1_000_000, seed=0)",
        lambda n: english_text(n, seed=0),
    ),
    "high_entropy": (
        "benchmarks/bpe.py high_entropy_text(1_000_000, seed=0)",
        lambda n: high_entropy_text(n, seed=0),
    ),
}


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


def describe(text: str) -> dict[str, Any]:
    """What decides the pure-Python code's speed: how many chunks, and how many distinct."""
    chunks = pretokenize(text)
    distinct = Counter(chunks)
    distinct_bytes = sum(len(chunk.encode("utf-8")) for chunk in distinct)
    return {
        "text_bytes": len(text.encode("utf-8")),
        "text_chars": len(text),
        "chunks": len(chunks),
        "distinct_chunks": len(distinct),
        "distinct_chunk_bytes": distinct_bytes,
        "ascii": text.isascii(),
    }


def summary(values: list[float]) -> dict[str, Any]:
    return {"median_s": statistics.median(values), "all_s": [round(v, 4) for v in values]}


def measure(
    text: str,
    *,
    merges: int,
    repeats: int,
    naive_merges: int,
    gpt2: ByteBPETokenizer,
    reference: Any,
    log: Callable[[str], None] = print,
) -> dict[str, Any]:
    """Time training and encoding on one text; every raw number and the correctness checks.

    ``gpt2`` is ``ByteBPETokenizer.from_tiktoken("gpt2")`` and ``reference`` tiktoken's
    encoding; both are loaded once by the caller. ``naive_merges < merges`` extrapolates the
    naive trainer's time linearly (flagged in the result).
    """

    def ours_encode() -> list[int]:
        gpt2._cache.clear()  # every run starts cold, as tiktoken does
        return gpt2.encode(text)

    methods: dict[str, Callable[[], Any]] = {
        "fast": lambda: train_bpe(text, 256 + merges, method="fast"),
        "hf_tokenizers": hf_trainer(text, 256 + merges),
        "ours_encode": ours_encode,
        "tiktoken_encode": lambda: reference.encode_ordinary(text),
    }
    results = {name: method() for name, method in methods.items()}  # warm-up
    wall: dict[str, list[float]] = {name: [] for name in methods}
    cpu: dict[str, list[float]] = {name: [] for name in methods}
    for repeat in range(repeats):
        for name, method in methods.items():
            seconds, cpu_seconds, results[name] = timed(method)
            wall[name].append(seconds)
            cpu[name].append(cpu_seconds)
        times = ", ".join(f"{name} {wall[name][-1]:.3f} s" for name in methods)
        log(f"  repeat {repeat + 1}/{repeats}: {times}")

    log(f"  naive trainer, {naive_merges} merges (one run)...")
    naive_seconds, naive_cpu, naive = timed(
        lambda: train_bpe(text, 256 + naive_merges, method="naive")
    )
    naive_full = naive_seconds * merges / naive_merges
    fast = results["fast"]
    merges_identical = naive.merges == fast.merges[:naive_merges]
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

    def stats(name: str) -> dict[str, Any]:
        return summary(wall[name]) | {"median_cpu_s": statistics.median(cpu[name])}

    return {
        "config": describe(text)
        | {
            "merges": merges,
            "repeats": repeats,
            "naive_merges_timed": naive_merges,
            "naive_extrapolated": naive_merges < merges,
            "statistic": "median wall-clock seconds over the repeats (naive: one run)",
        },
        "training": {
            "fast": stats("fast"),
            "hf_tokenizers": stats("hf_tokenizers"),
            "naive": {
                "seconds": naive_seconds,
                "cpu_s": naive_cpu,
                "seconds_for_all_merges": naive_full,
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
    }


def bars_met(run: dict[str, Any]) -> dict[str, bool]:
    ratios = run["ratios"]
    return {
        "naive_over_fast": ratios["naive_over_fast"] >= BARS["naive_over_fast"],
        "fast_over_hf_tokenizers": (
            ratios["fast_over_hf_tokenizers"] <= BARS["fast_over_hf_tokenizers"]
        ),
        "ours_over_tiktoken_encode": (
            ratios["ours_over_tiktoken_encode"] <= BARS["ours_over_tiktoken_encode"]
            and run["encoding"]["ids_identical"]
        ),
    }


def load_average() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--repeats", type=int, default=5, help="timed runs per method (default 5)")
    parser.add_argument(
        "--naive-merges", type=int, default=MERGES, help="merges for the naive run (default 500)"
    )
    parser.add_argument(
        "--corpora", nargs="+", choices=sorted(CORPORA), default=list(CORPORA), help="texts to run"
    )
    parser.add_argument("--output", type=Path, default=DEFAULT_OUTPUT)
    args = parser.parse_args(argv)
    if not 1 <= args.naive_merges <= MERGES:
        parser.error(f"--naive-merges must be in [1, {MERGES}]")
    if args.repeats < 1:
        parser.error("--repeats must be >= 1")

    gpt2 = ByteBPETokenizer.from_tiktoken("gpt2")
    reference = gpt2_encoding()
    runs: dict[str, Any] = {}
    loads: dict[str, Any] = {}
    for name in args.corpora:
        how, make = CORPORA[name]
        text = make(TEXT_BYTES)
        loads[name] = {"before": load_average()}
        info = describe(text)
        print(
            f"{name}: {info['text_bytes']:,} bytes, {info['chunks']:,} chunks, "
            f"{info['distinct_chunks']:,} distinct",
            flush=True,
        )
        run = measure(
            text,
            merges=MERGES,
            repeats=args.repeats,
            naive_merges=args.naive_merges,
            gpt2=gpt2,
            reference=reference,
            log=lambda line: print(line, flush=True),
        )
        run["config"]["text"] = how
        run["bars_met"] = bars_met(run) if name == "english" else None
        runs[name] = run
        loads[name]["after"] = load_average()

    arguments = sys.argv[1:] if argv is None else argv
    result = {
        "description": "byte-level BPE training and GPT-2 encoding, pure Python vs Rust, CPU",
        "command": " ".join(["python", "benchmarks/bpe.py", *arguments]),
        "runs": runs,
        "bars": BARS,
        "bars_apply_to": "english",
        "machine": machine(),
        "load_average": loads,
        "date": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC"),
    }
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")

    ok = True
    for name, run in runs.items():
        ratios, training, encoding = run["ratios"], run["training"], run["encoding"]
        ok &= training["merges_identical_naive_vs_fast"] and encoding["ids_identical"]
        print(
            f"{name}: naive / fast {ratios['naive_over_fast']:.0f}x, fast / tokenizers "
            f"{ratios['fast_over_hf_tokenizers']:.2f}, ours / tiktoken "
            f"{ratios['ours_over_tiktoken_encode']:.2f}; merges identical "
            f"{training['merges_identical_naive_vs_fast']}, ids identical "
            f"{encoding['ids_identical']}"
        )
        if run["bars_met"] is not None:
            ok &= all(run["bars_met"].values())
            print(f"  bars {BARS}: {run['bars_met']}")
    print(f"wrote {args.output}")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
