"""Find and swap a model's submodules by name (the machinery behind LoRA, DoRA, INT8 and MoE).

Several chapters replace some of the GPT's layers with another kind: chapter 3 wraps linear
layers in LoRA or DoRA adapters and swaps feed-forward blocks for mixtures of experts,
chapter 6 swaps linear layers for int8 ones. They all go through :func:`replace_modules`,
which selects modules the way peft's ``target_modules`` does:

* a ``str`` is a regular expression that must match the *whole* qualified name
  (``re.fullmatch``), e.g. ``r"trf_blocks\\.\\d+\\.att\\.W_(query|value)"``;
* a list of ``str`` matches a module whose name equals one of them or ends with
  ``"." + entry``, e.g. ``["W_query", "W_value"]``;
* ``"all-linear"`` matches every ``nn.Linear`` except the language-model head
  (``out_head``), as peft's ``"all-linear"`` leaves the output layer alone.

The book's GPT names its layers stably: ``trf_blocks.{i}.att.W_query`` / ``W_key`` /
``W_value`` / ``out_proj``, ``trf_blocks.{i}.ff`` (the feed-forward block) with
``trf_blocks.{i}.ff.fc1`` / ``fc2``, and ``out_head``.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence

from torch import nn

__all__ = ["find_modules", "module_matches", "replace_modules"]

LM_HEAD_NAMES = ("out_head", "lm_head")


def module_matches(name: str, target_modules: str | Sequence[str]) -> bool:
    """Whether the qualified module ``name`` is selected by ``target_modules`` (see above)."""
    if isinstance(target_modules, str):
        if target_modules == "all-linear":
            return name.rsplit(".", 1)[-1] not in LM_HEAD_NAMES
        return re.fullmatch(target_modules, name) is not None
    if not isinstance(target_modules, Sequence) or not all(
        isinstance(t, str) for t in target_modules
    ):
        raise TypeError(
            "target_modules must be a regex str, 'all-linear' or a list of str, "
            f"got {target_modules!r}"
        )
    return any(name == t or name.endswith("." + t) for t in target_modules)


def find_modules(
    model: nn.Module,
    target_modules: str | Sequence[str],
    *,
    module_type: type[nn.Module] | tuple[type[nn.Module], ...] = nn.Linear,
) -> list[str]:
    """Qualified names of the submodules of type ``module_type`` that ``target_modules`` selects.

    A module is matched by its own name only: a matching container does not select its
    children. Names come in ``model.named_modules()`` order.
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    if target_modules == "all-linear" and module_type is not nn.Linear:
        raise ValueError("target_modules='all-linear' only selects nn.Linear modules")
    return [
        name
        for name, module in model.named_modules()
        if name and isinstance(module, module_type) and module_matches(name, target_modules)
    ]


def replace_modules(
    model: nn.Module,
    target_modules: str | Sequence[str],
    factory: Callable[[str, nn.Module], nn.Module],
    *,
    module_type: type[nn.Module] | tuple[type[nn.Module], ...] = nn.Linear,
) -> list[str]:
    """Replace each selected submodule ``m`` named ``name`` by ``factory(name, m)``, in place.

    Returns the replaced names. The matches are collected before anything is replaced, so a
    factory that wraps the old module (``LoRALinear(base_layer=m)``) is not matched again.

    Raises:
        ValueError: if nothing matched; the message lists the model's candidate names, so a
            typo in ``target_modules`` is not a silent no-op (peft raises here too).
    """
    names = find_modules(model, target_modules, module_type=module_type)
    if not names:
        kinds = module_type if isinstance(module_type, tuple) else (module_type,)
        candidates = [n for n, m in model.named_modules() if n and isinstance(m, kinds)]
        shown = ", ".join(candidates[:12]) + (" ..." if len(candidates) > 12 else "")
        raise ValueError(
            f"target_modules={target_modules!r} matched no "
            f"{'/'.join(k.__name__ for k in kinds)} module; candidates: {shown or 'none'}"
        )
    for name in names:
        new = factory(name, model.get_submodule(name))
        if not isinstance(new, nn.Module):
            raise TypeError(f"factory must return an nn.Module, got {type(new).__name__}")
        model.set_submodule(name, new)
    return names
