"""The recipes that make the shipped checkpoints: pre-training, then supervised fine-tuning.

Both are deterministic: fixed seeds for the initial weights, the data and the batches, and
(as the rebuild script sets) one CPU thread. The functions take the number of steps as an
argument so that a test can re-run the first few steps and compare the losses with the ones
recorded when the checkpoints were made.

* :func:`pretrain_base` trains a fresh :data:`MODEL_CONFIG` GPT (PyTorch's default
  initialisation) on :func:`tutorial_code.task.pretraining_text` windows: plain next-token
  prediction on every character, no template.
* :func:`finetune_sft` fine-tunes it on :func:`sft_examples`, a fixed set of prompt /
  completion pairs, with :func:`tutorial_code.rl.completion_loss` (loss on completion tokens
  only) at a constant learning rate.
"""

from __future__ import annotations

import dataclasses
import random
from collections.abc import Callable
from dataclasses import dataclass

import torch

from tutorial_code.checks import check_int
from tutorial_code.model import GPTConfig, GPTModel
from tutorial_code.rl import completion_loss
from tutorial_code.stability import warmup_cosine_scheduler
from tutorial_code.task import TOKENIZER, VOCAB, pretraining_text, sample_problems, sft_batch
from tutorial_code.training import StepStats, TrainingLog, param_groups, train

__all__ = [
    "BASE_RECIPE",
    "MODEL_CONFIG",
    "SFT_RECIPE",
    "PretrainRecipe",
    "SFTRecipe",
    "finetune_sft",
    "pretrain_base",
    "sft_examples",
]

#: The testbed's GPT: 4 pre-norm blocks of width 64, 4 heads, a 48-token context, no dropout.
MODEL_CONFIG = GPTConfig(
    vocab_size=len(VOCAB),
    context_length=48,
    emb_dim=64,
    n_heads=4,
    n_layers=4,
    drop_rate=0.0,
    qkv_bias=False,
)


@dataclass(frozen=True)
class PretrainRecipe:
    """Pre-training: AdamW with warmup and cosine decay on random text windows."""

    seed: int = 0
    n_documents: int = 40_000
    padded_fraction: float = 0.0
    three_digit_fraction: float = 0.0
    steps: int = 600
    batch_size: int = 64
    peak_lr: float = 3e-3
    warmup_steps: int = 50
    min_lr: float = 3e-4
    weight_decay: float = 0.1
    max_grad_norm: float = 1.0


@dataclass(frozen=True)
class SFTRecipe:
    """Supervised fine-tuning on a fixed set of ``n_examples`` prompt/completion pairs.

    ``trace_fraction`` of the examples write the worked trace before the answer, the others
    answer directly. The learning rate is constant, so that a flattening curve is the data's
    doing, not the schedule's.
    """

    seed: int = 0
    n_examples: int = 1000
    trace_fraction: float = 0.35
    steps: int = 1500
    batch_size: int = 64
    lr: float = 1e-3
    weight_decay: float = 0.1
    max_grad_norm: float = 1.0


BASE_RECIPE = PretrainRecipe()
SFT_RECIPE = SFTRecipe()


def recipe_dict(recipe: PretrainRecipe | SFTRecipe) -> dict:
    """The recipe's fields as a JSON-ready dict."""
    return dataclasses.asdict(recipe)


def pretrain_base(
    recipe: PretrainRecipe = BASE_RECIPE,
    *,
    steps: int | None = None,
    callback: Callable[[int, StepStats], None] | None = None,
) -> tuple[GPTModel, TrainingLog]:
    """Pre-train a fresh model for ``steps`` (default ``recipe.steps``) steps.

    The schedule is always the full recipe's, so the first ``steps`` of a short run are the
    first steps of the real one. Returns the model (in eval mode) and the per-step log.
    """
    steps = recipe.steps if steps is None else check_int("steps", steps, low=1)
    torch.manual_seed(recipe.seed)
    model = GPTModel(MODEL_CONFIG)
    text = pretraining_text(
        recipe.n_documents,
        seed=recipe.seed,
        padded_fraction=recipe.padded_fraction,
        three_digit_fraction=recipe.three_digit_fraction,
    )
    ids = torch.tensor(TOKENIZER.encode(text))
    groups = param_groups(model, weight_decay=recipe.weight_decay)
    optimizer = torch.optim.AdamW(groups, lr=recipe.peak_lr)
    scheduler = warmup_cosine_scheduler(
        optimizer,
        peak_lr=recipe.peak_lr,
        warmup_steps=recipe.warmup_steps,
        total_steps=recipe.steps,
        min_lr=recipe.min_lr,
    )
    log = train(
        model,
        optimizer,
        ids,
        total_steps=steps,
        batch_size=recipe.batch_size,
        context_length=MODEL_CONFIG.context_length,
        scheduler=scheduler,
        max_norm=recipe.max_grad_norm,
        generator=torch.Generator().manual_seed(recipe.seed + 1),
        callback=callback,
    )
    return model.eval(), log


def sft_examples(recipe: SFTRecipe = SFT_RECIPE) -> tuple[list[str], list[str]]:
    """The fixed SFT set: ``recipe.n_examples`` training problems as (prompts, completions).

    Completions have no EOS (:func:`tutorial_code.task.sft_batch` appends it); a seeded coin
    with probability ``trace_fraction`` decides whether each one writes the trace.
    """
    problems = sample_problems(recipe.n_examples, split="train", seed=recipe.seed)
    coin = random.Random(f"sft-trace/{recipe.seed}")
    flags = [coin.random() < recipe.trace_fraction for _ in problems]
    return [p.prompt for p in problems], [p.completion(trace=f) for p, f in zip(problems, flags)]


def finetune_sft(
    model: GPTModel,
    recipe: SFTRecipe = SFT_RECIPE,
    *,
    steps: int | None = None,
    callback: Callable[[int, StepStats], None] | None = None,
    examples: tuple[list[str], list[str]] | None = None,
) -> TrainingLog:
    """Fine-tune ``model`` in place on :func:`sft_examples` for ``steps`` steps.

    Each step draws ``batch_size`` examples of the fixed set at random (with a seeded
    generator) and minimises :func:`tutorial_code.rl.completion_loss`. ``steps`` may exceed
    ``recipe.steps`` (to see what more fine-tuning on the same data does). ``examples``, a
    ``(prompts, completions)`` pair, replaces the recipe's set with any other (e.g. a
    teacher's samples, for distillation) under the same optimizer and batch order.
    """
    steps = recipe.steps if steps is None else check_int("steps", steps, low=1)
    prompts, completions = sft_examples(recipe) if examples is None else examples
    if len(prompts) != len(completions) or not prompts:
        raise ValueError(
            f"examples must be two non-empty lists of equal length, got {len(prompts)} prompts "
            f"and {len(completions)} completions"
        )
    optimizer = torch.optim.AdamW(
        param_groups(model, weight_decay=recipe.weight_decay), lr=recipe.lr
    )
    generator = torch.Generator().manual_seed(recipe.seed + 2)

    def get_batch() -> tuple[torch.Tensor, torch.Tensor]:
        rows = torch.randint(0, len(prompts), (recipe.batch_size,), generator=generator).tolist()
        return sft_batch([prompts[i] for i in rows], [completions[i] for i in rows])

    log = train(
        model,
        optimizer,
        total_steps=steps,
        get_batch=get_batch,
        loss_fn=completion_loss,
        max_norm=recipe.max_grad_norm,
        callback=callback,
    )
    model.eval()
    return log
