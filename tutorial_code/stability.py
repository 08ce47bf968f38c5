"""Training stability: learning-rate warmup, cosine decay and gradient-norm clipping.

Three tools that keep a training run from blowing up, written out so that each line maps to
one formula (the training step that uses them in the right order is
:func:`tutorial_code.training.train_step`):

* :func:`warmup_cosine_lr` is the learning rate as a pure function of the step: a linear
  warmup from ``initial_lr`` to ``peak_lr`` (Goyal et al., 2017, section 2.2, "gradual
  warmup"), then a half-period cosine from ``peak_lr`` down to ``min_lr`` (Loshchilov &
  Hutter, 2017, SGDR, eq. 5, one cycle without restarts).
  :func:`warmup_cosine_scheduler` wraps it in a ``torch.optim.lr_scheduler.LambdaLR``.
* :func:`clip_grad_norm_` rescales all gradients together when their global norm exceeds
  ``max_norm`` (Pascanu et al., 2013, algorithm 1), with the same arguments (all but
  ``foreach``), result and arithmetic as ``torch.nn.utils.clip_grad_norm_``.
  :func:`global_grad_norm`, :func:`grad_norms` and :func:`largest_gradient` measure gradients
  without changing them.

**What "step" means.** Step ``t`` (``t = 0, 1, ..., total_steps - 1``) is the optimizer
update number ``t``, and ``warmup_cosine_lr(t)`` is the learning rate that update uses. This
is PyTorch's convention: a scheduler sets ``lr(0)`` when it is constructed and each
``scheduler.step()`` after ``optimizer.step()`` moves to the next value. Warmup covers steps
``0 .. warmup_steps - 1`` (``lr(0) = initial_lr``); the peak is reached *at* step
``warmup_steps`` (``lr(warmup_steps) = peak_lr``); the cosine reaches ``min_lr`` at step
``total_steps``, one past the last update, and the rate stays at ``min_lr`` for any later
step (as in GPT-3, Brown et al., 2020, appendix B: "after 260 billion tokens, training
continues at 10% of the original learning rate"). PyTorch's ``CosineAnnealingLR`` instead
keeps following the cosine, which rises again after ``T_max``.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

import torch
from torch import nn
from torch.optim.lr_scheduler import LambdaLR

__all__ = [
    "CLIP_EPS",
    "clip_grad_norm_",
    "global_grad_norm",
    "grad_norms",
    "largest_gradient",
    "warmup_cosine_lr",
    "warmup_cosine_scheduler",
]

#: Added to the norm before dividing, exactly as ``torch.nn.utils.clip_grad_norm_`` does, so
#: that a zero gradient does not divide by zero. A clipped gradient therefore has norm
#: ``max_norm * n / (n + 1e-6)``, a hair below ``max_norm``.
CLIP_EPS = 1e-6


# --------------------------------------------------------------------------------------
# The schedule
# --------------------------------------------------------------------------------------


def _check_schedule(
    peak_lr: float, warmup_steps: int, total_steps: int, initial_lr: float, min_lr: float
) -> None:
    """Raise a TypeError/ValueError naming the argument unless the schedule is valid."""
    for name, value in (("total_steps", total_steps), ("warmup_steps", warmup_steps)):
        if isinstance(value, bool) or not isinstance(value, int):
            raise TypeError(f"{name} must be an int, got {type(value).__name__}")
    if total_steps < 1:
        raise ValueError(f"total_steps must be >= 1, got {total_steps}")
    if not 0 <= warmup_steps < total_steps:
        raise ValueError(
            f"warmup_steps must be in [0, total_steps) = [0, {total_steps}), got {warmup_steps}: "
            "the warmup must end before training does"
        )
    for name, value in (("peak_lr", peak_lr), ("initial_lr", initial_lr), ("min_lr", min_lr)):
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise TypeError(f"{name} must be a float, got {type(value).__name__}")
        if not math.isfinite(value) or value < 0:
            raise ValueError(f"{name} must be a finite number >= 0, got {value!r}")
    if peak_lr <= 0:
        raise ValueError(f"peak_lr must be > 0, got {peak_lr!r}")
    if initial_lr > peak_lr:
        raise ValueError(
            f"initial_lr ({initial_lr!r}) must be <= peak_lr ({peak_lr!r}): "
            "warmup rises to the peak"
        )
    if min_lr > peak_lr:
        raise ValueError(
            f"min_lr ({min_lr!r}) must be <= peak_lr ({peak_lr!r}): "
            "cosine decay falls from the peak"
        )


def _check_step(step: int) -> None:
    if isinstance(step, bool) or not isinstance(step, int):
        raise TypeError(f"step must be an int, got {type(step).__name__}")
    if step < 0:
        raise ValueError(f"step must be >= 0, got {step}")


def warmup_cosine_lr(
    step: int,
    *,
    peak_lr: float,
    warmup_steps: int,
    total_steps: int,
    initial_lr: float = 0.0,
    min_lr: float = 0.0,
) -> float:
    """The learning rate of optimizer update number ``step``: linear warmup, then cosine decay.

    With ``W = warmup_steps`` and ``N = total_steps``::

        lr(t) = initial_lr + (peak_lr - initial_lr) * t / W                      0 <= t < W
        lr(t) = min_lr + (peak_lr - min_lr) * (1 + cos(pi * (t - W) / (N - W))) / 2  W <= t <= N
        lr(t) = min_lr                                                            t > N

    The second line is SGDR's eq. 5 (Loshchilov & Hutter, 2017) with ``T_cur = t - W`` and
    ``T_i = N - W``. Both pieces give ``peak_lr`` at ``t = W``, so the curve is continuous;
    ``lr(0) = initial_lr`` and ``lr(N) = min_lr``. With ``W = 0`` there is no warmup.

    Args:
        step: the update number ``t >= 0``.
        peak_lr: the rate at the end of warmup (``> 0``).
        warmup_steps: ``W``, in ``[0, total_steps)``.
        total_steps: ``N``, the number of optimizer updates in the run.
        initial_lr: the rate of update 0, in ``[0, peak_lr]``.
        min_lr: the rate the cosine ends at, in ``[0, peak_lr]``.
    """
    _check_schedule(peak_lr, warmup_steps, total_steps, initial_lr, min_lr)
    _check_step(step)
    if step < warmup_steps:
        # linear interpolation: initial_lr at t = 0, peak_lr at t = W
        return initial_lr + (peak_lr - initial_lr) * step / warmup_steps
    if step >= total_steps:
        return min_lr
    progress = (step - warmup_steps) / (total_steps - warmup_steps)  # 0 at t = W, 1 at t = N
    # eta_min + (eta_max - eta_min) * (1 + cos(pi * T_cur / T_i)) / 2   (SGDR eq. 5)
    return min_lr + (peak_lr - min_lr) * 0.5 * (1.0 + math.cos(math.pi * progress))


def warmup_cosine_scheduler(
    optimizer: torch.optim.Optimizer,
    *,
    peak_lr: float,
    warmup_steps: int,
    total_steps: int,
    initial_lr: float = 0.0,
    min_lr: float = 0.0,
) -> LambdaLR:
    """A ``LambdaLR`` that sets every parameter group's rate to :func:`warmup_cosine_lr`.

    ``LambdaLR`` multiplies each group's base rate by ``lr_lambda(t)``; the base rate is the
    group's ``lr`` when the scheduler is built, which must therefore be ``peak_lr`` (build the
    optimizer with ``lr=peak_lr``). The multiplier is ``warmup_cosine_lr(t) / peak_lr``.

    Use it as any PyTorch scheduler: construction sets the rate of update 0, and
    ``scheduler.step()`` goes *after* ``optimizer.step()``, once per optimizer update (not per
    epoch). To resume a run, save ``scheduler.state_dict()`` with the model and optimizer and
    load it back into a freshly built scheduler; without it the warmup starts again.

    Raises:
        ValueError: for a bad schedule (see :func:`warmup_cosine_lr`), or if a parameter
            group's ``lr`` differs from ``peak_lr`` (for instance because an optimizer
            ``state_dict`` was loaded before the scheduler was built).
    """
    _check_schedule(peak_lr, warmup_steps, total_steps, initial_lr, min_lr)
    if not isinstance(optimizer, torch.optim.Optimizer):
        raise TypeError(
            f"optimizer must be a torch.optim.Optimizer, got {type(optimizer).__name__}"
        )
    for index, group in enumerate(optimizer.param_groups):
        if not math.isclose(float(group["lr"]), peak_lr, rel_tol=1e-12, abs_tol=0.0):
            raise ValueError(
                f"optimizer param group {index} has lr={group['lr']!r} but peak_lr={peak_lr!r}; "
                "build the optimizer with lr=peak_lr, and build the scheduler before loading "
                "an optimizer state_dict"
            )

    schedule = dict(
        warmup_steps=warmup_steps, total_steps=total_steps, initial_lr=initial_lr, min_lr=min_lr
    )

    def lr_lambda(step: int) -> float:  # LambdaLR multiplies the base rate (peak_lr) by this
        return warmup_cosine_lr(step, peak_lr=peak_lr, **schedule) / peak_lr

    return LambdaLR(optimizer, lr_lambda)


# --------------------------------------------------------------------------------------
# Gradient norms and clipping
# --------------------------------------------------------------------------------------


def _as_list(parameters: torch.Tensor | Iterable[torch.Tensor], name: str) -> list[torch.Tensor]:
    if isinstance(parameters, torch.Tensor):
        return [parameters]
    try:
        params = list(parameters)
    except TypeError:
        raise TypeError(
            f"{name} must be a tensor or an iterable of tensors, got {type(parameters).__name__}"
        ) from None
    for p in params:
        if not isinstance(p, torch.Tensor):
            raise TypeError(f"{name} must contain only tensors, got a {type(p).__name__}")
    return params


def _check_max_norm(max_norm: float | None, *, allow_none: bool = False) -> None:
    if max_norm is None and allow_none:
        return
    if isinstance(max_norm, bool) or not isinstance(max_norm, (int, float)):
        accepted = "None or a float" if allow_none else "a float"
        raise TypeError(f"max_norm must be {accepted}, got {type(max_norm).__name__}")
    if not max_norm > 0:
        raise ValueError(f"max_norm must be > 0, got {max_norm!r}")


def _check_norm_type(norm_type: float) -> float:
    if isinstance(norm_type, bool) or not isinstance(norm_type, (int, float)):
        raise TypeError(f"norm_type must be a float, got {type(norm_type).__name__}")
    norm_type = float(norm_type)
    if not (norm_type > 0):
        raise ValueError(f"norm_type must be > 0 or float('inf'), got {norm_type!r}")
    return norm_type


def global_grad_norm(
    parameters: torch.Tensor | Iterable[torch.Tensor], *, norm_type: float = 2.0
) -> torch.Tensor:
    """The norm of all gradients taken together as one long vector.

    For ``norm_type = p`` and gradients ``g_1, ..., g_k`` (parameters whose ``.grad`` is
    ``None`` are skipped)::

        ||g||_p = (sum_i sum_j |g_ij|^p)^(1/p) = (sum_i ||g_i||_p^p)^(1/p)

    so the global norm is the norm of the vector of per-tensor norms; for ``p = inf`` it is
    the largest ``|g_ij|``. Returns a 0-d tensor (``0.0`` if no parameter has a gradient).
    """
    norm_type = _check_norm_type(norm_type)
    grads = [p.grad.detach() for p in _as_list(parameters, "parameters") if p.grad is not None]
    if not grads:
        return torch.tensor(0.0)
    per_tensor = torch.stack([torch.linalg.vector_norm(g, norm_type) for g in grads])  # (k,)
    if math.isinf(norm_type):
        return per_tensor.max()
    return per_tensor.pow(norm_type).sum().pow(1.0 / norm_type)


def clip_grad_norm_(
    parameters: torch.Tensor | Iterable[torch.Tensor],
    max_norm: float,
    norm_type: float = 2.0,
    error_if_nonfinite: bool = False,
) -> torch.Tensor:
    """Scale all gradients by one factor so that their global norm is at most ``max_norm``.

    Pascanu et al. (2013), algorithm 1: if ``||g|| > max_norm``, ``g <- g * max_norm / ||g||``.
    Every gradient is multiplied by the same factor, so the update keeps its direction and
    only its length changes. As in ``torch.nn.utils.clip_grad_norm_``, the factor is
    ``min(1, max_norm / (||g|| + 1e-6))`` and gradients are changed in place.

    Args:
        parameters: a tensor or an iterable of tensors (``model.parameters()``); those whose
            ``.grad`` is ``None`` are skipped.
        max_norm: the largest allowed global norm (``> 0``).
        norm_type: ``p > 0`` of the p-norm; ``2.0`` (the default) or ``float('inf')`` are
            the usual choices.
        error_if_nonfinite: raise ``RuntimeError`` if the norm is ``nan`` or ``inf``
            (otherwise the gradients become ``nan`` and the caller should skip the step).

    Returns:
        The global norm *before* clipping, a 0-d tensor: the number to log.
    """
    params = _as_list(parameters, "parameters")  # a generator can only be read once
    _check_max_norm(max_norm)
    total_norm = global_grad_norm(params, norm_type=norm_type)
    if error_if_nonfinite and not torch.isfinite(total_norm):
        raise RuntimeError(
            f"the total norm of order {norm_type} of the gradients is non-finite "
            f"({total_norm.item()}), so it cannot be clipped"
        )
    clip_coef = torch.clamp(max_norm / (total_norm + CLIP_EPS), max=1.0)  # min(1, max_norm / ||g||)
    for p in params:
        if p.grad is not None:
            p.grad.detach().mul_(clip_coef.to(p.grad.dtype))
    return total_norm


def grad_norms(model: nn.Module, *, norm_type: float = 2.0) -> dict[str, float]:
    """``{parameter name: norm of its gradient}`` for every parameter that has a gradient."""
    norm_type = _check_norm_type(norm_type)
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    return {
        name: torch.linalg.vector_norm(p.grad.detach(), norm_type).item()
        for name, p in model.named_parameters()
        if p.grad is not None
    }


def largest_gradient(model: nn.Module) -> tuple[str, float]:
    """The gradient entry of largest magnitude: ``(parameter name, signed value)``.

    Compares ``|g|``, not ``g``: taking the maximum of the signed values would miss a large
    negative entry.

    Raises:
        ValueError: if no parameter has a gradient (call ``loss.backward()`` first).
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    best_name, best_value = None, 0.0
    for name, p in model.named_parameters():
        if p.grad is None:
            continue
        flat = p.grad.detach().flatten()
        value = flat[flat.abs().argmax()].item()
        if best_name is None or abs(value) > abs(best_value):
            best_name, best_value = name, value
    if best_name is None:
        raise ValueError("no parameter of model has a gradient; call loss.backward() first")
    return best_name, best_value
