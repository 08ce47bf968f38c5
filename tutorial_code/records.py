"""The stored results of the experiment scripts (``experiments/results/*.json``).

Every script writes one JSON record that a chapter reads and prints. Two helpers keep those
files small and readable, the same way for every script:

* :func:`rounded` rounds the floats of a nested record (float32 results carry about seven
  significant digits; more would only store noise);
* :func:`dumps` writes the record indented, but with each list of numbers on one line (a
  per-step log of 60 values is one line, not 60).
"""

from __future__ import annotations

import json
import math
import re

from tutorial_code.checks import check_int

__all__ = ["dumps", "rounded"]

_FLAT_LIST = re.compile(r"\[\s+([^\[\]{}\"]*?)\s+\]")


def rounded(
    value: object,
    *,
    significant: int = 7,
    decimals: int | None = None,
    nan_to_none: bool = False,
) -> object:
    """``value`` with every float rounded, through nested dicts, lists and tuples.

    Floats keep ``significant`` significant digits, or ``decimals`` digits after the point
    when that is given. ``nan_to_none=True`` stores NaN as ``None`` (JSON ``null``), for logs
    where a quantity is undefined at some steps; otherwise NaN stays NaN, and a strict
    ``dumps(..., allow_nan=False)`` refuses it. Anything that is not a float is returned as is.
    """
    check_int("significant", significant, low=1)
    check_int("decimals", decimals, low=0, allow_none=True)
    if isinstance(value, float):
        if math.isnan(value):
            return None if nan_to_none else value
        return round(value, decimals) if decimals is not None else float(f"{value:.{significant}g}")
    if isinstance(value, dict):
        return {
            k: rounded(v, significant=significant, decimals=decimals, nan_to_none=nan_to_none)
            for k, v in value.items()
        }
    if isinstance(value, (list, tuple)):
        return [
            rounded(v, significant=significant, decimals=decimals, nan_to_none=nan_to_none)
            for v in value
        ]
    return value


def dumps(record: object, *, allow_nan: bool = True) -> str:
    """JSON text of ``record``, indented, with each list of scalars on one line; ends in a
    newline. ``allow_nan=False`` raises ``ValueError`` on NaN or infinity (strict JSON)."""
    text = json.dumps(record, indent=1, allow_nan=allow_nan)
    return _FLAT_LIST.sub(lambda m: "[" + " ".join(m.group(1).split()) + "]", text) + "\n"
