"""LoRA vs DoRA vs full fine-tuning on the book's GPT: quality, trainable parameters, memory.

Run (about 15 minutes on one thread of a 2-core machine, 30 when it is busy; chapter 3 reads
the result)::

    python experiments/lora.py

The downstream task is a change of style. A 4-layer character-level GPT (width 64) is first
pre-trained on ``english_text`` (varied adult prose), then adapted to ``tiny_stories``
(children's stories, a narrow style) from a small training set. Each method starts from the
same pre-trained weights and sees the same batches:

* ``full``: every parameter trains (AdamW);
* ``lora`` and ``dora`` at ranks 1, 4, 8 and 32 on every linear layer of the blocks
  (``target_modules="all-linear"``: queries, keys, values, output projections, both MLP
  layers; the embeddings, the layer norms and the head stay frozen), ``lora_alpha = 2 r``.

Recorded per run: validation loss on the stories over training and at the end, validation loss
on the pre-training English text (what was forgotten), trainable parameters, the bytes of the
optimizer's state (measured from ``optimizer.state``), the wall-clock time, and for full
fine-tuning, LoRA and DoRA at rank 8 the DoRA paper's magnitude/direction changes
(``magnitude_direction_change``) of every layer's query and value matrices every 10 steps.
``--lr-sweep`` adds a short learning-rate sweep (seed 0) around the fixed rates, 1e-3 for full
fine-tuning and 5e-3 for the adapters (not part of the stored run). The script writes
``experiments/results/lora.json`` with the command, the machine, the date and the seeds.
"""

from __future__ import annotations

import argparse
import copy
import datetime
import json
import sys
import time
from functools import partial
from pathlib import Path

import torch

from tutorial_code.corpora import english_text, tiny_stories
from tutorial_code.costs import count_parameters
from tutorial_code.data import CharTokenizer, random_batch
from tutorial_code.lora import LoRALinear, apply_lora, magnitude_direction_change
from tutorial_code.model import GPTConfig, GPTModel
from tutorial_code.notebook import cpu_model, machine_summary
from tutorial_code.stability import warmup_cosine_scheduler
from tutorial_code.training import estimate_loss, param_groups, train, train_step

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_OUTPUT = ROOT / "experiments" / "results" / "lora.json"

RANKS = (1, 4, 8, 32)
ANALYSIS_RANK = 8
#: Learning rates tried once (seed 0) for full fine-tuning and rank-8 adapters, to check that
#: the fixed rates of the main runs are not far from each method's best.
LR_SWEEP = {"full": (3e-4, 1e-3, 3e-3), "lora": (1e-3, 5e-3, 2e-2), "dora": (1e-3, 5e-3, 2e-2)}
SETTINGS = dict(
    emb_dim=64,
    n_heads=4,
    n_layers=4,
    context_length=64,
    batch_size=32,
    finetune_batch_size=16,
    pretrain_chars=600_000,
    pretrain_steps=600,
    pretrain_lr=3e-3,
    finetune_stories=400,
    val_stories=200,
    full_lr=1e-3,
    adapter_lr=5e-3,
    warmup_steps=30,
    weight_decay=0.0,
    max_norm=1.0,
    eval_every=50,
    eval_batches=8,
    analysis_every=10,
)


def corpus() -> dict:
    """Pre-training English (seed 0) and held-out English (seed 1); stories to adapt to."""
    s = SETTINGS
    texts = {
        "pretrain": english_text(s["pretrain_chars"], seed=0),
        "val_english": english_text(40_000, seed=1),
        "train_stories": tiny_stories(s["finetune_stories"], seed=2),
        "val_stories": tiny_stories(s["val_stories"], seed=3),
    }
    tokenizer = CharTokenizer.from_text("".join(texts.values()))
    ids = {k: torch.tensor(tokenizer.encode(v)) for k, v in texts.items()}
    return {"ids": ids, "vocab_size": tokenizer.vocab_size}


def pretrain(
    data: dict, *, steps: int, max_steps: int | None = None
) -> tuple[GPTModel, list[float]]:
    """The base model every method adapts (seed 0, warmup + cosine, AdamW) and its losses;
    ``max_steps`` stops early on the same schedule (for the tests)."""
    s = SETTINGS
    torch.manual_seed(0)
    cfg = GPTConfig(
        vocab_size=data["vocab_size"],
        context_length=s["context_length"],
        emb_dim=s["emb_dim"],
        n_heads=s["n_heads"],
        n_layers=s["n_layers"],
        drop_rate=0.0,
    )
    model = GPTModel(cfg)
    optimizer = torch.optim.AdamW(param_groups(model, weight_decay=0.1), lr=s["pretrain_lr"])
    scheduler = warmup_cosine_scheduler(
        optimizer,
        peak_lr=s["pretrain_lr"],
        warmup_steps=min(100, steps // 10),
        total_steps=steps,
        min_lr=s["pretrain_lr"] / 10,
    )
    log = train(
        model,
        optimizer,
        data["ids"]["pretrain"],
        total_steps=steps if max_steps is None else max_steps,
        batch_size=s["batch_size"],
        context_length=s["context_length"],
        scheduler=scheduler,
        max_norm=s["max_norm"],
        generator=torch.Generator().manual_seed(1),
    )
    return model, log.losses


def effective_weights(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """Every layer's query and value weight as the forward pass uses it, float32."""
    weights = {}
    for i, block in enumerate(model.trf_blocks):
        for name in ("W_query", "W_value"):
            layer = getattr(block.att, name)
            merged = layer.merged_weight() if isinstance(layer, LoRALinear) else layer.weight
            weights[f"{i}.{name}"] = merged.detach().float().clone()
    return weights


def optimizer_state_bytes(optimizer: torch.optim.Optimizer) -> int:
    """Bytes of every tensor the optimizer keeps per parameter (Adam: exp_avg, exp_avg_sq)."""
    return sum(
        t.numel() * t.element_size()
        for state in optimizer.state.values()
        for t in state.values()
        if isinstance(t, torch.Tensor) and t.dim() > 0
    )


def finetune(
    base: GPTModel,
    data: dict,
    method: str,
    rank: int | None,
    seed: int,
    *,
    total_steps: int,
    max_steps: int | None = None,
    analyse: bool = False,
    lr: float | None = None,
) -> dict:
    """Adapt a copy of ``base``; ``max_steps`` stops early on the same schedule (tests)."""
    s = SETTINGS
    ids = data["ids"]
    model = copy.deepcopy(base)
    torch.manual_seed(seed)  # the adapters' initial A
    if method == "full":
        lr = s["full_lr"] if lr is None else lr
    else:
        apply_lora(model, "all-linear", rank, 2 * rank, use_dora=method == "dora")
        lr = s["adapter_lr"] if lr is None else lr
    trainable = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(trainable, lr=lr, weight_decay=s["weight_decay"])
    scheduler = warmup_cosine_scheduler(
        optimizer,
        peak_lr=lr,
        warmup_steps=min(s["warmup_steps"], total_steps // 10),
        total_steps=total_steps,
        min_lr=lr / 10,
    )
    evaluate = partial(
        estimate_loss,
        batch_size=s["batch_size"],
        context_length=s["context_length"],
        n_batches=s["eval_batches"],
    )
    generator = torch.Generator().manual_seed(2000 + seed)
    base_weights = effective_weights(model) if analyse else {}
    log: dict = {"method": method, "rank": rank, "seed": seed, "lr": lr, "train_loss": []}
    log.update(eval_steps=[], val_loss_stories=[], analysis_steps=[], analysis={})
    seconds = 0.0
    steps = total_steps if max_steps is None else max_steps
    for step in range(steps + 1):
        if step % s["eval_every"] == 0 or step == steps:
            log["eval_steps"].append(step)
            log["val_loss_stories"].append(evaluate(model, ids["val_stories"]))
        if analyse and step % s["analysis_every"] == 0 and step > 0:
            log["analysis_steps"].append(step)
            for name, weight in effective_weights(model).items():
                dm, dd = magnitude_direction_change(weight, base_weights[name])
                log["analysis"].setdefault(name, {"delta_m": [], "delta_d": []})
                log["analysis"][name]["delta_m"].append(dm)
                log["analysis"][name]["delta_d"].append(dd)
        if step == steps:
            break
        x, y = random_batch(
            ids["train_stories"], batch_size=s["finetune_batch_size"],
            context_length=s["context_length"], generator=generator,
        )  # fmt: skip
        start = time.perf_counter()
        stats = train_step(model, optimizer, x, y, scheduler=scheduler, max_norm=s["max_norm"])
        seconds += time.perf_counter() - start
        log["train_loss"].append(stats.loss)
    log["train_seconds"] = seconds
    log["trainable_parameters"] = count_parameters(model, trainable_only=True)
    log["total_parameters"] = count_parameters(model)
    log["optimizer_state_bytes"] = optimizer_state_bytes(optimizer)
    log["val_loss_english"] = evaluate(model, ids["val_english"])
    return log


def check_slice(data: dict, *, total_steps: int, pretrain_steps: int) -> dict:
    """Five pre-training steps, then five DoRA steps: what the unit test re-runs."""
    base, pretrain_losses = pretrain(data, steps=pretrain_steps, max_steps=5)
    log = finetune(base, data, "dora", 4, 0, total_steps=total_steps, max_steps=5)
    return {"pretrain_losses": pretrain_losses, "dora_r4_losses": log["train_loss"]}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=150)
    parser.add_argument("--pretrain-steps", type=int, default=SETTINGS["pretrain_steps"])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--ranks", type=int, nargs="+", default=list(RANKS))
    parser.add_argument("--lr-sweep", action=argparse.BooleanOptionalAction, default=False)
    parser.add_argument("--output", type=Path, default=DEFAULT_OUTPUT)
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    data = corpus()
    start = time.perf_counter()
    base, pretrain_losses = pretrain(data, steps=args.pretrain_steps)
    pretrain_seconds = time.perf_counter() - start
    evaluate = partial(
        estimate_loss,
        batch_size=SETTINGS["batch_size"],
        context_length=SETTINGS["context_length"],
        n_batches=SETTINGS["eval_batches"],
    )
    base_losses = {
        "val_loss_english": evaluate(base, data["ids"]["val_english"]),
        "val_loss_stories": evaluate(base, data["ids"]["val_stories"]),
    }
    print(f"pre-trained in {pretrain_seconds:.0f} s: {base_losses}", flush=True)
    configs = [("full", None)] + [(m, r) for r in args.ranks for m in ("lora", "dora")]
    runs = []
    for seed in args.seeds:
        for method, rank in configs:
            analyse = seed == args.seeds[0] and rank in (None, ANALYSIS_RANK)
            log = finetune(base, data, method, rank, seed, total_steps=args.steps, analyse=analyse)
            runs.append(log)
            print(
                f"{method:>5} r={rank} seed {seed}: stories {log['val_loss_stories'][-1]:.3f}, "
                f"English {log['val_loss_english']:.3f}, {log['trainable_parameters']:,} "
                f"trainable, {log['train_seconds']:.0f} s",
                flush=True,
            )
    sweep = []
    for method, rates in LR_SWEEP.items() if args.lr_sweep else ():
        for lr in rates:
            if lr == (SETTINGS["full_lr"] if method == "full" else SETTINGS["adapter_lr"]):
                continue  # the main run of seed 0
            rank = None if method == "full" else ANALYSIS_RANK
            log = finetune(base, data, method, rank, args.seeds[0], total_steps=args.steps, lr=lr)
            sweep.append({k: log[k] for k in ("method", "rank", "lr", "val_loss_stories")})
            print(f"sweep {method} lr={lr}: stories {log['val_loss_stories'][-1]:.3f}", flush=True)
    result = {
        "check": check_slice(data, total_steps=args.steps, pretrain_steps=args.pretrain_steps),
        "command": " ".join(
            ["python experiments/lora.py", *(sys.argv[1:] if argv is None else argv)]
        ),
        "date": datetime.date.today().isoformat(),
        "machine": {"cpu": cpu_model(), "summary": machine_summary(), "threads": 1},
        "steps": args.steps,
        "pretrain_steps": args.pretrain_steps,
        "pretrain_seconds": pretrain_seconds,
        "seeds": args.seeds,
        "ranks": args.ranks,
        "settings": SETTINGS,
        "vocab_size": data["vocab_size"],
        "base": base_losses,
        "pretrain_losses": pretrain_losses,
        "runs": runs,
        "lr_sweep": sweep,
    }
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(result, indent=1) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
