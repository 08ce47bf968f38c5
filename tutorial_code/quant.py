"""INT8 quantization: integer storage, integer matrix multiplication and LLM.int8() outliers.

A float tensor ``x`` is stored as small integers ``q`` and a float ``scale`` (and, for the
asymmetric scheme, an integer ``zero_point``) with

    x ≈ dequantize(q) = scale * (q - zero_point)                     (affine quantization)

(Jacob et al., 2018, eq. 1). This module implements:

* :func:`quantize_absmax` (symmetric, ``zero_point = 0``, ``scale = max|x| / 127``) and
  :func:`quantize_zeropoint` (asymmetric, ``[min x, max x]`` mapped onto ``[0, 255]`` or
  ``[-128, 127]``), per tensor or with one scale per index along chosen dimensions (per output
  channel for a weight, per token for an activation, per group), and :func:`dequantize`;
* :class:`Int8Linear`, a drop-in replacement for ``nn.Linear`` that stores an int8 weight and
  one float32 scale per output row, in three modes:

  - ``"weight_only"``: int8 weight, float activations (memory saving; see the class docstring
    for when it is also faster);
  - ``"w8a8"``: int8 weight and int8 activations (one scale per token, computed on the fly),
    multiplied by ``torch._int_mm`` (int8 x int8 -> exact int32), then rescaled by
    ``s_x ⊗ s_w``;
  - ``"llm_int8"``: LLM.int8()'s mixed-precision decomposition (Dettmers et al., 2022,
    section 3.2): input feature columns holding any ``|x| >= threshold`` go through a float
    matmul, the others through the int8 path, and the two results are added;

* :func:`quantize_model`, which swaps a model's linear layers for :class:`Int8Linear` through
  :func:`tutorial_code.modules.replace_modules`, and :func:`calibrate_activation_scales` for
  static (calibrated) activation scales.

Conventions. Rounding is round-half-to-even (``torch.round``, IEEE 754's default, as
``torch.quantize_per_tensor`` rounds). Scales are ``max / qmax`` divided, not multiplied by a
reciprocal, so every element's integer is the correctly rounded ``x / scale``. Where a scale
would be zero (an all-zero row or token) it is 1 instead: the integers are then all zero and
dequantize to exact zeros, never ``nan``. Symmetric quantization uses ``[-127, 127]``, not
``[-128, 127]``: ``max|x|`` maps to 127 by construction, so ``-128`` would only be reached by
values that do not exist; a symmetric grid negates exactly, and a product of two int8 values
stays ``<= 127^2`` in magnitude, which lengthens the dot products an int32 accumulator can sum
safely (see :func:`int32_accumulator_limit`).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from tutorial_code.checks import check_choice, check_float, check_int, check_module, check_tensor
from tutorial_code.modules import find_modules, replace_modules

__all__ = [
    "MODES",
    "Int8Linear",
    "activation_absmax",
    "calibrate_activation_scales",
    "dequantize",
    "fake_quantize_weight",
    "find_outlier_columns",
    "int32_accumulator_limit",
    "quantize_absmax",
    "quantize_model",
    "quantize_zeropoint",
]

#: The modes of :class:`Int8Linear`.
MODES = ("weight_only", "w8a8", "llm_int8")


# --------------------------------------------------------------------------------------
# Quantize and dequantize
# --------------------------------------------------------------------------------------


def _reduce_dims(x: torch.Tensor, dim: int | Sequence[int] | None) -> tuple[int, ...]:
    """The dimensions to take the max over: all but ``dim`` (which keep one scale per index)."""
    if dim is None:
        return tuple(range(x.dim()))
    dims = (dim,) if isinstance(dim, int) else tuple(dim)
    for d in dims:
        check_int("dim", d, low=-x.dim(), high=x.dim() - 1)
    kept = {d % x.dim() for d in dims}
    if len(kept) != len(dims):
        raise ValueError(f"dim must not repeat a dimension, got {dim!r}")
    return tuple(d for d in range(x.dim()) if d not in kept)


def _check_input(x: torch.Tensor, bits: int) -> None:
    check_tensor("x", x, dtype="float")
    check_int("bits", bits, low=2, high=8)
    if x.numel() and not bool(torch.isfinite(x).all()):
        raise ValueError("x must be finite: inf or nan has no quantized value")


def _absmax_scale(x: torch.Tensor, reduce: tuple[int, ...], qmax: int) -> torch.Tensor:
    """``max|x| / qmax`` over ``reduce`` (kept as size-1 dims), float32; 1 where it would be 0."""
    amax = x.detach().abs().float().amax(dim=reduce, keepdim=True) if reduce else x.abs().float()
    scale = amax / qmax
    return torch.where(scale > 0, scale, torch.ones_like(scale))


def _quantize_symmetric(x: torch.Tensor, scale: torch.Tensor, qmax: int) -> torch.Tensor:
    # q = clamp(round_half_even(x / s), -qmax, qmax)
    return torch.round(x.float() / scale).clamp_(-qmax, qmax).to(torch.int8)


def quantize_absmax(
    x: torch.Tensor, *, dim: int | Sequence[int] | None = None, bits: int = 8
) -> tuple[torch.Tensor, torch.Tensor]:
    """Symmetric ("absmax") quantization: ``q = round(x / s)``, ``s = max|x| / (2^(bits-1) - 1)``.

    Args:
        x: a float tensor of any shape.
        dim: ``None`` for one scale for the whole tensor; otherwise the dimension(s) that keep
            one scale per index, the max being taken over all the others. ``dim=0`` on an
            ``(out, in)`` weight gives one scale per output row (``torch.quantize_per_channel
            (..., axis=0)``); ``dim=(0, 1)`` on ``(B, T, C)`` activations one per token;
            ``dim=(0, 1)`` on a weight viewed as ``(out, in // g, g)`` one per group of ``g``
            inputs.
        bits: 2 to 8; the integers lie in ``[-(2^(bits-1) - 1), 2^(bits-1) - 1]``, stored as
            int8 (``[-127, 127]`` for 8 bits).

    Returns:
        ``(q, scale)``: ``q`` int8 with the shape of ``x``; ``scale`` float32 with the shape of
        ``x`` except size 1 along the reduced dimensions (a 0-d tensor for ``dim=None``), so
        ``q * scale`` broadcasts. Each element satisfies ``|x - q * scale| <= scale / 2``.
        A slice that is all zero gets ``scale = 1`` and ``q = 0``.
    """
    _check_input(x, bits)
    qmax = 2 ** (bits - 1) - 1
    scale = _absmax_scale(x, _reduce_dims(x, dim), qmax)
    if dim is None:
        scale = scale.reshape(())
    return _quantize_symmetric(x, scale, qmax), scale


def quantize_zeropoint(
    x: torch.Tensor,
    *,
    dim: int | Sequence[int] | None = None,
    bits: int = 8,
    dtype: torch.dtype = torch.uint8,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Asymmetric ("zero-point") quantization: ``q = clamp(round(x / s) + z, qmin, qmax)``.

    The range ``[lo, hi] = [min(min x, 0), max(max x, 0)]`` (it always contains 0, so 0 is
    represented exactly, as padding and ReLU outputs need) is mapped onto the integer range
    ``[qmin, qmax]``: ``s = (hi - lo) / (qmax - qmin)`` and ``z = qmin - round(lo / s)``,
    clamped into ``[qmin, qmax]``. This spends all ``2^bits`` levels on the values that occur,
    which pays off for one-sided data (after a ReLU or GELU); for data centred on zero it
    gains about one level over :func:`quantize_absmax` and costs a subtraction of ``z`` in
    every product.

    Args:
        x, dim, bits: as in :func:`quantize_absmax`.
        dtype: ``torch.uint8`` (``[0, 2^bits - 1]``, like ``torch.quint8``) or ``torch.int8``
            (``[-2^(bits-1), 2^(bits-1) - 1]``, like ``torch.qint8``).

    Returns:
        ``(q, scale, zero_point)``: ``q`` of ``dtype`` and the shape of ``x``; ``scale``
        float32 and ``zero_point`` int32, both shaped as :func:`quantize_absmax`'s scale.
    """
    _check_input(x, bits)
    check_choice("dtype", dtype, (torch.uint8, torch.int8))
    qmin, qmax = (
        (0, 2**bits - 1) if dtype == torch.uint8 else (-(2 ** (bits - 1)), 2 ** (bits - 1) - 1)
    )
    reduce = _reduce_dims(x, dim)
    xf = x.detach().float()
    lo = (xf.amin(dim=reduce, keepdim=True) if reduce else xf).clamp(max=0.0)
    hi = (xf.amax(dim=reduce, keepdim=True) if reduce else xf).clamp(min=0.0)
    scale = (hi - lo) / (qmax - qmin)
    scale = torch.where(scale > 0, scale, torch.ones_like(scale))
    zero_point = (qmin - torch.round(lo / scale)).clamp(qmin, qmax)
    q = (torch.round(xf / scale) + zero_point).clamp_(qmin, qmax).to(dtype)
    if dim is None:
        scale, zero_point = scale.reshape(()), zero_point.reshape(())
    return q, scale, zero_point.to(torch.int32)


def dequantize(
    q: torch.Tensor, scale: torch.Tensor, zero_point: torch.Tensor | None = None
) -> torch.Tensor:
    """``scale * (q - zero_point)`` in float32 (``zero_point=None`` for symmetric ``q``).

    ``scale`` and ``zero_point`` broadcast against ``q`` (as :func:`quantize_absmax` and
    :func:`quantize_zeropoint` return them).
    """
    check_tensor("q", q, dtype="int")
    check_tensor("scale", scale, dtype="float")
    values = q.to(torch.int32)
    if zero_point is not None:
        check_tensor("zero_point", zero_point, dtype="int")
        values = values - zero_point.to(torch.int32)
    return values.float() * scale.float()


def fake_quantize_weight(
    weight: torch.Tensor,
    *,
    granularity: str = "channel",
    group_size: int | None = None,
    bits: int = 8,
) -> torch.Tensor:
    """The float weight an absmax-quantized ``(out, in)`` weight stands for: ``dequantize(q, s)``.

    ``granularity`` is ``"tensor"`` (one scale), ``"channel"`` (one per output row) or
    ``"group"`` (one per ``group_size`` consecutive inputs of each row; ``group_size`` must
    divide ``in``). Used to measure where quantization error goes without building layers.
    """
    check_tensor("weight", weight, dim=2, dtype="float")
    check_choice("granularity", granularity, ("tensor", "channel", "group"))
    out_features, in_features = weight.shape
    if granularity == "group":
        check_int("group_size", group_size, low=1)
        if in_features % group_size:
            raise ValueError(
                f"group_size must divide the input width {in_features}, got {group_size}"
            )
        grouped = weight.reshape(out_features, in_features // group_size, group_size)
        q, scale = quantize_absmax(grouped, dim=(0, 1), bits=bits)
        return dequantize(q, scale).reshape(out_features, in_features)
    if group_size is not None:
        raise ValueError(f"group_size goes with granularity='group', not {granularity!r}")
    q, scale = quantize_absmax(weight, dim=None if granularity == "tensor" else 0, bits=bits)
    return dequantize(q, scale)


def int32_accumulator_limit(bits: int = 8) -> int:
    """The longest dot product of two symmetric ``bits``-bit vectors that cannot overflow int32.

    Each product is at most ``qmax^2`` in magnitude (``127^2 = 16129`` for 8 bits), so a sum
    of ``K`` of them fits in int32 while ``K qmax^2 <= 2^31 - 1``: ``K <= 133,144`` for int8.
    ``torch._int_mm`` does not saturate: past this length the result silently wraps around.
    (With ``-128`` allowed the worst product is ``2^14`` and the limit ``131,071``.)
    """
    check_int("bits", bits, low=2, high=8)
    qmax = 2 ** (bits - 1) - 1
    return (2**31 - 1) // (qmax * qmax)


# --------------------------------------------------------------------------------------
# The int8 linear layer
# --------------------------------------------------------------------------------------


def find_outlier_columns(x: torch.Tensor, *, threshold: float = 6.0) -> torch.Tensor:
    """LLM.int8()'s outlier features: ``(in,)`` bool, True for each column of ``x`` ``(..., in)``
    holding any ``|x| >= threshold``.

    The threshold is an absolute magnitude (transformers' ``BitsAndBytesConfig``
    ``llm_int8_threshold``, default 6.0, passed to bitsandbytes' ``Linear8bitLt`` as
    ``threshold``), not a number of standard deviations: a column that peaks at 5.0 stays in
    int8 and one that peaks at 8.0 is split off.
    """
    check_tensor("x", x, dtype="float")
    threshold = check_float("threshold", threshold, low=0.0, low_open=True, allow_inf=True)
    return (x.reshape(-1, x.shape[-1]).abs() >= threshold).any(dim=0)


def _int8_matmul(
    x: torch.Tensor,
    weight_t: torch.Tensor,
    weight_scale: torch.Tensor,
    input_scale: torch.Tensor | None,
) -> torch.Tensor:
    """``(M, in)`` float x int8 weight -> ``(M, out)`` float32 through ``torch._int_mm``.

    ``s_x`` is one scale per row (token), computed now (dynamic), or the calibrated
    ``input_scale`` (static, values beyond ``127 s_x`` are clipped).
    """
    if input_scale is None:
        s_x = _absmax_scale(x, (1,), 127)  # (M, 1): one scale per token
    else:
        s_x = input_scale
    x_q = _quantize_symmetric(x, s_x, 127)  # (M, in) int8
    acc = torch._int_mm(x_q, weight_t)  # (M, out) int32, exact: sum_k x_q[m, k] w_q[n, k]
    # y[m, n] = s_x[m] s_w[n] acc[m, n]: dequantize with the outer product s_x ⊗ s_w
    return acc.float().mul_(s_x).mul_(weight_scale)


class Int8Linear(nn.Module):
    """``y = x W^T + b`` with ``W`` stored as int8 plus one float32 scale per output row.

    Buffers (all of the ``state_dict``; there is no float copy of the weight): ``weight``
    int8 ``(out, in)``, ``weight_scale`` float32 ``(out,)`` with ``W ≈ weight_scale[:, None] *
    weight``, ``bias`` float32 ``(out,)`` if the layer has one (biases are few and stay
    float), and ``input_scale`` (0-d) for ``"w8a8"`` with a static activation scale.

    Forward: ``x`` ``(..., in)`` (e.g. ``(B, T, in)``) -> ``(..., out)`` in ``x``'s dtype.

    * ``"weight_only"``: the activations stay float. With bfloat16/float16 activations the
      layer calls ``torch.ops.aten._weight_int8pack_mm``, which reads the int8 weight and
      scales it inside the kernel; on a CPU this beats the float matmul for a few rows
      (decoding one token), where reading the weight from memory is the cost. With float32
      activations that kernel has no fast path (measured in ``benchmarks/quant.py`` at
      4096 x 4096: 2-3x slower than the float32 matmul for one row, over 20x for 64), so the
      layer uses it only for a single row and otherwise widens the int8 weight to float32
      for a float32 matmul, i.e. dequantize-then-matmul: it saves memory at rest, not time.
    * ``"w8a8"``: each row of ``x`` (a token) is quantized with its own absmax scale
      ``s_x`` (dynamic) or with the calibrated ``input_scale`` (static); ``torch._int_mm``
      multiplies int8 by int8 into int32, exactly; the result is rescaled by ``s_x ⊗ s_w``
      (``y[m, n] = s_x[m] s_w[n] sum_k x_q[m, k] w_q[n, k]``) and the bias is added.
    * ``"llm_int8"``: the columns of ``x`` (input features) holding any ``|x| >= threshold``
      are multiplied in float by the dequantized matching weight columns; the rest of ``x``
      goes through the ``"w8a8"`` path; the two are added (Dettmers et al., 2022, section 3.2).

    float64 inputs are accepted (the book evaluates in float64 where printed digits must not
    depend on the CPU): the int8 paths quantize their float32 rounding, so they compute
    exactly what they compute for float32 inputs; the float parts run in float64.

    Build one with :meth:`from_float`.
    """

    def __init__(
        self,
        in_features: int,
        out_features: int,
        bias: bool = True,
        *,
        mode: str = "w8a8",
        threshold: float = 6.0,
        static_activations: bool = False,
    ) -> None:
        super().__init__()
        check_int("in_features", in_features, low=1)
        if in_features > int32_accumulator_limit(8):
            raise ValueError(
                f"in_features={in_features} is too long for an int32 accumulator: int8 dot "
                f"products longer than {int32_accumulator_limit(8):,} can overflow"
            )
        check_int("out_features", out_features, low=1)
        self.mode = check_choice("mode", mode, MODES)
        self.threshold = check_float("threshold", threshold, low=0.0, low_open=True, allow_inf=True)
        if static_activations and mode != "w8a8":
            raise ValueError(f"static activation scales need mode='w8a8', got mode={mode!r}")
        self.in_features, self.out_features = in_features, out_features
        self.register_buffer("weight", torch.zeros(out_features, in_features, dtype=torch.int8))
        self.register_buffer("weight_scale", torch.ones(out_features))
        self.register_buffer("bias", torch.zeros(out_features) if bias else None)
        self.register_buffer("input_scale", torch.ones(()) if static_activations else None)

    @classmethod
    def from_float(
        cls,
        linear: nn.Linear,
        *,
        mode: str,
        threshold: float = 6.0,
        activation_scale: float | None = None,
    ) -> Int8Linear:
        """Quantize ``linear``'s weight per output row (absmax) into a new layer.

        Args:
            linear: the float layer; it is not modified.
            mode: ``"weight_only"``, ``"w8a8"`` or ``"llm_int8"`` (see the class docstring).
            threshold: ``"llm_int8"``'s absolute outlier magnitude (default 6.0).
            activation_scale: ``"w8a8"`` only: a static activation scale (from
                :func:`calibrate_activation_scales`) instead of one per token per call.
        """
        check_module("linear", linear, nn.Linear)
        if activation_scale is not None:
            activation_scale = check_float(
                "activation_scale", activation_scale, low=0.0, low_open=True
            )
        layer = cls(
            linear.in_features,
            linear.out_features,
            linear.bias is not None,
            mode=mode,
            threshold=threshold,
            static_activations=activation_scale is not None,
        )
        q, scale = quantize_absmax(linear.weight.detach(), dim=0)  # scale: (out, 1)
        layer.weight.copy_(q)
        layer.weight_scale.copy_(scale.squeeze(1))
        if linear.bias is not None:
            layer.bias.copy_(linear.bias.detach())
        if activation_scale is not None:
            layer.input_scale.fill_(activation_scale)
        return layer.to(linear.weight.device)

    def dequantized_weight(self) -> torch.Tensor:
        """The float32 ``(out, in)`` weight the int8 one stands for (for checks, not forward)."""
        return dequantize(self.weight, self.weight_scale[:, None])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[-1] != self.in_features:
            raise ValueError(
                f"x must have {self.in_features} features in its last dimension, got shape "
                f"{tuple(x.shape)}"
            )
        rows = x.reshape(-1, self.in_features)  # (M, in), M = B * T
        if self.mode == "weight_only":
            y = self._weight_only(rows)
        elif self.mode == "w8a8":
            y = _int8_matmul(rows, self.weight.t(), self.weight_scale, self.input_scale)
        else:
            y = self._llm_int8(rows)
        y = y.to(x.dtype)
        if self.bias is not None:
            y = y + self.bias.to(x.dtype)
        return y.reshape(*x.shape[:-1], self.out_features)

    def _weight_only(self, rows: torch.Tensor) -> torch.Tensor:
        half = rows.dtype in (torch.bfloat16, torch.float16)
        if half or (rows.dtype == torch.float32 and rows.shape[0] == 1):
            scale = self.weight_scale.to(rows.dtype)
            return torch.ops.aten._weight_int8pack_mm(rows.contiguous(), self.weight, scale)
        # float32 with several rows (or float64): y = (x W_q^T) * s_w, W_q widened to float
        return F.linear(rows, self.weight.to(rows.dtype)).mul_(self.weight_scale)

    def _llm_int8(self, rows: torch.Tensor) -> torch.Tensor:
        outliers = find_outlier_columns(rows, threshold=self.threshold)  # (in,) bool
        if not bool(outliers.any()):
            return _int8_matmul(rows, self.weight.t(), self.weight_scale, None)
        cols = outliers.nonzero().squeeze(1)
        dtype = torch.promote_types(rows.dtype, torch.float32)  # float32, or float64
        # X W^T = X_out W_out^T (float, few columns) + X_rest W_rest^T (int8)
        w_out = self.weight[:, cols].to(dtype) * self.weight_scale[:, None]  # (out, n_outliers)
        y_out = rows[:, cols].to(dtype) @ w_out.t()
        y_rest = _int8_matmul(
            rows.index_fill(1, cols, 0.0), self.weight.t(), self.weight_scale, None
        )
        return y_rest + y_out

    def extra_repr(self) -> str:
        extra = f", threshold={self.threshold}" if self.mode == "llm_int8" else ""
        if self.input_scale is not None:
            extra += ", static activation scale"
        return (
            f"in_features={self.in_features}, out_features={self.out_features}, "
            f"bias={self.bias is not None}, mode={self.mode!r}{extra}"
        )


# --------------------------------------------------------------------------------------
# Whole models
# --------------------------------------------------------------------------------------


def quantize_model(
    model: nn.Module,
    *,
    mode: str,
    target_modules: str | Sequence[str] = "all-linear",
    threshold: float = 6.0,
    activation_scales: Mapping[str, float] | None = None,
) -> nn.Module:
    """Replace the selected ``nn.Linear`` layers of ``model`` by :class:`Int8Linear`, in place.

    ``target_modules`` selects layers as peft does (:mod:`tutorial_code.modules`); the default
    ``"all-linear"`` leaves the language-model head ``out_head`` in float, and embeddings and
    LayerNorms are not linear layers, so they stay float too. The head is left out because
    its outputs are the logits themselves: its error is not averaged away by later layers but
    goes straight into the softmax, it has the widest output of the model, and in models that
    tie it to the token embedding it shares that float table anyway (bitsandbytes and
    transformers skip it by default for these reasons). Name it in ``target_modules`` to
    quantize it as well.

    ``activation_scales`` (``"w8a8"`` only) maps each selected layer's name to a static
    activation scale, as :func:`calibrate_activation_scales` returns. Returns ``model``.
    """
    check_module("model", model)
    check_choice("mode", mode, MODES)
    if activation_scales is not None:
        if mode != "w8a8":
            raise ValueError(f"activation_scales need mode='w8a8', got mode={mode!r}")
        missing = [n for n in find_modules(model, target_modules) if n not in activation_scales]
        if missing:
            raise ValueError(f"activation_scales has no scale for {', '.join(missing)}")

    def factory(name: str, linear: nn.Module) -> nn.Module:
        scale = None if activation_scales is None else activation_scales[name]
        return Int8Linear.from_float(linear, mode=mode, threshold=threshold, activation_scale=scale)

    replace_modules(model, target_modules, factory)
    return model


@torch.no_grad()
def activation_absmax(
    model: nn.Module,
    batches: Iterable[torch.Tensor],
    *,
    target_modules: str | Sequence[str] = "all-linear",
) -> dict[str, torch.Tensor]:
    """Per input feature, the largest ``|x|`` each selected linear layer receives.

    Runs ``model(batch)`` for every batch (e.g. ``(B, T)`` token ids) and returns
    ``{layer name: (in_features,) float32}``, the max over every token seen. Outlier features
    show up as a few entries far above the rest; its overall max sets a static scale.
    """
    check_module("model", model)
    names = find_modules(model, target_modules)
    if not names:
        raise ValueError(f"target_modules={target_modules!r} matched no nn.Linear module")
    found: dict[str, torch.Tensor] = {}

    def recorder(name: str):
        def hook(module: nn.Module, args: tuple[torch.Tensor, ...]) -> None:
            x = args[0].detach().float().reshape(-1, args[0].shape[-1]).abs().amax(dim=0)
            found[name] = x if name not in found else torch.maximum(found[name], x)

        return hook

    handles = [model.get_submodule(n).register_forward_pre_hook(recorder(n)) for n in names]
    was_training = model.training
    model.eval()
    try:
        seen = 0
        for batch in batches:
            model(batch)
            seen += 1
    finally:
        for handle in handles:
            handle.remove()
        model.train(was_training)
    if not seen:
        raise ValueError("batches must hold at least one batch")
    return found


def calibrate_activation_scales(
    model: nn.Module,
    batches: Iterable[torch.Tensor],
    *,
    target_modules: str | Sequence[str] = "all-linear",
    bits: int = 8,
) -> dict[str, float]:
    """Static per-tensor activation scales ``max|x| / (2^(bits-1) - 1)`` seen on ``batches``.

    The calibration text must look like what the model will read: a value larger than the
    calibrated max is clipped to it at inference time (the pitfall the chapter measures).
    """
    check_int("bits", bits, low=2, high=8)
    qmax = 2 ** (bits - 1) - 1
    absmax = activation_absmax(model, batches, target_modules=target_modules)
    # an input that was all zeros gets scale 1, as in quantize_absmax
    return {name: float(a.max()) / qmax if a.max() > 0 else 1.0 for name, a in absmax.items()}
