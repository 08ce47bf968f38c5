"""The alignment testbed's checkpoints: a pre-trained base model and its SFT model.

Chapters 7-10 start from the same two small models, shipped with the package as safetensors
files (each well under 4 MB) beside ``manifest.json``, which records for each one its file,
size, SHA-256, model configuration and the recipe that made it
(:mod:`tutorial_code.checkpoints.recipes`). ``experiments/alignment_checkpoints.py`` rebuilds
both from scratch, deterministically on one CPU thread.

>>> from tutorial_code.checkpoints import load_checkpoint
>>> policy = load_checkpoint("sft")   # a GPTModel in eval mode, hash verified

* ``"base"``: pre-trained on plain text of one- and two-digit sums
  (:func:`tutorial_code.task.pretraining_text`): it knows the notation, not the task's
  template; the starting point of pure-RL ("R1-Zero"-style) experiments.
* ``"sft"``: the base model fine-tuned on a fixed set of task examples with the loss on
  completion tokens only: the policy and reference model of the alignment chapters.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from pathlib import Path
from typing import Any

from tutorial_code.checks import check_choice, check_module
from tutorial_code.model import GPTConfig, GPTModel

__all__ = [
    "CHECKPOINT_DIR",
    "CHECKPOINT_NAMES",
    "checkpoint_info",
    "load_checkpoint",
    "read_manifest",
    "save_checkpoint",
    "sha256_file",
]

#: Where the shipped files live (inside the installed package).
CHECKPOINT_DIR = Path(__file__).resolve().parent
CHECKPOINT_NAMES = ("base", "sft")
MANIFEST = "manifest.json"
#: Largest checkpoint file the package ships.
MAX_BYTES = 4 * 1024 * 1024


def sha256_file(path: str | Path) -> str:
    """The hex SHA-256 of a file's bytes."""
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def read_manifest(directory: str | Path = CHECKPOINT_DIR) -> dict[str, Any]:
    """The parsed ``manifest.json`` of ``directory`` (``{}`` if there is none yet)."""
    path = Path(directory) / MANIFEST
    if not path.exists():
        return {}
    return json.loads(path.read_text(encoding="utf-8"))


def checkpoint_info(name: str, directory: str | Path = CHECKPOINT_DIR) -> dict[str, Any]:
    """The manifest entry of checkpoint ``name``: file, bytes, sha256, config, recipe."""
    check_choice("name", name, CHECKPOINT_NAMES)
    manifest = read_manifest(directory)
    if name not in manifest:
        raise FileNotFoundError(
            f"no checkpoint {name!r} in {Path(directory) / MANIFEST}; rebuild with "
            "`python experiments/alignment_checkpoints.py`"
        )
    return manifest[name]


def load_checkpoint(name: str, *, directory: str | Path = CHECKPOINT_DIR) -> GPTModel:
    """Load checkpoint ``name`` (``"base"`` or ``"sft"``) as a :class:`GPTModel` in eval mode.

    The file's SHA-256 must equal the manifest's (a damaged or half-rebuilt file raises
    ``RuntimeError``); the model is built from the manifest's configuration and gets every
    tensor of the file (strict loading).
    """
    from safetensors.torch import load_file

    info = checkpoint_info(name, directory)
    path = Path(directory) / info["file"]
    digest = sha256_file(path)
    if digest != info["sha256"]:
        raise RuntimeError(
            f"{path} has sha256 {digest}, the manifest says {info['sha256']}: the file is "
            "damaged or was rebuilt without updating the manifest"
        )
    model = GPTModel(GPTConfig(**info["config"]))
    model.load_state_dict(load_file(path), strict=True)
    return model.eval()


def save_checkpoint(
    model: GPTModel,
    name: str,
    *,
    recipe: dict[str, Any],
    directory: str | Path = CHECKPOINT_DIR,
) -> dict[str, Any]:
    """Write ``<name>.safetensors`` and its manifest entry; return the entry.

    The bytes depend only on the weights (no time stamp), so an identical model gives an
    identical file and hash. ``recipe`` (JSON-serialisable) records how the model was made.
    """
    from safetensors.torch import save_file

    check_choice("name", name, CHECKPOINT_NAMES)
    check_module("model", model, GPTModel)
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{name}.safetensors"
    tensors = {k: v.detach().contiguous().clone() for k, v in model.state_dict().items()}
    save_file(tensors, str(path))
    size = path.stat().st_size
    if size > MAX_BYTES:
        raise ValueError(f"{path} has {size} bytes, more than the {MAX_BYTES} the book ships")
    entry = {
        "file": path.name,
        "bytes": size,
        "sha256": sha256_file(path),
        "parameters": sum(t.numel() for t in tensors.values()),
        "dtype": str(next(iter(tensors.values())).dtype).removeprefix("torch."),
        "config": dataclasses.asdict(model.cfg),
        "recipe": recipe,
    }
    manifest = read_manifest(directory)
    manifest[name] = entry
    text = json.dumps(manifest, indent=2, sort_keys=True) + "\n"
    (directory / MANIFEST).write_text(text, encoding="utf-8")
    return entry
