"""tutorial_code.modules: peft-style module selection and in-place replacement.

Reference: peft's documented ``target_modules`` semantics (a str is matched with
``re.fullmatch``; a list matches exact names or ``"." + name`` suffixes; ``"all-linear"``
skips the output layer), checked on the book's GPT by hand-listed names.
"""

from __future__ import annotations

import pytest
import torch
from torch import nn

from tutorial_code.model import GPTConfig, GPTModel
from tutorial_code.modules import find_modules, module_matches, replace_modules

CFG = GPTConfig(vocab_size=20, context_length=8, emb_dim=16, n_heads=2, n_layers=2, drop_rate=0.0)


def model() -> GPTModel:
    torch.manual_seed(0)
    return GPTModel(CFG)


def test_module_matches_follows_peft() -> None:
    name = "trf_blocks.0.att.W_query"
    assert module_matches(name, ["W_query"])
    assert module_matches(name, ["att.W_query"])
    assert not module_matches(name, ["query"])  # a suffix must start at a dot
    assert module_matches(name, r"trf_blocks\.\d+\.att\.W_(query|value)")
    assert not module_matches(name, r"W_query")  # a regex must match the whole name
    assert module_matches(name, "all-linear") and not module_matches("out_head", "all-linear")
    with pytest.raises(TypeError, match="target_modules must be"):
        module_matches(name, [1])  # type: ignore[list-item]


def test_find_modules_lists_the_gpts_linears() -> None:
    got = find_modules(model(), ["W_query", "fc2"])
    assert got == [
        "trf_blocks.0.att.W_query",
        "trf_blocks.0.ff.fc2",
        "trf_blocks.1.att.W_query",
        "trf_blocks.1.ff.fc2",
    ]
    assert len(find_modules(model(), "all-linear")) == 6 * CFG.n_layers
    assert find_modules(model(), ["ff"]) == []  # the FeedForward is not an nn.Linear
    assert find_modules(model(), ["ff"], module_type=nn.Module) == [
        "trf_blocks.0.ff",
        "trf_blocks.1.ff",
    ]


class Scaled(nn.Module):
    def __init__(self, base: nn.Linear) -> None:
        super().__init__()
        self.base_layer = base

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return 2 * self.base_layer(x)


def test_replace_modules_wraps_in_place_once() -> None:
    m = model()
    idx = torch.randint(0, CFG.vocab_size, (1, 5))
    before = m.trf_blocks[0].att.W_value(m.tok_emb(idx))
    names = replace_modules(m, ["W_value"], lambda name, old: Scaled(old))
    assert names == ["trf_blocks.0.att.W_value", "trf_blocks.1.att.W_value"]
    layer = m.trf_blocks[0].att.W_value
    assert isinstance(layer, Scaled) and isinstance(layer.base_layer, nn.Linear)
    torch.testing.assert_close(layer(m.tok_emb(idx)), 2 * before)
    assert m(idx).shape == (1, 5, CFG.vocab_size)  # the model still runs


def test_replace_modules_rejects_a_typo_and_bad_factories() -> None:
    with pytest.raises(ValueError, match="matched no Linear module; candidates: trf_blocks.0"):
        replace_modules(model(), ["W_querry"], lambda n, m: m)
    with pytest.raises(TypeError, match="factory must return an nn.Module, got int"):
        replace_modules(model(), ["fc1"], lambda n, m: 3)  # type: ignore[arg-type,return-value]
    with pytest.raises(TypeError, match="model must be a torch.nn.Module"):
        find_modules("gpt", ["fc1"])  # type: ignore[arg-type]
