"""Tests of tutorial_code.quant (and the byte accounting in tutorial_code.costs it uses)."""

from __future__ import annotations

import copy
import hashlib
import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils._python_dispatch import TorchDispatchMode

from tests.paths import load_script
from tutorial_code.costs import linear_bytes, state_dict_bytes
from tutorial_code.model import GPTConfig, GPTModel
from tutorial_code.quant import (
    Int8Linear,
    activation_absmax,
    calibrate_activation_scales,
    dequantize,
    fake_quantize_weight,
    find_outlier_columns,
    int32_accumulator_limit,
    quantize_absmax,
    quantize_model,
    quantize_zeropoint,
)

ROOT = Path(__file__).resolve().parents[2]
DEPRECATED = "ignore:torch.quantize_per_tensor, torch.quantize_per_channel:UserWarning"


def gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


class OpRecorder(TorchDispatchMode):
    """Records the name of every ATen op dispatched while active."""

    def __init__(self) -> None:
        super().__init__()
        self.ops: list[str] = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        self.ops.append(str(func))
        return func(*args, **(kwargs or {}))


# --------------------------------------------------------------------------------------
# quantize / dequantize
# --------------------------------------------------------------------------------------


@pytest.mark.filterwarnings(DEPRECATED)
def test_absmax_per_tensor_matches_torch_quantize_per_tensor() -> None:
    """Reference: torch.quantize_per_tensor(x, scale, 0, torch.qint8) with our scale.

    torch multiplies by 1/scale, we divide by scale, so the two may differ by 1 where
    x / scale lands (almost) exactly on a .5 tie; allow that on at most 0.1% of elements.
    """
    x = torch.randn(64, 96, generator=gen())
    q, scale = quantize_absmax(x)
    assert q.dtype == torch.int8 and scale.shape == () and scale.dtype == torch.float32
    assert torch.equal(scale, x.abs().max() / 127)
    ref = torch.quantize_per_tensor(x, float(scale), 0, torch.qint8).int_repr()
    diff = (q.int() - ref.int()).abs()
    assert int(diff.max()) <= 1 and int((diff > 0).sum()) <= x.numel() // 1000


@pytest.mark.filterwarnings(DEPRECATED)
def test_absmax_per_channel_matches_torch_quantize_per_channel() -> None:
    """Reference: torch.quantize_per_channel(w, scales, zeros, axis=0, dtype=torch.qint8)."""
    w = torch.randn(48, 80, generator=gen(1)) * torch.rand(48, 1, generator=gen(2))
    q, scale = quantize_absmax(w, dim=0)
    assert scale.shape == (48, 1)
    torch.testing.assert_close(scale.squeeze(1), w.abs().amax(dim=1) / 127, rtol=0, atol=0)
    ref = torch.quantize_per_channel(
        w, scale.squeeze(1).double(), torch.zeros(48, dtype=torch.long), 0, torch.qint8
    ).int_repr()
    diff = (q.int() - ref.int()).abs()
    assert int(diff.max()) <= 1 and int((diff > 0).sum()) <= w.numel() // 1000
    assert int(q.abs().amax(dim=1).min()) == 127  # every row's absmax maps to 127


@pytest.mark.parametrize("bits", [2, 4, 8])
@pytest.mark.parametrize("dim", [None, 0, 1, (0, 1), -1])
def test_absmax_round_trip_error_is_at_most_half_a_step(bits: int, dim) -> None:
    """Reference: the bound |x - s q| <= s / 2 that round-to-nearest guarantees (derived by hand)."""
    x = torch.randn(6, 10, 12, generator=gen(3)) * 3
    q, scale = quantize_absmax(x, dim=dim, bits=bits)
    qmax = 2 ** (bits - 1) - 1
    assert int(q.abs().max()) <= qmax
    err = (x - dequantize(q, scale)).abs()
    assert bool((err <= scale / 2 * (1 + 1e-6)).all())


def test_absmax_rounds_half_to_even() -> None:
    """Reference: values chosen by hand so that x / scale is exactly k + 0.5 (scale = 1)."""
    x = torch.tensor([127.0, 0.5, 1.5, 2.5, -0.5, -1.5, -2.5, 126.5])
    q, scale = quantize_absmax(x)
    assert float(scale) == 1.0
    assert q.tolist() == [127, 0, 2, 2, 0, -2, -2, 126]


def test_all_zero_rows_give_finite_scales_and_zeros() -> None:
    """Reference: by hand, a zero row must dequantize to exact zeros (0 / 0 would be nan)."""
    w = torch.randn(4, 8, generator=gen(4))
    w[1] = 0.0
    q, scale = quantize_absmax(w, dim=0)
    assert bool(torch.isfinite(scale).all()) and float(scale[1]) == 1.0
    assert q[1].abs().sum() == 0 and torch.equal(dequantize(q, scale)[1], torch.zeros(8))
    q, scale, zp = quantize_zeropoint(w, dim=0)
    assert bool(torch.isfinite(scale).all()) and torch.equal(dequantize(q, scale, zp)[1], w[1])
    q, scale = quantize_absmax(torch.zeros(3))
    assert float(scale) == 1.0 and q.tolist() == [0, 0, 0]


def test_int8_linear_with_a_zero_weight_row_and_a_zero_token_is_finite() -> None:
    """Reference: the float layer; a zero weight row outputs its bias, a zero token the bias."""
    linear = nn.Linear(8, 4)
    with torch.no_grad():
        linear.weight[2] = 0.0
    x = torch.randn(3, 8, generator=gen(5))
    x[1] = 0.0
    for mode in ("weight_only", "w8a8", "llm_int8"):
        y = Int8Linear.from_float(linear, mode=mode)(x)
        assert bool(torch.isfinite(y).all())
        torch.testing.assert_close(y[:, 2], linear.bias[2].expand(3).detach())
        torch.testing.assert_close(y[1], linear.bias.detach())


@pytest.mark.filterwarnings(DEPRECATED)
@pytest.mark.parametrize(
    ("dtype", "qdtype"), [(torch.uint8, torch.quint8), (torch.int8, torch.qint8)]
)
def test_zeropoint_matches_torch_quantize_per_tensor(dtype, qdtype) -> None:
    """Reference: torch.quantize_per_tensor with our scale and zero point (±1 on rare ties)."""
    x = torch.rand(50, 40, generator=gen(6)) * 5 - 1  # mostly positive, like a GELU output
    q, scale, zp = quantize_zeropoint(x, dtype=dtype)
    assert q.dtype == dtype and zp.dtype == torch.int32
    ref = torch.quantize_per_tensor(x, float(scale), int(zp), qdtype).int_repr()
    diff = (q.int() - ref.int()).abs()
    assert int(diff.max()) <= 1 and int((diff > 0).sum()) <= x.numel() // 1000
    assert bool(((x - dequantize(q, scale, zp)).abs() <= scale / 2 * (1 + 1e-6)).all())


def test_zeropoint_represents_zero_exactly_and_uses_the_whole_range() -> None:
    """Reference: by hand: [min(x, 0), max(x, 0)] maps onto [0, 255]; 0 dequantizes to 0."""
    x = torch.tensor([[0.3, 1.0, 2.0, 0.0], [-1.0, -0.5, 0.0, 0.25]])
    q, scale, zp = quantize_zeropoint(x, dim=0)
    assert q.amin(dim=1).tolist() == [0, 0] and q.amax(dim=1).tolist() == [255, 255]
    assert zp.flatten().tolist() == [0, 204]  # 0 - round(-1 / (1.25 / 255)) = 204
    deq = dequantize(q, scale, zp)
    assert float(deq[0, 3]) == 0.0 and float(deq[1, 2]) == 0.0
    assert int(zp[0]) == 0  # one-sided data: the zero point sits at the bottom of the range


def test_bad_arguments_raise_clear_errors() -> None:
    """Reference: the book's argument-check convention (TypeError for type, ValueError for value)."""
    x = torch.randn(4, 4)
    with pytest.raises(TypeError, match="x must be a torch.Tensor"):
        quantize_absmax([1.0, 2.0])
    with pytest.raises(ValueError, match="x must have a floating-point dtype"):
        quantize_absmax(torch.ones(3, dtype=torch.int64))
    with pytest.raises(ValueError, match="bits"):
        quantize_absmax(x, bits=9)
    with pytest.raises(ValueError, match="dim"):
        quantize_absmax(x, dim=2)
    with pytest.raises(ValueError, match="finite"):
        quantize_absmax(torch.tensor([1.0, float("nan")]))
    with pytest.raises(ValueError, match="dtype"):
        quantize_zeropoint(x, dtype=torch.int16)
    with pytest.raises(ValueError, match="q must have an integer dtype"):
        dequantize(x, torch.ones(()))
    with pytest.raises(TypeError, match="linear must be a torch.nn.Linear"):
        Int8Linear.from_float(nn.Conv1d(2, 2, 1), mode="w8a8")
    with pytest.raises(ValueError, match="mode must be one of"):
        Int8Linear.from_float(nn.Linear(4, 4), mode="int4")
    with pytest.raises(ValueError, match="threshold"):
        Int8Linear.from_float(nn.Linear(4, 4), mode="llm_int8", threshold=-1.0)
    with pytest.raises(ValueError, match="static activation scales need mode='w8a8'"):
        Int8Linear.from_float(nn.Linear(4, 4), mode="llm_int8", activation_scale=0.1)
    with pytest.raises(ValueError, match="x must have 4 features"):
        Int8Linear.from_float(nn.Linear(4, 4), mode="w8a8")(torch.randn(2, 5))
    with pytest.raises(ValueError, match="group_size must divide"):
        fake_quantize_weight(x, granularity="group", group_size=3)
    with pytest.raises(ValueError, match="granularity"):
        fake_quantize_weight(x, granularity="row")
    with pytest.raises(ValueError, match="mode must be one of"):
        quantize_model(nn.Sequential(nn.Linear(2, 2)), mode="fp8")
    with pytest.raises(TypeError, match="model must be a torch.nn.Module"):
        quantize_model("gpt", mode="w8a8")


def test_fake_quantize_weight_granularities() -> None:
    """Reference: quantize_absmax itself; a group as wide as the row is per channel."""
    w = torch.randn(16, 64, generator=gen(7))
    per_channel = fake_quantize_weight(w, granularity="channel")
    assert torch.equal(per_channel, dequantize(*quantize_absmax(w, dim=0)))
    assert torch.equal(fake_quantize_weight(w, granularity="group", group_size=64), per_channel)
    assert torch.equal(
        fake_quantize_weight(w, granularity="tensor"), dequantize(*quantize_absmax(w))
    )
    errors = [
        float((w - fake_quantize_weight(w, **kw)).norm())
        for kw in (
            {"granularity": "tensor"},
            {"granularity": "channel"},
            {"granularity": "group", "group_size": 16},
        )
    ]
    assert errors[0] >= errors[1] >= errors[2]  # finer scales never hurt on this weight


# --------------------------------------------------------------------------------------
# Int8Linear
# --------------------------------------------------------------------------------------


def _layer_and_input(in_features=64, out_features=32, rows=(2, 5), seed=8):
    torch.manual_seed(seed)
    linear = nn.Linear(in_features, out_features).requires_grad_(False)
    x = torch.randn(*rows, in_features, generator=gen(seed))
    return linear, x


@pytest.mark.parametrize("mode", ["weight_only", "w8a8", "llm_int8"])
def test_int8_linear_is_close_to_the_float_layer(mode: str) -> None:
    """Reference: the float nn.Linear on the same (B, T, in) input (relative error < 2%)."""
    linear, x = _layer_and_input()
    y = Int8Linear.from_float(linear, mode=mode)(x)
    ref = linear(x)
    assert y.shape == (2, 5, 32) and y.dtype == torch.float32
    assert float((y - ref).norm() / ref.norm()) < 0.02


@pytest.mark.parametrize("mode", ["weight_only", "w8a8", "llm_int8"])
def test_int8_linear_accepts_float64_inputs(mode: str) -> None:
    """Reference: the same layer on the float32 rounding of the input (the int8 paths see the
    same integers), and the float64 nn.Linear (close)."""
    linear, x = _layer_and_input(rows=(6,))
    x64 = x.double()
    x64[:, 5] *= 10.0  # an outlier column for llm_int8
    layer = Int8Linear.from_float(linear, mode=mode)
    y = layer(x64)
    assert y.dtype == torch.float64
    torch.testing.assert_close(y, layer(x64.float()).double(), rtol=1e-5, atol=1e-5)
    ref = F.linear(x64, linear.weight.double(), linear.bias.double())
    assert float((y - ref).norm() / ref.norm()) < 0.02


def test_w8a8_equals_the_float_product_of_the_dequantized_operands() -> None:
    """Reference: a float64 matmul of dequantize(x_q) and dequantize(w_q): _int_mm is exact and
    only the final rescaling by s_x s_w rounds."""
    linear, x = _layer_and_input(rows=(7,))
    layer = Int8Linear.from_float(linear, mode="w8a8")
    x_q, s_x = quantize_absmax(x, dim=0)  # one scale per token
    ref = (
        dequantize(x_q, s_x).double() @ layer.dequantized_weight().double().t()
        + linear.bias.double()
    )
    torch.testing.assert_close(layer(x).double(), ref, rtol=1e-6, atol=1e-6)


def test_int_mm_is_exact_integer_arithmetic() -> None:
    """Reference: the same product in int64 (torch.matmul on int64 tensors)."""
    a = torch.randint(-127, 128, (9, 300), dtype=torch.int8, generator=gen(9))
    b = torch.randint(-127, 128, (300, 11), dtype=torch.int8, generator=gen(10))
    assert torch.equal(torch._int_mm(a, b).long(), a.long() @ b.long())


def test_weight_only_is_dequantize_then_matmul() -> None:
    """Reference: F.linear with the dequantized float32 weight (the semantics of weight-only
    int8; whether it is faster is measured in benchmarks/quant.py, not here)."""
    linear, x = _layer_and_input(rows=(6,))
    layer = Int8Linear.from_float(linear, mode="weight_only")
    ref = F.linear(x, layer.dequantized_weight(), linear.bias)
    torch.testing.assert_close(layer(x), ref, rtol=1e-5, atol=1e-5)  # several rows
    torch.testing.assert_close(layer(x[:1]), ref[:1], rtol=1e-5, atol=1e-5)  # one row
    y16 = layer(x.bfloat16())
    assert y16.dtype == torch.bfloat16
    torch.testing.assert_close(y16.float(), ref, rtol=0.05, atol=0.05)


@pytest.mark.parametrize(
    ("mode", "dtype", "op"),
    [
        ("w8a8", torch.float32, "aten._int_mm.default"),
        ("llm_int8", torch.float32, "aten._int_mm.default"),
        ("weight_only", torch.bfloat16, "aten._weight_int8pack_mm.default"),
        ("weight_only", torch.float32, "aten._weight_int8pack_mm.default"),
    ],
)
def test_the_integer_kernels_are_dispatched(mode: str, dtype: torch.dtype, op: str) -> None:
    """Reference: the ATen ops torch dispatches, recorded with a TorchDispatchMode; the int8
    paths must not fall back to a float matmul of the whole weight."""
    linear, x = _layer_and_input()
    layer = Int8Linear.from_float(linear, mode=mode)
    rows = x[:1, :1] if mode == "weight_only" and dtype == torch.float32 else x
    with OpRecorder() as rec:
        layer(rows.to(dtype))
    assert op in rec.ops
    if mode in ("w8a8", "llm_int8"):
        assert not any(name.startswith(("aten.mm", "aten.addmm")) for name in rec.ops)


def test_state_dict_holds_int8_weight_and_scales_and_no_float_copy() -> None:
    """Reference: the keys and dtypes the layer promises; a fresh layer loading the state dict
    reproduces the output bit for bit."""
    linear, x = _layer_and_input()
    layer = Int8Linear.from_float(linear, mode="w8a8")
    sd = layer.state_dict()
    assert set(sd) == {"weight", "weight_scale", "bias"}
    assert sd["weight"].dtype == torch.int8 and sd["weight"].shape == (32, 64)
    assert sd["weight_scale"].dtype == torch.float32 and sd["weight_scale"].shape == (32,)
    assert all(t.numel() < 32 * 64 for t in sd.values() if t.is_floating_point())
    fresh = Int8Linear(64, 32, mode="w8a8")
    fresh.load_state_dict(sd)
    assert torch.equal(fresh(x), layer(x))
    assert state_dict_bytes(layer) == 32 * 64 + 2 * 4 * 32 == linear_bytes(64, 32, weight_bits=8)


def test_outlier_threshold_is_an_absolute_magnitude() -> None:
    """Reference: by hand: a column peaking at 5.0 stays in int8 (the output equals the w8a8
    path exactly), one peaking at 8.0 is split off (find_outlier_columns flags it)."""
    linear, _ = _layer_and_input(rows=(4,))
    x = torch.randn(4, 64, generator=gen(11)).clamp(-3, 3)
    x[2, 10] = 5.0
    w8a8 = Int8Linear.from_float(linear, mode="w8a8")
    mixed = Int8Linear.from_float(linear, mode="llm_int8")
    assert not bool(find_outlier_columns(x).any())
    assert torch.equal(mixed(x), w8a8(x))
    x[1, 20] = -8.0
    assert find_outlier_columns(x).nonzero().flatten().tolist() == [20]
    assert find_outlier_columns(x, threshold=5.0).nonzero().flatten().tolist() == [10, 20]
    assert not torch.equal(mixed(x), w8a8(x))


def test_llm_int8_decomposition_equals_float_outliers_plus_int8_rest() -> None:
    """Reference: a float64 re-computation of LLM.int8()'s eq.: X_out W_out^T in float (with the
    dequantized weight columns) plus the int8 product of the rest, plus the bias."""
    linear, _ = _layer_and_input(rows=(4,))
    x = torch.randn(2, 3, 64, generator=gen(12))
    x[..., 7] *= 20.0  # an outlier feature
    layer = Int8Linear.from_float(linear, mode="llm_int8")
    rows = x.reshape(-1, 64)
    w = layer.dequantized_weight().double()
    rest = rows.clone()
    rest[:, 7] = 0.0
    rest_q, s = quantize_absmax(rest, dim=0)
    ref = (
        dequantize(rest_q, s).double() @ w.t()
        + rows[:, 7:8].double() @ w[:, 7:8].t()
        + linear.bias.double()
    )
    torch.testing.assert_close(layer(x).double(), ref.reshape(2, 3, 32), rtol=1e-5, atol=1e-5)


def test_an_outlier_feature_breaks_per_token_w8a8_and_llm_int8_repairs_it() -> None:
    """Reference: the float layer on the same inputs. Feature 3 is made 60x larger in every
    token: it then sets every token's scale and the other features keep only a few levels, so
    the W8A8 error grows more than 4x; LLM.int8() multiplies that feature in float and stays
    within 1.5x of the outlier-free error."""
    linear, _ = _layer_and_input(in_features=256, out_features=64, rows=(32,))
    x = torch.randn(32, 256, generator=gen(13))
    spiky = x.clone()
    spiky[:, 3] *= 60.0

    def rel(mode: str, inp: torch.Tensor) -> float:
        ref = linear(inp)
        return float((Int8Linear.from_float(linear, mode=mode)(inp) - ref).norm() / ref.norm())

    clean = rel("w8a8", x)
    assert rel("llm_int8", x) == clean  # no feature reaches 6.0: the same int8 path
    assert rel("w8a8", spiky) > 4 * clean
    assert rel("llm_int8", spiky) < 1.5 * clean


def test_int32_accumulator_limit_and_overflow() -> None:
    """Reference: by hand, 133,144 * 127^2 = 2,147,479,576 <= 2^31 - 1 < 133,145 * 127^2; one
    more term makes torch._int_mm wrap around to a negative number (it does not saturate)."""
    limit = int32_accumulator_limit()
    assert limit == 133_144 and int32_accumulator_limit(4) == (2**31 - 1) // 49
    ones = torch.full((1, limit), 127, dtype=torch.int8)
    assert int(torch._int_mm(ones, ones.t().contiguous())) == limit * 127 * 127
    longer = torch.full((1, limit + 1), 127, dtype=torch.int8)
    assert int(torch._int_mm(longer, longer.t().contiguous())) < 0  # wrapped around
    with pytest.raises(ValueError, match="int32 accumulator"):
        Int8Linear(limit + 1, 1)


# --------------------------------------------------------------------------------------
# Models
# --------------------------------------------------------------------------------------


def _small_gpt() -> tuple[GPTModel, torch.Tensor]:
    torch.manual_seed(0)
    cfg = GPTConfig(
        vocab_size=50, context_length=16, emb_dim=32, n_heads=4, n_layers=2, drop_rate=0.0
    )
    model = GPTModel(cfg).eval().requires_grad_(False)
    ids = torch.randint(0, 50, (3, 16), generator=gen(14))
    return model, ids


@pytest.mark.parametrize("mode", ["weight_only", "w8a8", "llm_int8"])
def test_quantize_model_swaps_every_linear_but_the_head(mode: str) -> None:
    """Reference: the float model's logits (close), and the list of linear layers by name."""
    model, ids = _small_gpt()
    ref = model(ids)
    quantized = quantize_model(copy.deepcopy(model), mode=mode)
    swapped = [n for n, m in quantized.named_modules() if isinstance(m, Int8Linear)]
    assert len(swapped) == 2 * 6 and "out_head" not in swapped
    assert type(quantized.out_head) is nn.Linear
    out = quantized(ids)
    assert float((out - ref).norm() / ref.norm()) < 0.05


def test_quantizing_the_lm_head_only_when_asked() -> None:
    """Reference: peft's target_modules semantics; naming out_head quantizes it too, and its
    int8 logits then differ from the float head's (the pitfall of quantizing the LM head)."""
    model, ids = _small_gpt()
    body = quantize_model(copy.deepcopy(model), mode="w8a8")
    everything = quantize_model(
        copy.deepcopy(model), mode="w8a8", target_modules=r".*(W_\w+|out_proj|fc\d|out_head)"
    )
    assert isinstance(everything.out_head, Int8Linear)
    assert not torch.equal(everything(ids), body(ids))


def test_calibrated_static_scales_clip_unrepresentative_inputs() -> None:
    """Reference: max|x| recorded by hand with forward hooks; then a layer calibrated on small
    inputs clips larger ones (error far above the dynamic per-token scale's), the pitfall of
    calibrating on unrepresentative text."""
    linear, _ = _layer_and_input(rows=(8,))
    model = nn.Sequential(linear)
    small = [torch.randn(8, 64, generator=gen(15)) * 0.1]
    absmax = activation_absmax(model, small, target_modules=["0"])
    assert torch.equal(absmax["0"], small[0].abs().amax(dim=0))
    scales = calibrate_activation_scales(model, small, target_modules=["0"])
    assert scales == {"0": float(small[0].abs().max()) / 127}
    static = Int8Linear.from_float(linear, mode="w8a8", activation_scale=scales["0"])
    dynamic = Int8Linear.from_float(linear, mode="w8a8")
    big = torch.randn(8, 64, generator=gen(16))
    ref = linear(big)

    def rel(y: torch.Tensor) -> float:
        return float((y - ref).norm() / ref.norm())

    assert rel(static(big)) > 20 * rel(dynamic(big))
    quantized = quantize_model(
        copy.deepcopy(model), mode="w8a8", target_modules=["0"], activation_scales=scales
    )
    assert torch.equal(quantized(big), static(big))
    assert "input_scale" in quantized[0].state_dict()
    with pytest.raises(ValueError, match="no scale for 0"):
        quantize_model(
            copy.deepcopy(model), mode="w8a8", target_modules=["0"], activation_scales={}
        )


# --------------------------------------------------------------------------------------
# Bytes
# --------------------------------------------------------------------------------------


def test_linear_bytes_by_hand_and_against_built_layers() -> None:
    """Reference: counts by hand, and state_dict_bytes of the real nn.Linear / Int8Linear."""
    assert linear_bytes(4096, 4096) == 4 * 4096 * 4096 + 4 * 4096
    assert linear_bytes(4096, 4096, weight_bits=8) == 4096 * 4096 + 2 * 4 * 4096
    assert (
        linear_bytes(128, 512, weight_bits=4, group_size=32, bias=False)
        == 128 * 512 // 2 + 4 * 512 * 4
    )
    linear = nn.Linear(24, 40)
    assert state_dict_bytes(linear) == linear_bytes(24, 40)
    assert state_dict_bytes(Int8Linear.from_float(linear, mode="llm_int8")) == linear_bytes(
        24, 40, weight_bits=8
    )
    with pytest.raises(ValueError, match="group_size"):
        linear_bytes(24, 40, group_size=8)
    with pytest.raises(TypeError, match="model must be"):
        state_dict_bytes({})


# --------------------------------------------------------------------------------------
# The stored experiment
# --------------------------------------------------------------------------------------


def test_stored_gpt_weights_match_their_record_and_a_rerun_slice(tmp_path: Path) -> None:
    """Reference: the SHA-256 recorded in experiments/results/quant_gpt.json, and the first
    training losses it stores, re-run here for a short slice of the same schedule."""
    record = json.loads((ROOT / "experiments/results/quant_gpt.json").read_text())
    weights = ROOT / "experiments/results" / record["weights_file"]
    assert hashlib.sha256(weights.read_bytes()).hexdigest() == record["weights_sha256"]
    steps = record["training"]["steps"]
    out = tmp_path / "slice"
    subprocess.run(
        [sys.executable, str(ROOT / "experiments/quant_gpt.py"), "--steps", str(steps),
         "--stop-after", "5", "--output", str(out)],
        check=True, capture_output=True, cwd=ROOT,
    )  # fmt: skip
    rerun = json.loads(out.with_suffix(".json").read_text())
    assert rerun["config"] == record["config"]
    assert rerun["tokenizer_chars"] == record["tokenizer_chars"]
    for got, want in zip(rerun["first_losses"], record["first_losses"][:5], strict=True):
        assert got == pytest.approx(want, rel=1e-3)


def test_stored_benchmark_is_complete_and_its_bytes_match_a_rerun() -> None:
    """Reference: benchmarks/quant.py's own byte accounting, re-run here (bytes are exact and
    do not depend on the machine), and the medians recomputed from the stored raw timings."""
    import statistics

    record = json.loads((ROOT / "benchmarks/results/quant.json").read_text())
    bench = load_script("benchmarks/quant.py")
    assert bench.bytes_table(bench.book_gpt_config()) == record["bytes"]
    assert record["repeats"] >= 7 and record["threads"] == record["machine"]["torch_threads"]
    for key, cell in record["table"].items():
        raw = record["raw_seconds_per_call"][key]
        for name, times in raw.items():
            assert len(times) == record["repeats"]
            assert cell["median_us"][name] == pytest.approx(
                statistics.median(times) * 1e6, rel=1e-3
            )
    assert record["bar"]["met"]
