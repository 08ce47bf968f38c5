"""The book's training loop on several processes: DDP versus one process, step by step.

Run with PyTorch's launcher (this is the run the appendix prints)::

    torchrun --nproc_per_node=2 experiments/ddp.py

Every rank trains the book's GPT on its half of each global batch, wrapped in
``DistributedDataParallel`` (gloo on CPUs; on a GPU node, one process per GPU with NCCL, each
on ``cuda:LOCAL_RANK``). Rank 0 then trains a fresh copy of
the same model in a single process on the whole global batches and writes both loss curves,
the largest parameter difference and the timings to ``experiments/results/ddp.json``.
Only rank 0 prints and writes. With ``python experiments/ddp.py`` (no launcher) the same code
runs as one process of one, and both curves are the single-process run.
"""

from __future__ import annotations

import argparse
import datetime
import json
import sys
import time
from pathlib import Path

import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel

from tutorial_code.corpora import tiny_stories
from tutorial_code.data import CharTokenizer
from tutorial_code.distributed import init_distributed, is_main_process, training_device
from tutorial_code.model import GPTConfig, GPTModel
from tutorial_code.notebook import cpu_model, machine_summary
from tutorial_code.stability import warmup_cosine_scheduler
from tutorial_code.training import param_groups, train

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_OUTPUT = ROOT / "experiments" / "results" / "ddp.json"


def build(vocab_size: int) -> GPTModel:
    torch.manual_seed(0)  # the same initial weights everywhere (DDP also broadcasts rank 0's)
    cfg = GPTConfig(
        vocab_size=vocab_size, context_length=64, emb_dim=64, n_heads=4, n_layers=2, drop_rate=0.0
    )
    return GPTModel(cfg)


def run(model: torch.nn.Module, ids: torch.Tensor, args: argparse.Namespace) -> list[float]:
    optimizer = torch.optim.AdamW(param_groups(model, weight_decay=0.1), lr=args.lr)
    scheduler = warmup_cosine_scheduler(
        optimizer, peak_lr=args.lr, warmup_steps=args.steps // 10, total_steps=args.steps
    )
    log = train(
        model,
        optimizer,
        ids,
        total_steps=args.steps,
        batch_size=args.global_batch,
        context_length=64,
        scheduler=scheduler,
        max_norm=1.0,
        generator=torch.Generator().manual_seed(1),  # the same global batches on every rank
        grad_accum_steps=args.grad_accum_steps,
    )
    return log.losses


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=60)
    parser.add_argument("--global-batch", type=int, default=32)
    parser.add_argument("--grad-accum-steps", type=int, default=1)
    parser.add_argument("--lr", type=float, default=3e-3)
    parser.add_argument("--output", type=Path, default=DEFAULT_OUTPUT)
    args = parser.parse_args(argv)

    torch.set_num_threads(1)
    info = init_distributed()
    text = tiny_stories(1500, seed=0)
    tokenizer = CharTokenizer.from_text(text)
    ids = torch.tensor(tokenizer.encode(text))

    device = training_device(info)
    model = build(tokenizer.vocab_size).to(device)
    if info.is_distributed:
        device_ids = [device.index] if device.type == "cuda" else None
        model = DistributedDataParallel(model, device_ids=device_ids)
    start = time.perf_counter()
    ddp_losses = run(model, ids, args)
    ddp_seconds = time.perf_counter() - start
    main_process = is_main_process()
    backend = dist.get_backend() if info.is_distributed else None
    if info.is_distributed:
        dist.destroy_process_group()  # the reference below is a plain single-process run
    if main_process:
        reference = build(tokenizer.vocab_size).to(device)
        start = time.perf_counter()
        ref_losses = run(reference, ids, args)
        ref_seconds = time.perf_counter() - start
        trained = model.module if info.is_distributed else model
        max_diff = max(
            (a - b).abs().max().item()
            for a, b in zip(trained.state_dict().values(), reference.state_dict().values())
        )
        result = {
            "command": (
                "torchrun --nproc_per_node="
                + str(info.world_size)
                + " experiments/ddp.py "
                + " ".join(sys.argv[1:] if argv is None else argv)
            ).strip(),
            "date": datetime.date.today().isoformat(),
            "machine": {"cpu": cpu_model(), "summary": machine_summary(), "threads_per_rank": 1},
            "device": device.type,
            "world_size": info.world_size,
            "backend": backend,
            "steps": args.steps,
            "global_batch": args.global_batch,
            "per_rank_batch": args.global_batch // info.world_size,
            "grad_accum_steps": args.grad_accum_steps,
            "ddp_losses": ddp_losses,
            "single_process_losses": ref_losses,
            "max_abs_parameter_difference": max_diff,
            "ddp_seconds": ddp_seconds,
            "single_process_seconds": ref_seconds,
        }
        args.output.parent.mkdir(parents=True, exist_ok=True)
        args.output.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
        print(
            f"world size {info.world_size}: final loss DDP {ddp_losses[-1]:.4f}, one process "
            f"{ref_losses[-1]:.4f}, max |parameter difference| {max_diff:.2e}; "
            f"{ddp_seconds:.1f} s vs {ref_seconds:.1f} s"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
