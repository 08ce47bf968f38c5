"""Argument validation shared by every module: one place for "must be a positive int".

Each check raises an error whose message names the argument, says what is accepted and shows
what was passed, so that a reader who calls a book function with a wrong value learns what to
change instead of reading a traceback from deep inside PyTorch. The convention is Python's:

* a value of the wrong *type* raises ``TypeError`` (``bool`` is never accepted as a number,
  although it is a subclass of ``int``: ``max_new_tokens=True`` is a bug, not a 1);
* a value of the right type outside its range raises ``ValueError``.

Every check returns the value it accepted (floats converted to ``float``), so a caller can
write ``n = check_int("n", n, low=1)``.
"""

from __future__ import annotations

import math
from collections.abc import Collection, Sequence
from typing import Any, TypeVar

import torch

__all__ = [
    "check_choice",
    "check_float",
    "check_int",
    "check_module",
    "check_probability",
    "check_same_shape",
    "check_tensor",
]

T = TypeVar("T")


def _interval(low: float | None, high: float | None, low_open: bool, high_open: bool) -> str:
    """``">= 1"``, ``"> 0"``, ``"<= 5"`` or ``"in [0, 1)"``, as reads best in a message."""
    if high is None and low is not None:
        return f"{'>' if low_open else '>='} {low!r}"
    if low is None and high is not None:
        return f"{'<' if high_open else '<='} {high!r}"
    left = "(" if low_open else "["
    right = ")" if high_open else "]"
    return f"in {left}{low!r}, {high!r}{right}"


def check_int(
    name: str,
    value: Any,
    *,
    low: int | None = None,
    high: int | None = None,
    allow_none: bool = False,
) -> Any:
    """Return ``value`` if it is an ``int`` in ``[low, high]`` (either bound optional).

    Raises:
        TypeError: ``value`` is not an int (``bool`` counts as not an int), or is ``None``
            without ``allow_none``.
        ValueError: ``value`` is outside ``[low, high]``.
    """
    if value is None and allow_none:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        accepted = "None or an int" if allow_none else "an int"
        raise TypeError(f"{name} must be {accepted}, got {value!r} ({type(value).__name__})")
    if (low is not None and value < low) or (high is not None and value > high):
        raise ValueError(
            f"{name} must be an int {_interval(low, high, False, False)}, got {value!r}"
        )
    return value


def check_float(
    name: str,
    value: Any,
    *,
    low: float | None = None,
    high: float | None = None,
    low_open: bool = False,
    high_open: bool = False,
    allow_none: bool = False,
    allow_inf: bool = False,
) -> Any:
    """Return ``float(value)`` if it is a finite real number in the given interval.

    ``low_open`` / ``high_open`` exclude the bound itself (``low=0, low_open=True`` means
    ``> 0``). Ints are accepted and converted; ``bool`` and ``nan`` are not; ``inf`` only
    with ``allow_inf``.
    """
    if value is None and allow_none:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        accepted = "None or a number" if allow_none else "a number"
        raise TypeError(f"{name} must be {accepted}, got {value!r} ({type(value).__name__})")
    value = float(value)
    if math.isnan(value) or (math.isinf(value) and not allow_inf):
        raise ValueError(f"{name} must be a finite number, got {value!r}")
    too_low = low is not None and (value <= low if low_open else value < low)
    too_high = high is not None and (value >= high if high_open else value > high)
    if too_low or too_high:
        raise ValueError(
            f"{name} must be {_interval(low, high, low_open, high_open)}, got {value!r}"
        )
    return value


def check_probability(name: str, value: Any, *, high_open: bool = True) -> float:
    """A float in ``[0, 1)`` (or ``[0, 1]`` with ``high_open=False``): dropout, smoothing."""
    return check_float(name, value, low=0.0, high=1.0, high_open=high_open)


def check_choice(name: str, value: T, choices: Collection[T]) -> T:
    """Return ``value`` if it is one of ``choices``; the error lists them."""
    if value not in choices:
        listed = ", ".join(repr(c) for c in choices)
        raise ValueError(f"{name} must be one of {listed}; got {value!r}")
    return value


def check_tensor(
    name: str,
    value: Any,
    *,
    dim: int | Sequence[int] | None = None,
    dtype: str | torch.dtype | Sequence[torch.dtype] | None = None,
    shape: Sequence[int | None] | None = None,
) -> torch.Tensor:
    """Return ``value`` if it is a tensor with the required rank, dtype and shape.

    Args:
        dim: the accepted number of dimensions (one int or several).
        dtype: ``"float"`` (any floating dtype), ``"int"`` (any integer dtype, not bool),
            ``"bool"``, one ``torch.dtype`` or a sequence of them.
        shape: the required shape, with ``None`` for a free dimension, e.g. ``(None, 4)``.
    """
    if not isinstance(value, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(value).__name__}")
    if dim is not None:
        dims = (dim,) if isinstance(dim, int) else tuple(dim)
        if value.dim() not in dims:
            wanted = " or ".join(str(d) for d in dims)
            raise ValueError(
                f"{name} must have {wanted} dimension(s), got shape {tuple(value.shape)}"
            )
    if dtype is not None:
        if dtype == "float":
            ok, wanted = value.is_floating_point(), "a floating-point dtype"
        elif dtype == "int":
            ok = not value.is_floating_point() and not value.is_complex()
            ok = ok and value.dtype != torch.bool
            wanted = "an integer dtype"
        elif dtype == "bool":
            ok, wanted = value.dtype == torch.bool, "dtype torch.bool"
        else:
            dtypes = (dtype,) if isinstance(dtype, torch.dtype) else tuple(dtype)
            ok, wanted = value.dtype in dtypes, " or ".join(str(d) for d in dtypes)
        if not ok:
            raise ValueError(f"{name} must have {wanted}, got {value.dtype}")
    if shape is not None:
        if value.dim() != len(shape) or any(
            want is not None and got != want for got, want in zip(value.shape, shape)
        ):
            wanted = "(" + ", ".join("*" if s is None else str(s) for s in shape) + ")"
            raise ValueError(f"{name} must have shape {wanted}, got {tuple(value.shape)}")
    return value


def check_same_shape(**tensors: torch.Tensor) -> torch.Size:
    """Raise unless every keyword tensor has the same shape; return that shape."""
    items = list(tensors.items())
    for name, tensor in items:
        check_tensor(name, tensor)
    first_name, first = items[0]
    for name, tensor in items[1:]:
        if tensor.shape != first.shape:
            raise ValueError(
                f"{name} has shape {tuple(tensor.shape)} but {first_name} has shape "
                f"{tuple(first.shape)}; they must match"
            )
    return first.shape


def check_module(name: str, value: Any, cls: type = torch.nn.Module) -> Any:
    """Return ``value`` if it is an instance of ``cls`` (a ``torch.nn.Module`` by default)."""
    if not isinstance(value, cls):
        qualified = f"{cls.__module__}.{cls.__qualname__}"
        for public in ("torch.nn", "torch.optim"):  # print the name readers write
            if cls.__module__.startswith(public + "."):
                qualified = f"{public}.{cls.__qualname__}"
        raise TypeError(f"{name} must be a {qualified}, got {type(value).__name__}")
    return value
