"""Raw vs cleaned text for chapter 1: what does the cleaning pipeline buy a small GPT?

Data. ``tutorial_code.datapipe.dirty_corpus`` with 1,200 generated documents (alternately
English and Chinese) made dirty: exact copies of 10% of them (1 to 20 copies each),
near-copies of another 10%, 300 junk pages (symbol soup, keyword spam, mojibake, Cyrillic,
lorem ipsum, code, very short pages, repeated lines) and navigation / cookie / copyright lines
pasted into 40% of all pages. ``tutorial_code.datapipe.clean_corpus`` cleans it. The held-out
text is 200 further clean documents (``dirty_corpus(200, seed=1)`` with nothing injected),
never seen in training.

Training. The same ``GPTModel`` (width 48, 2 layers, 4 heads, context 64, one id per character
over the union of all the characters) is trained on the raw and on the cleaned corpus (the
documents joined by blank lines) for the same number of tokens, with
:func:`tutorial_code.scaling.train_for_tokens` (AdamW, peak learning rate 0.02, 5% warmup,
cosine to 10%), once per seed; the seed sets the initial weights and the batches. Each model
is scored by its mean cross-entropy on the held-out English, the held-out Chinese, and both
(all windows of each, in order).

Usage::

    python experiments/data_cleaning.py              # writes experiments/results/data_cleaning.json
    python experiments/data_cleaning.py --seeds 0 1 --output /tmp/cleaning.json

Run it with the machine otherwise idle: it sets one torch thread and reports the wall time.
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
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import torch

from tutorial_code.data import CharTokenizer
from tutorial_code.datapipe import (
    BOILERPLATE_LINES,
    CleaningResult,
    DirtyCorpus,
    clean_corpus,
    detect_script,
    dirty_corpus,
    normalize_text,
)
from tutorial_code.model import GPTConfig, GPTModel
from tutorial_code.notebook import cpu_model, machine_summary
from tutorial_code.scaling import train_for_tokens
from tutorial_code.training import lm_loss

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_OUTPUT = ROOT / "experiments" / "results" / "data_cleaning.json"

CORPUS = {"n_clean": 1200, "seed": 0}
HELDOUT = {"n_clean": 200, "seed": 1}
MODEL = {"emb_dim": 48, "n_layers": 2, "n_heads": 4, "context_length": 64}
TRAINING = {
    "n_tokens": 1_000_000,
    "batch_size": 16,
    "peak_lr": 0.02,
    "warmup_fraction": 0.05,
    "min_lr_ratio": 0.1,
    "weight_decay": 0.1,
    "max_norm": 1.0,
}
SEEDS = (0, 1, 2)
SEPARATOR = "\n\n"


@dataclass(frozen=True)
class Corpora:
    dirty: DirtyCorpus
    cleaned: CleaningResult
    heldout: list[str]


def build_corpora(corpus: dict = CORPUS, heldout: dict = HELDOUT) -> Corpora:
    dirty = dirty_corpus(corpus["n_clean"], seed=corpus["seed"])
    held = dirty_corpus(
        heldout["n_clean"],
        seed=heldout["seed"],
        duplicated_fraction=0.0,
        near_duplicated_fraction=0.0,
        junk_fraction=0.0,
        boilerplate_fraction=0.0,
    )
    return Corpora(dirty, clean_corpus(dirty.docs), held.docs)


def cleaning_statistics(corpora: Corpora) -> dict:
    """Per stage: documents and characters removed, and what they were (ground truth)."""
    dirty, result = corpora.dirty, corpora.cleaned
    kinds = Counter(dirty.kinds)
    stages = []
    for stage, removed in result.removed.items():
        stages.append(
            {
                "stage": stage,
                "docs": len(removed),
                "chars": sum(len(dirty.docs[i]) for i in removed),
                "kinds": dict(Counter(dirty.kinds[i] for i in removed).most_common()),
            }
        )
    kept_sources = Counter(dirty.source[i] for i in result.kept if dirty.source[i] >= 0)
    n_sources = sum(1 for k in dirty.kinds if k == "clean")
    boiler = {normalize_text(line) for line in BOILERPLATE_LINES}
    return {
        "input_docs": len(dirty.docs),
        "input_chars": result.chars_in,
        "kinds": dict(kinds.most_common()),
        "docs_with_boilerplate": sum(dirty.boilerplate),
        "exact_duplicate_rate_docs": round(
            len(result.removed["exact_duplicate"]) / len(dirty.docs), 4
        ),
        "stages": stages,
        "rule_failures": result.rule_failures,
        "boilerplate_lines_found": len(result.boilerplate_lines),
        "boilerplate_lines_injected_found": len(result.boilerplate_lines & boiler),
        "lines_removed": result.lines_removed,
        "output_docs": len(result.kept),
        "output_chars": result.chars_out,
        "junk_kept": sum(dirty.kinds[i].startswith("junk") for i in result.kept),
        "sources": n_sources,
        "sources_kept_once": sum(1 for c in kept_sources.values() if c == 1),
        "sources_kept_twice_or_more": sum(1 for c in kept_sources.values() if c > 1),
        "sources_lost": n_sources - len(kept_sources),
        "kept_docs_by_script": dict(
            Counter(detect_script(d).label for d in result.docs).most_common()
        ),
    }


@torch.no_grad()
def heldout_loss(model: GPTModel, ids: torch.Tensor, context_length: int) -> float:
    """Mean next-token loss over every non-overlapping window of ``ids``, in order."""
    model.eval()
    n = (ids.numel() - 1) // context_length
    x = ids[: n * context_length].view(n, context_length)
    y = ids[1 : n * context_length + 1].view(n, context_length)
    total = 0.0
    for start in range(0, n, 64):
        total += lm_loss(model, x[start : start + 64], y[start : start + 64]).item() * len(
            x[start : start + 64]
        )
    model.train()
    return total / n


def train_and_score(
    text: str, tokenizer: CharTokenizer, heldout: dict[str, torch.Tensor], seed: int
) -> dict:
    cfg = GPTConfig(vocab_size=tokenizer.vocab_size, drop_rate=0.0, **MODEL)
    torch.manual_seed(seed)
    model = GPTModel(cfg)
    ids = torch.tensor(tokenizer.encode(text))
    start = time.perf_counter()
    log = train_for_tokens(
        model,
        ids,
        n_tokens=TRAINING["n_tokens"],
        batch_size=TRAINING["batch_size"],
        context_length=MODEL["context_length"],
        peak_lr=TRAINING["peak_lr"],
        warmup_fraction=TRAINING["warmup_fraction"],
        min_lr_ratio=TRAINING["min_lr_ratio"],
        weight_decay=TRAINING["weight_decay"],
        max_norm=TRAINING["max_norm"],
        seed=seed,
    )
    seconds = time.perf_counter() - start
    losses = {
        name: round(heldout_loss(model, part, MODEL["context_length"]), 6)
        for name, part in heldout.items()
    }
    return {
        "seed": seed,
        "steps": len(log),
        "train_tokens": len(log) * TRAINING["batch_size"] * MODEL["context_length"],
        "corpus_tokens": int(ids.numel()),
        "heldout_loss": losses,
        "train_loss_last_50": round(sum(log.losses[-50:]) / 50, 6),
        "train_seconds": round(seconds, 2),
    }


def load_average() -> list[float] | None:
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except OSError:
        return None


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=list(SEEDS))
    parser.add_argument("--output", type=Path, default=DEFAULT_OUTPUT)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)

    wall = time.perf_counter()
    load_before = load_average()
    start = time.perf_counter()
    corpora = build_corpora()
    cleaning_seconds = time.perf_counter() - start
    stats = cleaning_statistics(corpora)
    raw_text = SEPARATOR.join(corpora.dirty.docs)
    clean_text = SEPARATOR.join(corpora.cleaned.docs)
    held_en = [d for d in corpora.heldout if detect_script(d).label == "en"]
    held_zh = [d for d in corpora.heldout if detect_script(d).label == "zh"]
    heldout_text = {
        "both": SEPARATOR.join(corpora.heldout),
        "en": SEPARATOR.join(held_en),
        "zh": SEPARATOR.join(held_zh),
    }
    tokenizer = CharTokenizer.from_text(raw_text + heldout_text["both"])
    heldout = {k: torch.tensor(tokenizer.encode(v)) for k, v in heldout_text.items()}
    print(
        f"raw {len(raw_text):,} chars, cleaned {len(clean_text):,} chars, vocabulary "
        f"{tokenizer.vocab_size}; cleaning took {cleaning_seconds:.1f} s",
        flush=True,
    )
    runs: dict[str, list[dict]] = {"raw": [], "cleaned": []}
    for seed in args.seeds:
        for name, text in (("raw", raw_text), ("cleaned", clean_text)):
            run = train_and_score(text, tokenizer, heldout, seed)
            runs[name].append(run)
            print(
                f"{name:8s} seed {seed}: held-out {run['heldout_loss']} ({run['train_seconds']} s)",
                flush=True,
            )
    summary = {}
    for name, rs in runs.items():
        summary[name] = {}
        for part in heldout:
            values = [r["heldout_loss"][part] for r in rs]
            summary[name][part] = {
                "mean": round(statistics.mean(values), 4),
                "std": round(statistics.stdev(values), 4) if len(values) > 1 else None,
            }
    differences = [
        r["heldout_loss"]["both"] - c["heldout_loss"]["both"]
        for r, c in zip(runs["raw"], runs["cleaned"], strict=True)
    ]
    total = time.perf_counter() - wall
    result = {
        "description": "Raw vs cleaned bilingual text: held-out loss on clean text of the same "
        "small GPT trained for the same number of tokens",
        "command": " ".join(
            ["python", "experiments/data_cleaning.py", *(sys.argv[1:] if argv is None else argv)]
        ),
        "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "machine": {
            "cpu_model": cpu_model(),
            "summary": machine_summary(),
            "cpu_count": os.cpu_count(),
            "torch_threads": torch.get_num_threads(),
            "torch_version": torch.__version__,
            "cpu_capability": torch.backends.cpu.get_cpu_capability(),
            "python_version": platform.python_version(),
            "load_average_before": load_before,
            "load_average_after": load_average(),
        },
        "corpus": CORPUS,
        "heldout": {
            **HELDOUT,
            "docs_en": len(held_en),
            "docs_zh": len(held_zh),
            "tokens": {k: int(v.numel()) for k, v in heldout.items()},
        },
        "model": MODEL,
        "training": TRAINING,
        "vocab_size": tokenizer.vocab_size,
        "seeds": list(args.seeds),
        "cleaning": stats,
        "cleaning_seconds": round(cleaning_seconds, 2),
        "corpus_chars": {"raw": len(raw_text), "cleaned": len(clean_text)},
        "runs": runs,
        "summary": summary,
        "raw_minus_cleaned_both": [round(d, 6) for d in differences],
        "total_seconds": round(total, 1),
    }
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(
        json.dumps(result, indent=2, ensure_ascii=False) + "\n", encoding="utf-8"
    )
    print(f"wrote {args.output} ({total:.0f} s)")


if __name__ == "__main__":
    main()
