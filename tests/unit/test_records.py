"""tutorial_code.records: rounding and writing the experiments' JSON records.

References: values rounded by hand, ``json.loads`` for the round trip, and the stored records
themselves (written by the scripts before the helpers moved here, so the format is unchanged).
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from tutorial_code.records import dumps, rounded

RESULTS = Path(__file__).resolve().parents[2] / "experiments" / "results"


def test_rounded_keeps_seven_significant_digits_through_nested_records() -> None:
    record = {"loss": 1.23456789, "log": [0.000123456789, 12345.6789], "n": 3, "name": "a"}
    assert rounded(record) == {"loss": 1.234568, "log": [0.0001234568, 12345.68], "n": 3, "name": "a"}
    assert rounded(2.0 / 3.0, decimals=2) == 0.67
    assert rounded((0.125, 1.0), significant=1) == [0.1, 1.0]


def test_rounded_stores_nan_as_null_only_when_asked() -> None:
    assert rounded([math.nan], nan_to_none=True) == [None]
    assert math.isnan(rounded(math.nan))
    with pytest.raises(ValueError, match="Out of range float values"):
        dumps({"kl": math.nan}, allow_nan=False)


def test_rounded_rejects_bad_precision() -> None:
    with pytest.raises(ValueError, match="significant"):
        rounded(1.0, significant=0)
    with pytest.raises(TypeError, match="decimals"):
        rounded(1.0, decimals=1.5)


def test_dumps_puts_each_list_of_scalars_on_one_line_and_round_trips() -> None:
    record = {"steps": [1, 2, 3], "evals": {"accuracy": [0.5, None, 0.75]}, "name": "grpo"}
    text = dumps(record)
    assert '"steps": [1, 2, 3]' in text and '"accuracy": [0.5, null, 0.75]' in text
    assert text.endswith("}\n") and json.loads(text) == record


@pytest.mark.parametrize("name", ["dpo", "grpo", "comparison", "reasoning"])
def test_the_stored_records_are_in_this_format(name: str) -> None:
    text = (RESULTS / f"{name}.json").read_text(encoding="utf-8")
    assert dumps(json.loads(text)) == text
