"""tutorial_code.checks: every check accepts what it should and names the argument otherwise.

References: Python's own conventions (TypeError for a wrong type, ValueError for a wrong
value) and hand-written expected messages.
"""

from __future__ import annotations

import math

import pytest
import torch

from tutorial_code.checks import (
    check_choice,
    check_float,
    check_int,
    check_module,
    check_probability,
    check_same_shape,
    check_tensor,
)


def test_check_int_accepts_and_returns() -> None:
    assert check_int("n", 3, low=1) == 3
    assert check_int("n", None, allow_none=True) is None
    assert check_int("n", -5) == -5


@pytest.mark.parametrize(
    ("value", "kwargs", "error", "message"),
    [
        (True, {}, TypeError, r"n must be an int, got True \(bool\)"),
        (2.0, {}, TypeError, r"n must be an int, got 2.0 \(float\)"),
        (None, {}, TypeError, "n must be an int, got None"),
        ("3", {"allow_none": True}, TypeError, "n must be None or an int"),
        (0, {"low": 1}, ValueError, "n must be an int >= 1, got 0"),
        (9, {"high": 8}, ValueError, "n must be an int <= 8, got 9"),
        (9, {"low": 0, "high": 8}, ValueError, r"n must be an int in \[0, 8\], got 9"),
    ],
)
def test_check_int_rejects(value, kwargs, error, message) -> None:
    with pytest.raises(error, match=message):
        check_int("n", value, **kwargs)


def test_check_float_bounds_and_conversion() -> None:
    assert check_float("x", 1) == 1.0 and isinstance(check_float("x", 1), float)
    assert check_float("x", 0.0, low=0.0) == 0.0
    assert check_float("x", math.inf, allow_inf=True) == math.inf
    with pytest.raises(ValueError, match="x must be > 0.0, got 0.0"):
        check_float("x", 0.0, low=0.0, low_open=True)
    with pytest.raises(ValueError, match=r"x must be in \[0.0, 1.0\), got 1.0"):
        check_float("x", 1.0, low=0.0, high=1.0, high_open=True)
    with pytest.raises(ValueError, match="x must be a finite number, got nan"):
        check_float("x", float("nan"))
    with pytest.raises(ValueError, match="finite"):
        check_float("x", math.inf)
    with pytest.raises(TypeError, match="x must be a number, got False"):
        check_float("x", False)
    with pytest.raises(TypeError, match="x must be a number"):
        check_float("x", torch.tensor(1.0))


def test_check_probability_and_choice() -> None:
    assert check_probability("p", 0) == 0.0
    with pytest.raises(ValueError, match=r"p must be in \[0.0, 1.0\)"):
        check_probability("p", 1.0)
    assert check_probability("p", 1.0, high_open=False) == 1.0
    assert check_choice("mode", "a", ("a", "b")) == "a"
    with pytest.raises(ValueError, match="mode must be one of 'a', 'b'; got 'c'"):
        check_choice("mode", "c", ("a", "b"))


def test_check_tensor() -> None:
    x = torch.zeros(2, 4)
    assert check_tensor("x", x, dim=2, dtype="float", shape=(None, 4)) is x
    check_tensor("x", torch.zeros(3, dtype=torch.long), dim=(1, 2), dtype="int")
    with pytest.raises(TypeError, match="x must be a torch.Tensor, got list"):
        check_tensor("x", [1, 2])
    with pytest.raises(ValueError, match=r"x must have 1 or 3 dimension\(s\), got shape \(2, 4\)"):
        check_tensor("x", x, dim=(1, 3))
    with pytest.raises(ValueError, match="x must have an integer dtype, got torch.float32"):
        check_tensor("x", x, dtype="int")
    with pytest.raises(ValueError, match="x must have an integer dtype, got torch.bool"):
        check_tensor("x", x.bool(), dtype="int")
    with pytest.raises(ValueError, match=r"x must have shape \(\*, 3\), got \(2, 4\)"):
        check_tensor("x", x, shape=(None, 3))
    with pytest.raises(ValueError, match="x must have torch.int8, got torch.float32"):
        check_tensor("x", x, dtype=torch.int8)


def test_check_same_shape_and_module() -> None:
    assert check_same_shape(a=torch.zeros(2, 3), b=torch.ones(2, 3)) == (2, 3)
    with pytest.raises(ValueError, match=r"b has shape \(3, 2\) but a has shape \(2, 3\)"):
        check_same_shape(a=torch.zeros(2, 3), b=torch.zeros(3, 2))
    linear = torch.nn.Linear(2, 2)
    assert check_module("m", linear) is linear
    with pytest.raises(TypeError, match="m must be a torch.nn.Module, got int"):
        check_module("m", 3)
    with pytest.raises(TypeError, match="opt must be a torch.optim.Optimizer, got str"):
        check_module("opt", "adam", torch.optim.Optimizer)
