"""tutorial_code.training: the loss, AdamW parameter groups, the step and the loop.

References: cross-entropy written out with ``log_softmax`` and ``gather``; AdamW's decoupled
weight decay by hand (a zero gradient leaves ``p * (1 - lr * wd)``); the same loop run twice
from the same seed; a plain PyTorch loop for the pluggable loss.
"""

from __future__ import annotations

import pytest
import torch
from torch import nn

from tutorial_code.model import GPTConfig, GPTModel
from tutorial_code.training import (
    TrainingLog,
    estimate_loss,
    lm_loss,
    param_groups,
    train,
    train_step,
)

CFG = GPTConfig(vocab_size=20, context_length=8, emb_dim=16, n_heads=2, n_layers=2, drop_rate=0.0)


def model(seed: int = 0) -> GPTModel:
    torch.manual_seed(seed)
    return GPTModel(CFG)


def test_lm_loss_is_mean_negative_log_likelihood() -> None:
    m = model()
    x = torch.randint(0, 20, (3, 8), generator=torch.Generator().manual_seed(0))
    y = torch.randint(0, 20, (3, 8), generator=torch.Generator().manual_seed(1))
    logp = torch.log_softmax(m(x), dim=-1).gather(-1, y[..., None])[..., 0]
    assert lm_loss(m, x, y).item() == pytest.approx(-logp.mean().item(), abs=1e-6)
    with pytest.raises(ValueError, match="must have the same shape"):
        lm_loss(m, x, y[:, :4])


def test_param_groups_follow_the_documented_convention() -> None:
    m = model()
    decayed, rest = param_groups(m, weight_decay=0.1)
    linear_weights = {id(mod.weight) for mod in m.modules() if isinstance(mod, nn.Linear)}
    assert {id(p) for p in decayed["params"]} == linear_weights
    assert decayed["weight_decay"] == 0.1 and rest["weight_decay"] == 0.0
    everything = [id(p) for p in m.parameters()]
    assert sorted(id(p) for p in decayed["params"] + rest["params"]) == sorted(everything)
    names = {id(p): n for n, p in m.named_parameters()}
    assert {names[id(p)] for p in rest["params"]} >= {"tok_emb.weight", "pos_emb.weight", "final_norm.weight"}
    assert all(p.dim() == 1 or names[id(p)].endswith("emb.weight") for p in rest["params"])
    with_emb, _ = param_groups(m, weight_decay=0.1, decay_embeddings=True)
    assert len(with_emb["params"]) == len(decayed["params"]) + 2
    m.tok_emb.weight.requires_grad_(False)
    assert all(p is not m.tok_emb.weight for g in param_groups(m, weight_decay=0.1) for p in g["params"])
    with pytest.raises(ValueError, match="weight_decay must be >= 0.0"):
        param_groups(m, weight_decay=-1)


def test_adamw_decays_only_the_decayed_group() -> None:
    """With zero gradients AdamW's update is pure decoupled decay: p <- p (1 - lr wd)."""
    m = model()
    opt = torch.optim.AdamW(param_groups(m, weight_decay=0.5), lr=0.1)
    before = {n: p.detach().clone() for n, p in m.named_parameters()}
    for p in m.parameters():
        p.grad = torch.zeros_like(p)
    opt.step()
    after = dict(m.named_parameters())
    torch.testing.assert_close(after["trf_blocks.0.ff.fc1.weight"], before["trf_blocks.0.ff.fc1.weight"] * 0.95)
    for name in ("trf_blocks.0.ff.fc1.bias", "trf_blocks.0.norm1.weight", "tok_emb.weight"):
        assert torch.equal(after[name], before[name]), name


def test_train_is_reproducible_and_logs_every_step() -> None:
    ids = torch.arange(400) % CFG.vocab_size
    logs = []
    for _ in range(2):
        m = model(1)
        opt = torch.optim.AdamW(param_groups(m, weight_decay=0.1), lr=3e-3)
        logs.append(
            train(m, opt, ids, total_steps=15, batch_size=4, context_length=8, max_norm=1.0,
                  generator=torch.Generator().manual_seed(0))
        )
    assert isinstance(logs[0], TrainingLog) and len(logs[0]) == 15
    assert logs[0].losses == logs[1].losses
    assert logs[0].losses[-1] < logs[0].losses[0]
    assert all(c <= 1.0 + 1e-6 for c in logs[0].clipped_grad_norms)


def test_pluggable_loss_and_batches_match_a_plain_loop() -> None:
    """train(get_batch=..., loss_fn=...) does what a hand-written SGD loop does."""
    x = torch.randint(0, 20, (4, 8), generator=torch.Generator().manual_seed(3))

    def loss_fn(m: nn.Module, inputs: torch.Tensor) -> torch.Tensor:
        return m(inputs)[..., 0].pow(2).mean()  # push logit 0 towards 0

    a, b = model(2), model(2)
    seen = []
    train(a, torch.optim.SGD(a.parameters(), lr=0.05), total_steps=5, get_batch=lambda: (x,),
          loss_fn=loss_fn, callback=lambda step, stats: seen.append(step))
    opt = torch.optim.SGD(b.parameters(), lr=0.05)
    for _ in range(5):
        opt.zero_grad()
        loss_fn(b, x).backward()
        opt.step()
    for pa, pb in zip(a.parameters(), b.parameters()):
        torch.testing.assert_close(pa, pb)
    assert seen == [0, 1, 2, 3, 4]


def test_bad_arguments() -> None:
    m = model()
    opt = torch.optim.SGD(m.parameters(), lr=0.1)
    ids = torch.arange(50) % 20
    with pytest.raises(ValueError, match="exactly one of train_ids"):
        train(m, opt, total_steps=1)
    with pytest.raises(ValueError, match="exactly one of train_ids"):
        train(m, opt, ids, total_steps=1, get_batch=lambda: (ids,))
    with pytest.raises(TypeError, match="batch_size must be an int"):
        train(m, opt, ids, total_steps=1, context_length=4)
    with pytest.raises(ValueError, match="loss_fn must return a scalar tensor"):
        train_step(m, opt, ids[None, :8], loss_fn=lambda mod, x: mod(x))
    with pytest.raises(TypeError, match="needs a batch"):
        train_step(m, opt)


def test_estimate_loss_is_repeatable_and_restores_training_mode() -> None:
    m = model().train()
    ids = torch.arange(300) % 20
    a = estimate_loss(m, ids, batch_size=4, context_length=8, n_batches=3)
    assert m.training and a == estimate_loss(m, ids, batch_size=4, context_length=8, n_batches=3)
    with pytest.raises(ValueError, match="n_batches must be an int >= 1"):
        estimate_loss(m, ids, batch_size=4, context_length=8, n_batches=0)
