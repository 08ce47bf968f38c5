"""The next-token-prediction loss and a held-out loss estimate, shared by every chapter."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from tutorial_code.data import random_batch

__all__ = ["estimate_loss", "lm_loss"]


def lm_loss(model: nn.Module, inputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Mean cross-entropy of next-token prediction.

    ``inputs`` and ``targets`` are ``(B, T)`` token ids; the model maps ``inputs`` to
    logits ``(B, T, V)`` and the loss is
    ``-(1 / (B T)) * sum_{b,t} log softmax(logits[b, t])[targets[b, t]]``.
    """
    if inputs.shape != targets.shape:
        raise ValueError(
            f"inputs {tuple(inputs.shape)} and targets {tuple(targets.shape)} must have the same shape"
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
    if isinstance(n_batches, bool) or not isinstance(n_batches, int) or n_batches < 1:
        raise ValueError(f"n_batches must be a positive int, got {n_batches!r}")
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
