"""Mixture of experts on the book's GPT: dense vs MoE at equal active and equal total parameters.

Run (about 30 minutes on one thread of a busy 2-core machine; chapter 3 reads the result)::

    python experiments/moe.py

Four variants of one 4-layer GPT (width 64, character-level, English + Chinese text) differ only
in their feed-forward blocks, all SwiGLU so that only the routing differs:

* ``dense-active``: one SwiGLU network of hidden width ``k * h`` per layer, the parameters a
  token of the mixture passes through (``top_k = 2`` experts of width ``h``);
* ``moe``: ``E = 8`` experts of width ``h``, top-2 routing, load-balancing loss with
  ``router_aux_loss_coef = 0.02`` (Mixtral's released configuration);
* ``moe-no-aux``: the same mixture without the auxiliary loss;
* ``dense-total``: one SwiGLU network of hidden width ``E * h``, as many parameters as the
  mixture holds.

Every variant sees the same batches (same seeds) for the same number of steps. The script
writes ``experiments/results/moe.json``: per run the training losses, validation losses on
English and on Chinese text, the auxiliary loss, expert usage per layer over training, the
final usage per layer on English and on Chinese text, parameter counts and wall-clock time,
plus the command, the machine, the date and the seeds.
"""

from __future__ import annotations

import argparse
import datetime
import json
import sys
import time
from functools import partial
from pathlib import Path

import torch

from tutorial_code.corpora import chinese_text, english_text
from tutorial_code.costs import count_active_parameters, count_parameters
from tutorial_code.data import CharTokenizer, random_batch
from tutorial_code.model import FeedForward, GPTConfig, GPTModel
from tutorial_code.modules import replace_modules
from tutorial_code.moe import (
    SwiGLUFeedForward,
    apply_moe,
    load_balancing_loss,
    moe_layers,
    moe_lm_loss,
    router_logits_of,
    routing_fractions,
)
from tutorial_code.notebook import cpu_model, machine_summary
from tutorial_code.stability import warmup_cosine_scheduler
from tutorial_code.training import estimate_loss, lm_loss, param_groups, train_step

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_OUTPUT = ROOT / "experiments" / "results" / "moe.json"

VARIANTS = ("dense-active", "moe", "moe-no-aux", "dense-total")
SETTINGS = dict(
    emb_dim=64,
    n_heads=4,
    n_layers=4,
    context_length=64,
    batch_size=32,
    num_experts=8,
    top_k=2,
    d_hidden=64,  # one expert's hidden width h
    router_aux_loss_coef=0.02,
    peak_lr=3e-3,
    warmup_steps=80,
    weight_decay=0.1,
    max_norm=1.0,
    train_chars_per_language=400_000,
    val_chars_per_language=40_000,
    eval_every=100,
    eval_batches=8,
)


def corpus() -> dict:
    """Character ids of English and Chinese text: training (seed 0) and validation (seed 1)."""
    n, m = SETTINGS["train_chars_per_language"], SETTINGS["val_chars_per_language"]
    texts = {
        "train_en": english_text(n, seed=0),
        "train_zh": chinese_text(n, seed=0),
        "val_en": english_text(m, seed=1),
        "val_zh": chinese_text(m, seed=1),
    }
    tokenizer = CharTokenizer.from_text("".join(texts.values()))
    ids = {k: torch.tensor(tokenizer.encode(v)) for k, v in texts.items()}
    # training windows come from both languages in equal shares
    ids["train"] = torch.cat([ids.pop("train_en"), ids.pop("train_zh")])
    return {"ids": ids, "vocab_size": tokenizer.vocab_size}


def build(variant: str, vocab_size: int, seed: int) -> GPTModel:
    """The GPT with the variant's feed-forward blocks, initialised from ``seed``."""
    s = SETTINGS
    torch.manual_seed(seed)
    cfg = GPTConfig(
        vocab_size=vocab_size,
        context_length=s["context_length"],
        emb_dim=s["emb_dim"],
        n_heads=s["n_heads"],
        n_layers=s["n_layers"],
        drop_rate=0.0,
    )
    model = GPTModel(cfg)
    c, h, e, k = s["emb_dim"], s["d_hidden"], s["num_experts"], s["top_k"]
    if variant in ("moe", "moe-no-aux"):
        apply_moe(model, num_experts=e, top_k=k, d_hidden=h)
    else:
        width = k * h if variant == "dense-active" else e * h
        replace_modules(
            model,
            r"trf_blocks\.\d+\.ff",
            lambda name, ff: SwiGLUFeedForward(c, width),
            module_type=FeedForward,
        )
    return model


@torch.no_grad()
def expert_usage(model: GPTModel, ids: torch.Tensor, *, batches: int, seed: int) -> list[list]:
    """Per layer, the fraction of tokens routed to each expert (``f_e``, summing to top_k)."""
    s = SETTINGS
    generator = torch.Generator().manual_seed(seed)
    was_training = model.training
    model.eval()
    per_layer: list[list[torch.Tensor]] = [[] for _ in moe_layers(model)]
    for _ in range(batches):
        x, _ = random_batch(
            ids, batch_size=s["batch_size"], context_length=s["context_length"],
            generator=generator,
        )  # fmt: skip
        model(x)
        for i, logits in enumerate(router_logits_of(model)):
            per_layer[i].append(logits)
    model.train(was_training)
    e, k = s["num_experts"], s["top_k"]
    return [routing_fractions(torch.cat(chunks), e, k)[0].tolist() for chunks in per_layer]


def run(
    variant: str, seed: int, data: dict, *, total_steps: int, max_steps: int | None = None
) -> dict:
    """Train one variant; ``max_steps`` stops early on the same schedule (for the tests)."""
    s = SETTINGS
    ids = data["ids"]
    model = build(variant, data["vocab_size"], seed)
    is_moe = variant.startswith("moe")
    coef = s["router_aux_loss_coef"] if variant == "moe" else 0.0
    loss_fn = partial(moe_lm_loss, router_aux_loss_coef=coef) if is_moe else lm_loss
    optimizer = torch.optim.AdamW(
        param_groups(model, weight_decay=s["weight_decay"]), lr=s["peak_lr"]
    )
    scheduler = warmup_cosine_scheduler(
        optimizer,
        peak_lr=s["peak_lr"],
        warmup_steps=min(s["warmup_steps"], total_steps // 10),
        total_steps=total_steps,
        min_lr=s["peak_lr"] / 10,
    )
    generator = torch.Generator().manual_seed(1000 + seed)
    evaluate = partial(
        estimate_loss,
        batch_size=s["batch_size"],
        context_length=s["context_length"],
        n_batches=s["eval_batches"],
    )
    log: dict = {"variant": variant, "seed": seed, "train_loss": [], "lm_loss": [], "aux_loss": []}
    log.update(eval_steps=[], val_loss_en=[], val_loss_zh=[], usage_during_training=[])
    seconds = 0.0
    steps = total_steps if max_steps is None else max_steps
    for step in range(steps + 1):
        if step % s["eval_every"] == 0 or step == steps:
            log["eval_steps"].append(step)
            log["val_loss_en"].append(evaluate(model, ids["val_en"]))
            log["val_loss_zh"].append(evaluate(model, ids["val_zh"]))
            if is_moe:
                both = torch.cat([ids["val_en"], ids["val_zh"]])
                log["usage_during_training"].append(expert_usage(model, both, batches=2, seed=0))
        if step == steps:
            break
        x, y = random_batch(
            ids["train"], batch_size=s["batch_size"], context_length=s["context_length"],
            generator=generator,
        )  # fmt: skip
        start = time.perf_counter()
        stats = train_step(
            model, optimizer, x, y, loss_fn=loss_fn, scheduler=scheduler, max_norm=s["max_norm"]
        )
        seconds += time.perf_counter() - start
        log["train_loss"].append(stats.loss)  # what was minimised: LM loss + coef * aux
        aux = 0.0
        if is_moe:  # the aux loss of the batch just trained on (the forward before the update)
            layers = router_logits_of(model)
            aux = load_balancing_loss(layers, s["num_experts"], s["top_k"]).item()
            log["aux_loss"].append(aux)
        log["lm_loss"].append(stats.loss - coef * aux)
    log["train_seconds"] = seconds
    log["parameters"] = count_parameters(model)
    log["active_parameters"] = count_active_parameters(model)
    if is_moe:
        batches = s["eval_batches"]
        log["usage_en"] = expert_usage(model, ids["val_en"], batches=batches, seed=0)
        log["usage_zh"] = expert_usage(model, ids["val_zh"], batches=batches, seed=0)
    return log


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=800)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=VARIANTS)
    parser.add_argument("--output", type=Path, default=DEFAULT_OUTPUT)
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    data = corpus()
    runs = []
    for seed in args.seeds:  # variants interleaved, so machine load affects them alike
        for variant in args.variants:
            log = run(variant, seed, data, total_steps=args.steps)
            runs.append(log)
            print(
                f"{variant:>12} seed {seed}: val en {log['val_loss_en'][-1]:.3f} "
                f"zh {log['val_loss_zh'][-1]:.3f}, {log['train_seconds']:.0f} s",
                flush=True,
            )
    result = {
        "command": " ".join(
            ["python experiments/moe.py", *(sys.argv[1:] if argv is None else argv)]
        ),
        "date": datetime.date.today().isoformat(),
        "machine": {"cpu": cpu_model(), "summary": machine_summary(), "threads": 1},
        "steps": args.steps,
        "seeds": args.seeds,
        "settings": SETTINGS,
        "vocab_size": data["vocab_size"],
        "runs": runs,
    }
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(result, indent=1) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
