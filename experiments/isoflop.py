"""IsoFLOP sweep for chapter 1: the book's GPT at several sizes for each of four compute budgets.

Set-up. Character-level English from ``tutorial_code.corpora.english_text`` (8,000,000
characters for training with seed 0, 300,000 held-out characters with seed 1; one id per
character, 72 of them). Models: ``GPTModel`` with 2 layers, context 64, no dropout,
PyTorch's default initialisation (seed 0), widths from :data:`WIDTHS` (2 heads up to width
32, 4 above). Each run trains for ``D = C / f`` tokens, where ``C`` is the budget and
``f = training_flops_per_token(cfg)`` the exact matrix-multiply FLOPs of a training token
(``6 N`` would misstate ``C`` by 10-40% at these sizes), with
:func:`tutorial_code.scaling.train_for_tokens`: AdamW (betas 0.9, 0.95, weight decay 0.1 on
the weight matrices), batches of 16 windows, gradient clipping at 1.0, a 5% linear warmup and
a cosine decay to 10% of the peak at the end of the run's own budget. The peak learning rate
is ``min(0.02, 1.28 / width)``, from a pilot at 3e11 FLOPs that tried 0.001 to 0.04 for widths
32, 64 and 128 (0.02 was best for 32 and 64, 0.01 for 128). The final validation loss is the
mean cross-entropy over 20 fixed batches of 32 held-out windows.

Which sizes and budgets: for each budget the five consecutive widths of :data:`WIDTHS` centred
on the one whose parameter count is closest to ``23,000 * (C / 3e11) ** 0.66``. Both come from
a first sweep (stored in ``experiments/results/isoflop_pilot.json``: budgets 3e10 to 1e12,
widths 8 to 96): its optima were near 23k parameters at 3e11 and 51k at 1e12, and its runs
with fewer than about a million training tokens were still in the first, steep descent of the
loss (at 3e10 every size ended near 2.4 nats), where no power law holds. So the budgets start
at 2e11 and the sizes stay near each optimum, which keeps every run above 0.6M tokens.

Usage::

    python experiments/isoflop.py                 # writes experiments/results/isoflop.json
    python experiments/isoflop.py --budgets 3e10 1e11 --output /tmp/isoflop.json

Run it with the machine otherwise idle: it sets one torch thread and reports the wall time.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import torch

from tutorial_code.corpora import english_text
from tutorial_code.costs import gpt_parameter_count, training_flops_per_token
from tutorial_code.data import CharTokenizer
from tutorial_code.model import GPTConfig, GPTModel
from tutorial_code.notebook import cpu_model, machine_summary
from tutorial_code.scaling import train_for_tokens
from tutorial_code.training import estimate_loss

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_OUTPUT = ROOT / "experiments" / "results" / "isoflop.json"

WIDTHS = (12, 16, 20, 24, 32, 40, 48, 64, 80, 96)
BUDGETS = (2e11, 5e11, 1.25e12)
N_LAYERS = 2
CONTEXT_LENGTH = 64
BATCH_SIZE = 16
SIZES_PER_BUDGET = 5
CORPUS = {"train_chars": 8_000_000, "train_seed": 0, "val_chars": 300_000, "val_seed": 1}
SEEDS = {"model_init": 0, "batches": 1, "eval_windows": 0}
EVAL = {"batch_size": 32, "n_batches": 20}
TRAINING = {
    "warmup_fraction": 0.05,
    "min_lr_ratio": 0.1,
    "weight_decay": 0.1,
    "betas": [0.9, 0.95],
    "max_norm": 1.0,
    "lr_rule": "min(0.02, 1.28 / width)",
}


@dataclass(frozen=True)
class Data:
    tokenizer: CharTokenizer
    train_ids: torch.Tensor
    val_ids: torch.Tensor


def build_data(corpus: dict = CORPUS) -> Data:
    """The training and held-out text, tokenized one id per character."""
    train_text = english_text(corpus["train_chars"], seed=corpus["train_seed"])
    val_text = english_text(corpus["val_chars"], seed=corpus["val_seed"])
    tokenizer = CharTokenizer.from_text(train_text + val_text)
    return Data(
        tokenizer,
        torch.tensor(tokenizer.encode(train_text)),
        torch.tensor(tokenizer.encode(val_text)),
    )


def config(width: int, vocab_size: int) -> GPTConfig:
    return GPTConfig(
        vocab_size=vocab_size,
        context_length=CONTEXT_LENGTH,
        emb_dim=width,
        n_heads=2 if width <= 32 else 4,
        n_layers=N_LAYERS,
        drop_rate=0.0,
    )


def peak_lr(width: int) -> float:
    return min(0.02, 1.28 / width)


def widths_for(budget: float, vocab_size: int) -> list[int]:
    """The SIZES_PER_BUDGET consecutive widths centred on the guessed optimum."""
    guess = 23_000 * (budget / 3e11) ** 0.66
    counts = [gpt_parameter_count(config(w, vocab_size)) for w in WIDTHS]
    centre = min(range(len(WIDTHS)), key=lambda i: abs(counts[i] - guess))
    start = min(max(centre - SIZES_PER_BUDGET // 2, 0), len(WIDTHS) - SIZES_PER_BUDGET)
    return list(WIDTHS[start : start + SIZES_PER_BUDGET])


def run_point(data: Data, *, budget: float, width: int) -> dict:
    """Train one model on one budget and return everything the JSON records about it."""
    cfg = config(width, data.tokenizer.vocab_size)
    per_token = training_flops_per_token(cfg)
    n_tokens = int(budget // per_token)
    torch.manual_seed(SEEDS["model_init"])
    model = GPTModel(cfg)
    start = time.perf_counter()
    log = train_for_tokens(
        model,
        data.train_ids,
        n_tokens=n_tokens,
        batch_size=BATCH_SIZE,
        context_length=CONTEXT_LENGTH,
        peak_lr=peak_lr(width),
        warmup_fraction=TRAINING["warmup_fraction"],
        min_lr_ratio=TRAINING["min_lr_ratio"],
        weight_decay=TRAINING["weight_decay"],
        max_norm=TRAINING["max_norm"],
        seed=SEEDS["batches"],
    )
    seconds = time.perf_counter() - start
    val_loss = estimate_loss(
        model,
        data.val_ids,
        batch_size=EVAL["batch_size"],
        context_length=CONTEXT_LENGTH,
        n_batches=EVAL["n_batches"],
        seed=SEEDS["eval_windows"],
    )
    trained_tokens = len(log) * BATCH_SIZE * CONTEXT_LENGTH
    n_total = gpt_parameter_count(cfg)
    n_non_embedding = gpt_parameter_count(cfg, include_embeddings=False)
    return {
        "budget": budget,
        "width": width,
        "n_layers": cfg.n_layers,
        "n_heads": cfg.n_heads,
        "params": n_total,
        "params_non_embedding": n_non_embedding,
        "flops_per_token": per_token,
        "steps": len(log),
        "tokens": trained_tokens,
        "compute": per_token * trained_tokens,
        "compute_6nd": 6 * n_total * trained_tokens,
        "peak_lr": peak_lr(width),
        "val_loss": round(val_loss, 6),
        "train_loss_last_50": round(sum(log.losses[-50:]) / len(log.losses[-50:]), 6),
        "train_seconds": round(seconds, 2),
    }


def load_average() -> list[float] | None:
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except OSError:
        return None


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--budgets", type=float, nargs="+", default=list(BUDGETS))
    parser.add_argument("--output", type=Path, default=DEFAULT_OUTPUT)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)

    wall = time.perf_counter()
    load_before = load_average()
    data = build_data()
    runs = []
    for budget in sorted(args.budgets):
        for width in widths_for(budget, data.tokenizer.vocab_size):
            run = run_point(data, budget=budget, width=width)
            runs.append(run)
            print(
                f"C={budget:.0e} width={width:3d} N={run['params']:7d} D={run['tokens']:9d} "
                f"val={run['val_loss']:.4f} ({run['train_seconds']:.1f} s)",
                flush=True,
            )
    total = time.perf_counter() - wall
    command = " ".join(
        ["python", "experiments/isoflop.py", *(sys.argv[1:] if argv is None else argv)]
    )
    result = {
        "description": "IsoFLOP sweep: final held-out loss of the book's GPT at several sizes per "
        "compute budget, character-level English",
        "command": command,
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
        "corpus": {
            **CORPUS,
            "tokenizer": "characters",
            "vocab_size": data.tokenizer.vocab_size,
            "train_tokens": int(data.train_ids.numel()),
            "val_tokens": int(data.val_ids.numel()),
        },
        "model": {
            "n_layers": N_LAYERS,
            "context_length": CONTEXT_LENGTH,
            "drop_rate": 0.0,
            "widths": list(WIDTHS),
            "heads": "2 up to width 32, 4 above",
        },
        "training": {**TRAINING, "batch_size": BATCH_SIZE},
        "eval": EVAL,
        "seeds": SEEDS,
        "budgets": sorted(args.budgets),
        "runs": runs,
        "total_seconds": round(total, 1),
    }
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    print(f"wrote {args.output} ({len(runs)} runs, {total:.0f} s)")


if __name__ == "__main__":
    main()
