"""The book's one training loop: losses, optimizer parameter groups, a step and a loop.

* :func:`lm_loss` is next-token cross-entropy; :func:`estimate_loss` averages it over fixed
  held-out windows.
* :func:`param_groups` splits a model's parameters into the two AdamW groups the book uses
  (decayed and not decayed; the convention is documented there).
* :func:`train_step` is one optimisation step in the order that makes gradient clipping and
  learning-rate schedules work (chapter 2): forward, backward, clip, ``optimizer.step()``,
  ``scheduler.step()``. The loss is pluggable: any ``loss_fn(model, *batch) -> Tensor``.
* :func:`train` repeats it and returns the per-step :class:`TrainingLog`.

**Gradient accumulation and several processes.** ``grad_accum_steps=k`` splits each batch
into ``k`` micro-batches and accumulates their gradients before one optimizer step (the same
update as the whole batch at once, with ``1/k`` of the activation memory). Under ``torchrun``
with a ``DistributedDataParallel`` model, :func:`train` gives each process its slice of every
global batch (:func:`tutorial_code.distributed.shard`), DDP averages the gradients across
processes, and the logged loss is averaged across them too; nothing else changes (the
appendix proves the equivalence on CPU).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

from tutorial_code.checks import check_float, check_int, check_module
from tutorial_code.data import random_batch
from tutorial_code.distributed import all_reduce_mean, distributed_info, maybe_no_sync, shard
from tutorial_code.stability import clip_grad_norm_, global_grad_norm

__all__ = [
    "LossFn",
    "StepStats",
    "TrainingLog",
    "estimate_loss",
    "lm_loss",
    "param_groups",
    "train",
    "train_step",
]

#: A loss function: ``loss_fn(model, *batch)`` returns a scalar tensor to minimise.
LossFn = Callable[..., torch.Tensor]


def lm_loss(model: nn.Module, inputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Mean cross-entropy of next-token prediction.

    ``inputs`` and ``targets`` are ``(B, T)`` token ids; the model maps ``inputs`` to
    logits ``(B, T, V)`` and the loss is
    ``-(1 / (B T)) * sum_{b,t} log softmax(logits[b, t])[targets[b, t]]``.
    """
    if inputs.shape != targets.shape:
        raise ValueError(
            f"inputs {tuple(inputs.shape)} and targets {tuple(targets.shape)} "
            "must have the same shape"
        )
    logits = model(inputs)
    return F.cross_entropy(logits.flatten(0, 1), targets.flatten())


@torch.no_grad()
def estimate_loss(
    model: nn.Module,
    ids: torch.Tensor,
    *,
    batch_size: int,
    context_length: int,
    n_batches: int,
    seed: int = 0,
) -> float:
    """Average :func:`lm_loss` over ``n_batches`` windows drawn with a fixed ``seed``.

    Uses the same windows on every call, so values from different points of training
    are comparable. The model is put in eval mode for the estimate and restored after.
    """
    check_int("n_batches", n_batches, low=1)
    was_training = model.training
    model.eval()
    generator = torch.Generator().manual_seed(seed)
    total = 0.0
    try:
        for _ in range(n_batches):
            x, y = random_batch(
                ids, batch_size=batch_size, context_length=context_length, generator=generator
            )
            total += lm_loss(model, x, y).item()
    finally:
        model.train(was_training)
    return total / n_batches


def param_groups(
    model: nn.Module, *, weight_decay: float, decay_embeddings: bool = False
) -> list[dict]:
    """AdamW parameter groups: decay the weight matrices, not biases, norms or embeddings.

    Weight decay (Loshchilov & Hutter, 2019) shrinks weights towards zero. The three codebases
    below agree that biases and LayerNorm gains should not be decayed (shrinking a gain towards
    0 rescales a whole layer's output; a bias has no scale to regularise), while a plain
    ``AdamW(model.parameters())`` decays them too; they disagree on embeddings:
    nanoGPT decays every tensor with two or more dimensions, embeddings included; Hugging
    Face's ``Trainer`` leaves out only biases and LayerNorm weights; minGPT also leaves out
    embeddings. The book follows minGPT: only the ``weight`` of ``nn.Linear`` layers is
    decayed by default (``decay_embeddings=True`` adds ``nn.Embedding`` tables, nanoGPT's
    choice). Trainable parameters of any other kind go to the group without decay; frozen
    ones (``requires_grad=False``) are left out.

    Returns ``[{"params": decayed, "weight_decay": weight_decay}, {"params": rest,
    "weight_decay": 0.0}]`` for ``torch.optim.AdamW(param_groups(...), lr=...)``.
    """
    check_module("model", model)
    weight_decay = check_float("weight_decay", weight_decay, low=0.0)
    decay_types: tuple[type[nn.Module], ...] = (nn.Linear,)
    if decay_embeddings:
        decay_types = (nn.Linear, nn.Embedding)
    decayed: dict[int, nn.Parameter] = {}
    for module in model.modules():
        if isinstance(module, decay_types) and module.weight.requires_grad:
            decayed[id(module.weight)] = module.weight
    rest: dict[int, nn.Parameter] = {}
    for p in model.parameters():
        if p.requires_grad and id(p) not in decayed:
            rest[id(p)] = p
    return [
        {"params": list(decayed.values()), "weight_decay": weight_decay},
        {"params": list(rest.values()), "weight_decay": 0.0},
    ]


@dataclass(frozen=True)
class StepStats:
    """What one :func:`train_step` measured.

    Attributes:
        loss: the training loss of the batch, before the update.
        lr: the learning rate the update used (of parameter group 0).
        grad_norm: the global L2 gradient norm before clipping.
        clipped_grad_norm: the global L2 gradient norm the optimizer saw (after clipping;
            equal to ``grad_norm`` when ``max_norm`` is ``None``).
    """

    loss: float
    lr: float
    grad_norm: float
    clipped_grad_norm: float


def train_step(
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    *batch: torch.Tensor,
    loss_fn: LossFn = lm_loss,
    scheduler: torch.optim.lr_scheduler.LRScheduler | None = None,
    max_norm: float | None = None,
    grad_accum_steps: int = 1,
) -> StepStats:
    """One update: forward, backward, clip, ``optimizer.step()``, ``scheduler.step()``.

    The order is the point. Clipping must come after ``loss.backward()`` (before it there
    is nothing, or last step's gradients, to clip) and before ``optimizer.step()`` (after it
    the update has already been made). ``scheduler.step()`` comes last, so that this update
    used ``lr(t)`` and the next one will use ``lr(t + 1)``.

    ``batch`` is passed to ``loss_fn(model, *batch)``; with the default :func:`lm_loss` it is
    ``inputs, targets``, two ``(B, T)`` id tensors; they are moved to the device of the
    model's parameters first (a GPU under ``torchrun`` with NCCL). ``max_norm=None``
    measures the gradient norm but does not clip.

    ``grad_accum_steps=k`` splits every tensor of ``batch`` into ``k`` equal micro-batches
    along dimension 0 and sums ``loss_fn(micro) / k`` over them: for a loss that is a mean over
    rows, the gradient equals the whole batch's. With a ``DistributedDataParallel`` model the
    first ``k - 1`` backward passes skip the all-reduce (``no_sync``). The logged loss is the
    batch mean, averaged over processes.
    """
    check_float("max_norm", max_norm, low=0.0, low_open=True, allow_none=True)
    check_module("optimizer", optimizer, torch.optim.Optimizer)
    check_int("grad_accum_steps", grad_accum_steps, low=1)
    if not batch:
        raise TypeError("train_step needs a batch: train_step(model, optimizer, inputs, targets)")
    rows = batch[0].shape[0]
    if rows % grad_accum_steps or any(t.shape[0] != rows for t in batch):
        raise ValueError(
            f"every tensor of batch must have the same number of rows, divisible by "
            f"grad_accum_steps={grad_accum_steps}; got {[t.shape[0] for t in batch]}"
        )
    device = _model_device(model)
    batch = tuple(t.to(device) for t in batch)  # no copy when already there
    model.train()
    lr = float(optimizer.param_groups[0]["lr"])  # the rate this update will use
    optimizer.zero_grad(set_to_none=True)
    micro_batches = zip(*(t.chunk(grad_accum_steps) for t in batch))
    total = 0.0
    for i, micro in enumerate(micro_batches):
        with maybe_no_sync(model, skip_sync=i < grad_accum_steps - 1):
            loss = loss_fn(model, *micro)
            if not isinstance(loss, torch.Tensor) or loss.dim() != 0:
                raise ValueError(f"loss_fn must return a scalar tensor, got {loss!r}")
            (loss / grad_accum_steps).backward()
        total += loss.item() / grad_accum_steps
    params = [p for group in optimizer.param_groups for p in group["params"]]
    if max_norm is None:
        grad_norm = clipped = global_grad_norm(params).item()
    else:
        grad_norm = clip_grad_norm_(params, max_norm).item()
        clipped = global_grad_norm(params).item()
    optimizer.step()
    if scheduler is not None:
        scheduler.step()
    return StepStats(
        loss=all_reduce_mean(total), lr=lr, grad_norm=grad_norm, clipped_grad_norm=clipped
    )


@dataclass
class TrainingLog:
    """Per-step lists from :func:`train`, one entry per optimizer update."""

    losses: list[float] = field(default_factory=list)
    lrs: list[float] = field(default_factory=list)
    grad_norms: list[float] = field(default_factory=list)
    clipped_grad_norms: list[float] = field(default_factory=list)

    def append(self, stats: StepStats) -> None:
        self.losses.append(stats.loss)
        self.lrs.append(stats.lr)
        self.grad_norms.append(stats.grad_norm)
        self.clipped_grad_norms.append(stats.clipped_grad_norm)

    def __len__(self) -> int:
        return len(self.losses)


def train(
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    train_ids: torch.Tensor | None = None,
    *,
    total_steps: int,
    batch_size: int | None = None,
    context_length: int | None = None,
    get_batch: Callable[[], tuple[torch.Tensor, ...]] | None = None,
    loss_fn: LossFn = lm_loss,
    scheduler: torch.optim.lr_scheduler.LRScheduler | None = None,
    max_norm: float | None = None,
    generator: torch.Generator | None = None,
    callback: Callable[[int, StepStats], None] | None = None,
    grad_accum_steps: int = 1,
) -> TrainingLog:
    """Run ``total_steps`` calls of :func:`train_step` and return the per-step log.

    The batches come from one of two sources:

    * ``train_ids``, a 1-D corpus of token ids: each step samples ``(batch_size,
      context_length)`` windows with :func:`tutorial_code.data.random_batch` and
      ``generator`` (the language-modelling chapters);
    * ``get_batch()``, any function returning the tuple ``loss_fn`` takes after the model
      (supervised fine-tuning, the alignment chapters).

    ``callback(step, stats)``, if given, runs after every step (for evaluation or logging).

    Under ``torchrun`` (a process group is running) each process trains on its slice of every
    global batch; draw the same global batches on every process (the same ``generator`` seed)
    and wrap the model in ``DistributedDataParallel``. ``batch_size`` is the global batch.
    ``callback`` runs on every process; print and save only where
    :func:`tutorial_code.distributed.is_main_process` is true.
    """
    check_int("total_steps", total_steps, low=1)
    if (train_ids is None) == (get_batch is None):
        raise ValueError("pass exactly one of train_ids (a 1-D id tensor) and get_batch")
    if train_ids is not None:
        check_int("batch_size", batch_size, low=1)
        check_int("context_length", context_length, low=1)

        def get_batch() -> tuple[torch.Tensor, ...]:
            return random_batch(
                train_ids, batch_size=batch_size, context_length=context_length, generator=generator
            )

    info = distributed_info()
    log = TrainingLog()
    for step in range(total_steps):
        batch = get_batch()
        if info.is_distributed:
            batch = shard(batch, info)  # this process's rows of the global batch
        stats = train_step(
            model,
            optimizer,
            *batch,
            loss_fn=loss_fn,
            scheduler=scheduler,
            max_norm=max_norm,
            grad_accum_steps=grad_accum_steps,
        )
        log.append(stats)
        if callback is not None:
            callback(step, stats)
    return log


def _model_device(model: nn.Module) -> torch.device:
    """The device of the model's first parameter (the CPU for a model without parameters)."""
    for p in model.parameters():
        return p.device
    return torch.device("cpu")
