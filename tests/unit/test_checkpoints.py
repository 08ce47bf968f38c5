"""Tests for tutorial_code.checkpoints: the shipped files, their manifest and their recipes."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch

from tutorial_code.checkpoints import (
    CHECKPOINT_DIR,
    CHECKPOINT_NAMES,
    checkpoint_info,
    load_checkpoint,
    read_manifest,
    save_checkpoint,
    sha256_file,
)
from tutorial_code.checkpoints.recipes import (
    BASE_RECIPE,
    MODEL_CONFIG,
    SFT_RECIPE,
    finetune_sft,
    pretrain_base,
    recipe_dict,
    sft_examples,
)
from tutorial_code.model import GPTModel

ROOT = Path(__file__).resolve().parents[2]
RESULTS = json.loads(
    (ROOT / "experiments" / "results" / "alignment_checkpoints.json").read_text(encoding="utf-8")
)


@pytest.mark.parametrize("name", CHECKPOINT_NAMES)
def test_manifest_hashes_sizes_and_configs_match_the_files(name: str) -> None:
    """Reference: hashlib's SHA-256 of the shipped bytes and the file size on disk."""
    info = checkpoint_info(name)
    path = CHECKPOINT_DIR / info["file"]
    assert sha256_file(path) == info["sha256"]
    assert path.stat().st_size == info["bytes"] <= 4 * 1024 * 1024
    assert info["config"] == RESULTS["model_config"]
    assert info["sha256"] == RESULTS["checkpoints"][name]["sha256"]
    model = load_checkpoint(name)
    assert not model.training
    assert sum(p.numel() for p in model.parameters()) == info["parameters"]


def test_manifest_records_the_recipes_of_the_code() -> None:
    """The recipe in the manifest is the one the package would run now."""
    manifest = read_manifest()
    assert manifest["base"]["recipe"] == {"pretrain": recipe_dict(BASE_RECIPE)}
    assert manifest["sft"]["recipe"] == {
        "pretrain": recipe_dict(BASE_RECIPE),
        "sft": recipe_dict(SFT_RECIPE),
    }
    assert GPTModel(MODEL_CONFIG).cfg.__dict__ == manifest["sft"]["config"]


def test_a_damaged_file_is_refused(tmp_path: Path) -> None:
    shutil.copy(CHECKPOINT_DIR / checkpoint_info("base")["file"], tmp_path)
    only_base = {"base": read_manifest()["base"]}
    (tmp_path / "manifest.json").write_text(json.dumps(only_base), encoding="utf-8")
    path = tmp_path / checkpoint_info("base")["file"]
    load_checkpoint("base", directory=tmp_path)  # intact copy loads
    data = bytearray(path.read_bytes())
    data[-1] ^= 1
    path.write_bytes(bytes(data))
    with pytest.raises(RuntimeError, match="damaged"):
        load_checkpoint("base", directory=tmp_path)
    with pytest.raises(FileNotFoundError, match="no checkpoint 'sft'"):
        load_checkpoint("sft", directory=tmp_path)
    with pytest.raises(ValueError, match="name must be one of"):
        load_checkpoint("rlhf")


def test_save_is_byte_identical_for_identical_weights(tmp_path: Path) -> None:
    """Saving the same weights twice gives the same bytes, so a rebuild can be checked by
    hash; the round trip restores every tensor exactly."""
    model = load_checkpoint("sft")
    first = save_checkpoint(model, "sft", recipe={"x": 1}, directory=tmp_path / "a")
    second = save_checkpoint(model, "sft", recipe={"x": 1}, directory=tmp_path / "b")
    assert first["sha256"] == second["sha256"] == checkpoint_info("sft")["sha256"]
    again = load_checkpoint("sft", directory=tmp_path / "a")
    for (k, v), (k2, v2) in zip(model.state_dict().items(), again.state_dict().items()):
        assert k == k2 and torch.equal(v, v2)


def test_pretraining_replays_the_recorded_first_losses() -> None:
    """Reference: the losses recorded when the shipped base model was built."""
    torch.set_num_threads(1)
    _, log = pretrain_base(BASE_RECIPE, steps=5)
    assert log.losses == pytest.approx(RESULTS["pretrain_losses"][:5], abs=1e-4)


def test_sft_replays_the_recorded_first_losses_from_the_shipped_base() -> None:
    """Reference: the SFT losses recorded when the shipped SFT model was built (it started
    from exactly the shipped base weights)."""
    torch.set_num_threads(1)
    model = load_checkpoint("base")
    log = finetune_sft(model, SFT_RECIPE, steps=5)
    assert log.losses == pytest.approx(RESULTS["sft_losses"][:5], abs=1e-4)


def test_sft_examples_are_fixed_and_mix_both_kinds_of_completion() -> None:
    prompts, completions = sft_examples()
    assert (prompts, completions) == sft_examples()
    assert len(prompts) == SFT_RECIPE.n_examples == len(set(prompts))
    traced = sum(not c.startswith("|") for c in completions) / len(completions)
    assert abs(traced - SFT_RECIPE.trace_fraction) < 0.03


def test_finetune_sft_on_given_examples_equals_the_recipe_set_when_they_coincide() -> None:
    """Reference: the recipe's own run. Passing the recipe's set as ``examples`` changes
    nothing (same optimizer, same batch order); mismatched examples are rejected."""
    from tutorial_code.checkpoints.recipes import SFT_RECIPE, finetune_sft, sft_examples

    plain = finetune_sft(load_checkpoint("base"), steps=3).losses
    given = finetune_sft(load_checkpoint("base"), steps=3, examples=sft_examples(SFT_RECIPE)).losses
    assert given == plain
    with pytest.raises(ValueError, match="examples"):
        finetune_sft(load_checkpoint("base"), steps=1, examples=(["001+002="], []))
