"""LoRA, rsLoRA and DoRA adapters for ``nn.Linear`` layers, with peft's conventions.

**LoRA** (Hu et al., 2021, "LoRA: Low-Rank Adaptation of Large Language Models", eq. 3)
freezes a pre-trained weight ``W`` ``(out, in)`` and learns a low-rank update:

    ``h = W x + (alpha / r) B A x``,  ``A`` ``(r, in)``, ``B`` ``(out, r)``, ``r << min(in, out)``.

``A`` starts random (peft: Kaiming-uniform with ``a = sqrt(5)``, ``nn.Linear``'s default) and
``B`` at zero, so the adapted layer starts equal to the pre-trained one. The update is scaled
by ``alpha / r`` (section 4.1: "we then scale ``Delta W x`` by ``alpha / r``"), so that changing
``r`` does not require re-tuning the learning rate. **rsLoRA** (Kalajdzievski, 2023, "A Rank
Stabilization Scaling Factor for Fine-Tuning with LoRA") scales by ``alpha / sqrt(r)``
instead, which keeps the update's size stable as ``r`` grows.

**DoRA** (Liu et al., 2024, "DoRA: Weight-Decomposed Low-Rank Adaptation", eq. 5) splits each
output feature's weight row into a length and a direction, learns the length ``m`` directly
and the direction through LoRA:

    ``W' = m * (W + s B A) / ||W + s B A||``,  the norm taken per output feature (row),

with the norm treated as a constant in the backward pass (section 4.3). The paper writes
weights as ``d x k`` (``W in R^{d x k}``, ``y = x W``) and calls this a column norm; in
PyTorch's ``(out, in)`` layout it is ``torch.linalg.norm(W, dim=1)``.

The layer classes use peft's attribute names (``base_layer``, ``lora_A``, ``lora_B``,
``scaling``, ``lora_dropout``, ``merge``, ``unmerge``, ``merge_and_unload``), and their outputs
and gradients equal peft's (``tests/unit/test_lora.py``). :func:`apply_lora` wraps a
model's linears by name through :func:`tutorial_code.modules.replace_modules`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from tutorial_code.checks import check_float, check_int, check_module, check_probability
from tutorial_code.costs import count_parameters
from tutorial_code.modules import module_matches, replace_modules

__all__ = [
    "DoRALinear",
    "LoRALinear",
    "apply_lora",
    "get_nb_trainable_parameters",
    "magnitude_direction_change",
    "merge_and_unload",
    "trainable_parameters_report",
]


class LoRALinear(nn.Module):
    """A frozen ``nn.Linear`` plus a trainable low-rank update (LoRA; rsLoRA).

    ``forward(x)``: ``x`` ``(..., in)`` -> ``base_layer(x) + lora_B(lora_A(dropout(x))) *
    scaling`` ``(..., out)``, with ``scaling = lora_alpha / r`` (``lora_alpha / sqrt(r)`` with
    ``use_rslora=True``). After :meth:`merge` the update lives inside ``base_layer.weight`` and
    ``forward`` is the base layer alone.

    Args:
        base_layer: the pre-trained layer; its parameters are frozen (``requires_grad=False``).
        r: the rank of the update.
        lora_alpha: the numerator of the scaling.
        lora_dropout: dropout on the adapter's input only (the base layer sees ``x``).
        use_rslora: scale by ``lora_alpha / sqrt(r)`` (rank-stabilised LoRA).
    """

    def __init__(
        self,
        base_layer: nn.Linear,
        r: int,
        lora_alpha: float,
        lora_dropout: float = 0.0,
        use_rslora: bool = False,
    ) -> None:
        super().__init__()
        check_module("base_layer", base_layer, nn.Linear)
        check_int("r", r, low=1)
        lora_alpha = check_float("lora_alpha", lora_alpha, low=0.0, low_open=True)
        lora_dropout = check_probability("lora_dropout", lora_dropout)
        if not isinstance(use_rslora, bool):
            raise TypeError(f"use_rslora must be a bool, got {use_rslora!r}")
        self.base_layer = base_layer.requires_grad_(False)
        self.in_features, self.out_features = base_layer.in_features, base_layer.out_features
        self.r, self.lora_alpha, self.use_rslora = r, lora_alpha, use_rslora
        self.scaling = lora_alpha / math.sqrt(r) if use_rslora else lora_alpha / r
        self.lora_dropout = nn.Dropout(lora_dropout) if lora_dropout > 0 else nn.Identity()
        like = {"device": base_layer.weight.device, "dtype": base_layer.weight.dtype}
        self.lora_A = nn.Linear(self.in_features, r, bias=False, **like)
        self.lora_B = nn.Linear(r, self.out_features, bias=False, **like)
        self.reset_lora_parameters()
        self.merged = False

    @torch.no_grad()
    def reset_lora_parameters(self) -> None:
        """peft's default init: ``A`` Kaiming-uniform (``a = sqrt(5)``), ``B = 0``."""
        nn.init.kaiming_uniform_(self.lora_A.weight, a=math.sqrt(5))
        nn.init.zeros_(self.lora_B.weight)

    def get_delta_weight(self) -> torch.Tensor:
        """The update ``scaling * B A`` ``(out, in)`` that :meth:`merge` adds to the weight."""
        return (self.lora_B.weight @ self.lora_A.weight) * self.scaling

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        result = self.base_layer(x)  # W x + b
        if self.merged:
            return result
        # + (alpha / r) B A dropout(x)
        return result + self.lora_B(self.lora_A(self.lora_dropout(x))) * self.scaling

    @torch.no_grad()
    def merged_weight(self) -> torch.Tensor:
        """The adapted weight ``W + scaling B A`` ``(out, in)`` in float32, without merging."""
        if self.merged:
            return self.base_layer.weight.float().clone()
        return self.base_layer.weight.float() + self.get_delta_weight().float()

    @torch.no_grad()
    def merge(self) -> None:
        """Write the update into ``base_layer.weight``: ``W <- W + scaling B A``.

        The sum is formed in float32 and rounded once to the weight's dtype. Merged, the
        layer costs exactly a plain ``nn.Linear`` at inference.
        """
        if self.merged:
            raise RuntimeError("this layer is already merged; unmerge() first")
        weight = self.base_layer.weight
        weight.copy_(self.merged_weight().to(weight.dtype))
        self.merged = True

    @torch.no_grad()
    def unmerge(self) -> None:
        """Undo :meth:`merge`: ``W <- W - scaling B A`` (exact only up to rounding)."""
        if not self.merged:
            raise RuntimeError("this layer is not merged")
        weight = self.base_layer.weight
        weight.copy_((weight.float() - self.get_delta_weight().float()).to(weight.dtype))
        self.merged = False

    def merge_and_unload(self) -> nn.Linear:
        """Merge (if not merged yet) and return the plain ``nn.Linear`` ``base_layer``."""
        if not self.merged:
            self.merge()
        return self.base_layer

    def extra_repr(self) -> str:
        kind = "rsLoRA" if self.use_rslora else "LoRA"
        return f"{kind}: r={self.r}, lora_alpha={self.lora_alpha:g}, scaling={self.scaling:g}"


class DoRALinear(LoRALinear):
    """DoRA: a trainable magnitude per output feature times a LoRA-adapted direction.

    ``W' = magnitude * V / ||V||`` with ``V = W + scaling B A`` and the row norm ``||V||``
    ``(out,)`` detached from the graph (Liu et al., 2024, eq. 5 and section 4.3); the bias is
    not rescaled. ``magnitude`` ``(out,)`` starts at the base weight's row norms
    ``torch.linalg.norm(W, dim=1)``, so with ``B = 0`` the layer starts equal to the base.

    ``forward`` computes ``base_layer(x) + (g - 1) * W x' + g * scaling * B A x'`` with
    ``g = magnitude / ||V||`` and ``x' = dropout(x)``, as peft does: without dropout (or in
    eval mode) this is exactly ``W' x + b`` while reusing the base layer's output; with
    dropout, the base path still sees the clean ``x``. Same arguments as :class:`LoRALinear`.
    """

    def __init__(
        self,
        base_layer: nn.Linear,
        r: int,
        lora_alpha: float,
        lora_dropout: float = 0.0,
        use_rslora: bool = False,
    ) -> None:
        super().__init__(base_layer, r, lora_alpha, lora_dropout, use_rslora)
        with torch.no_grad():
            magnitude = torch.linalg.norm(base_layer.weight, dim=1)  # one norm per output row
        self.magnitude = nn.Parameter(magnitude)
        self._merged_weight_norm: torch.Tensor | None = None

    def weight_norm(self) -> torch.Tensor:
        """``||W + scaling B A||`` per output feature ``(out,)``, detached (section 4.3)."""
        with torch.no_grad():
            weight = self.base_layer.weight + self.get_delta_weight()
            return torch.linalg.norm(weight, dim=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        result = self.base_layer(x)  # W x + b
        if self.merged:
            return result
        g = self.magnitude / self.weight_norm()  # m / ||W + s B A||, norm a constant: (out,)
        dropped = self.lora_dropout(x)
        if isinstance(self.lora_dropout, nn.Identity) or not self.training:
            direction = result if self.base_layer.bias is None else result - self.base_layer.bias
        else:
            direction = F.linear(dropped, self.base_layer.weight)  # W x' on the dropped input
        lora = self.lora_B(self.lora_A(dropped)) * self.scaling  # s B A x'
        return result + (g - 1) * direction + g * lora

    @torch.no_grad()
    def merged_weight(self) -> torch.Tensor:
        """``magnitude * V / ||V||`` with ``V = W + s B A`` ``(out, in)``, float32, unmerged."""
        if self.merged:
            return self.base_layer.weight.float().clone()
        direction = self.base_layer.weight.float() + self.get_delta_weight().float()
        return (self.magnitude.float() / torch.linalg.norm(direction, dim=1))[:, None] * direction

    @torch.no_grad()
    def merge(self) -> None:
        """``W <- magnitude * (W + s B A) / ||W + s B A||``; the norm is kept for unmerge."""
        if self.merged:
            raise RuntimeError("this layer is already merged; unmerge() first")
        weight = self.base_layer.weight
        direction = weight.float() + self.get_delta_weight().float()
        self._merged_weight_norm = torch.linalg.norm(direction, dim=1)
        weight.copy_(self.merged_weight().to(weight.dtype))
        self.merged = True

    @torch.no_grad()
    def unmerge(self) -> None:
        """Undo :meth:`merge` with the stored norm: ``W <- W' ||V|| / m - s B A``."""
        if not self.merged or self._merged_weight_norm is None:
            raise RuntimeError("this layer is not merged")
        weight = self.base_layer.weight
        factor = (self.magnitude.float() / self._merged_weight_norm)[:, None]
        restored = weight.float() / factor - self.get_delta_weight().float()
        weight.copy_(restored.to(weight.dtype))
        self._merged_weight_norm = None
        self.merged = False

    def extra_repr(self) -> str:
        return "DoRA, " + super().extra_repr()


def apply_lora(
    model: nn.Module,
    target_modules: str | Sequence[str],
    r: int,
    lora_alpha: float,
    *,
    use_dora: bool = False,
    use_rslora: bool = False,
    lora_dropout: float = 0.0,
    modules_to_save: Sequence[str] | None = None,
) -> list[str]:
    """Freeze ``model`` and wrap the selected ``nn.Linear`` layers in LoRA or DoRA adapters.

    ``target_modules`` follows peft (:mod:`tutorial_code.modules`: a full-match regex, a list
    of names or name suffixes, or ``"all-linear"``, which leaves the LM head alone). Every
    parameter of ``model`` is frozen first; only the adapters' ``lora_A``, ``lora_B`` (and
    DoRA's ``magnitude``) train, plus the modules named in ``modules_to_save`` (e.g. a new
    classification head), which stay fully trainable as in peft. Returns the wrapped names.
    """
    check_module("model", model)
    if not isinstance(use_dora, bool):
        raise TypeError(f"use_dora must be a bool, got {use_dora!r}")
    layer = DoRALinear if use_dora else LoRALinear
    model.requires_grad_(False)
    names = replace_modules(
        model,
        target_modules,
        lambda name, base: layer(base, r, lora_alpha, lora_dropout, use_rslora),
    )
    if modules_to_save is not None:
        if isinstance(modules_to_save, str):
            raise TypeError("modules_to_save must be a list of module names, not a str")
        saved = [
            m
            for name, m in model.named_modules()
            if name and module_matches(name, list(modules_to_save))
        ]
        if not saved:
            raise ValueError(f"modules_to_save={modules_to_save!r} matched no module")
        for m in saved:
            m.requires_grad_(True)
    return names


def merge_and_unload(model: nn.Module) -> nn.Module:
    """Replace every LoRA/DoRA layer of ``model`` by its merged ``nn.Linear``; return ``model``.

    The result has no adapter left: the same parameter names and shapes as before
    :func:`apply_lora`, and the adapted outputs.
    """
    check_module("model", model)
    names = [n for n, m in model.named_modules() if n and isinstance(m, LoRALinear)]
    if not names:
        raise ValueError("model has no LoRALinear or DoRALinear layer to merge")
    for name in names:
        model.set_submodule(name, model.get_submodule(name).merge_and_unload())
    return model


def get_nb_trainable_parameters(model: nn.Module) -> tuple[int, int]:
    """``(trainable, total)`` parameter counts, as peft's method of the same name."""
    return count_parameters(model, trainable_only=True), count_parameters(model)


def trainable_parameters_report(model: nn.Module) -> str:
    """The line peft's ``print_trainable_parameters()`` prints, returned instead of printed."""
    trainable, total = get_nb_trainable_parameters(model)
    return (
        f"trainable params: {trainable:,d} || all params: {total:,d} || "
        f"trainable%: {100 * trainable / total:.4f}"
    )


@torch.no_grad()
def magnitude_direction_change(
    weight: torch.Tensor, base_weight: torch.Tensor
) -> tuple[float, float]:
    """DoRA's weight-decomposition analysis (Liu et al., 2024, section 3, eq. 3-4).

    Splits both ``(out, in)`` weights into row norms ``m`` (magnitudes, one per output
    feature) and rows ``v`` (directions) and returns ``(delta_m, delta_d)``:

    * ``delta_m = mean_n |m_n - m0_n|``, the mean change of magnitude;
    * ``delta_d = mean_n (1 - cos(v_n, v0_n))``, the mean change of direction.

    The paper plots ``delta_m`` against ``delta_d`` for the query and value matrices of every
    layer at several training steps: full fine-tuning and DoRA show a negative correlation
    (large changes of direction with small ones of magnitude, or the reverse), LoRA a
    positive one (both move together). Pass the effective weights: a plain layer's
    ``weight``, or :meth:`LoRALinear.merged_weight` of an adapter.
    """
    if weight.shape != base_weight.shape or weight.dim() != 2:
        raise ValueError(
            f"weight {tuple(weight.shape)} and base_weight {tuple(base_weight.shape)} must be "
            "matrices of the same shape"
        )
    w, w0 = weight.float(), base_weight.float()
    delta_m = (torch.linalg.norm(w, dim=1) - torch.linalg.norm(w0, dim=1)).abs().mean()
    delta_d = (1 - torch.nn.functional.cosine_similarity(w, w0, dim=1)).mean()
    return delta_m.item(), delta_d.item()
