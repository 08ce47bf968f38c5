"""tutorial_code.distributed and the training loop under torch.distributed (gloo, 2 CPU processes).

Reference: the same loop in one process. Two DDP processes with a per-rank batch of ``b`` must
end with the parameters one process reaches with batch ``2 b`` (DDP averages the two ranks'
gradients, and each rank's loss is a mean over its rows), and gradient accumulation over two
micro-batches must equal one batch of twice the size. The processes are started with
``torch.multiprocessing`` and the environment variables ``torchrun`` would set, so the code
path is the one a reader runs with ``torchrun --nproc_per_node=2``.
"""

from __future__ import annotations

import os
import socket
from pathlib import Path

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from torch.nn.parallel import DistributedDataParallel

from tutorial_code.distributed import (
    DistributedInfo,
    all_reduce_mean,
    collective_device,
    distributed_info,
    init_distributed,
    is_main_process,
    shard,
    training_device,
)
from tutorial_code.model import GPTConfig, GPTModel
from tutorial_code.training import param_groups, train, train_step

CFG = GPTConfig(vocab_size=24, context_length=8, emb_dim=16, n_heads=2, n_layers=2, drop_rate=0.0)
STEPS = 4
GLOBAL_BATCH = 8
IDS = torch.arange(600) % CFG.vocab_size


def fresh_model() -> GPTModel:
    torch.manual_seed(0)
    return GPTModel(CFG)


def run(model: torch.nn.Module, *, grad_accum_steps: int = 1, data_seed: int = 7) -> list[float]:
    optimizer = torch.optim.AdamW(param_groups(model, weight_decay=0.1), lr=3e-3)
    log = train(
        model,
        optimizer,
        IDS,
        total_steps=STEPS,
        batch_size=GLOBAL_BATCH,
        context_length=CFG.context_length,
        max_norm=1.0,
        generator=torch.Generator().manual_seed(data_seed),  # the same batches on every rank
        grad_accum_steps=grad_accum_steps,
    )
    return log.losses


def _worker(
    rank: int, world_size: int, port: int, out: str, grad_accum_steps: int, seed_per_rank: bool
) -> None:
    os.environ.update(
        RANK=str(rank),
        LOCAL_RANK=str(rank),
        WORLD_SIZE=str(world_size),
        MASTER_ADDR="127.0.0.1",
        MASTER_PORT=str(port),
    )
    torch.set_num_threads(1)
    info = init_distributed()
    assert info == DistributedInfo(rank, world_size, rank) and distributed_info() == info
    model = DistributedDataParallel(fresh_model())
    data_seed = 7 + rank if seed_per_rank else 7  # pitfall 1: a different seed per rank
    losses = run(model, grad_accum_steps=grad_accum_steps, data_seed=data_seed)
    mean_rank = all_reduce_mean(float(rank))
    main_share = all_reduce_mean(float(is_main_process()))  # pitfall 4: one main process
    if is_main_process():  # only rank 0 saves
        torch.save(
            {
                "state": model.module.state_dict(),
                "losses": losses,
                "mean_rank": mean_rank,
                "main_share": main_share,
            },
            out,
        )
    dist.destroy_process_group()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run_ddp(tmp_path: Path, grad_accum_steps: int = 1, seed_per_rank: bool = False) -> dict:
    out = tmp_path / f"rank0-accum{grad_accum_steps}-{seed_per_rank}.pt"
    mp.start_processes(
        _worker,
        args=(2, free_port(), str(out), grad_accum_steps, seed_per_rank),
        nprocs=2,
        join=True,
        start_method="fork",
    )
    return torch.load(out)


@pytest.fixture(scope="module")
def single_process() -> tuple[dict, list[float]]:
    torch.set_num_threads(1)
    model = fresh_model()
    losses = run(model)
    return model.state_dict(), losses


def assert_same_parameters(a: dict, b: dict) -> None:
    assert a.keys() == b.keys()
    for name in a:
        torch.testing.assert_close(a[name], b[name], rtol=1e-5, atol=1e-6, msg=name)


def test_two_ddp_processes_equal_one_process_with_twice_the_batch(tmp_path, single_process) -> None:
    state, losses = single_process
    result = run_ddp(tmp_path)
    assert result["mean_rank"] == 0.5  # all_reduce_mean really averaged over both ranks
    assert result["main_share"] == 0.5  # exactly one of the two ranks is the main process
    assert_same_parameters(result["state"], state)
    assert result["losses"] == pytest.approx(losses, rel=1e-5)  # logged loss: mean over ranks


def test_ddp_with_gradient_accumulation_uses_no_sync_and_still_matches(tmp_path, single_process) -> None:
    state, losses = single_process
    result = run_ddp(tmp_path, grad_accum_steps=2)
    assert_same_parameters(result["state"], state)
    assert result["losses"] == pytest.approx(losses, rel=1e-5)


def test_a_different_data_seed_per_rank_breaks_the_equivalence(tmp_path, single_process) -> None:
    """Appendix pitfall 1: DDP still runs, but on a batch no single process ever saw."""
    state, _ = single_process
    result = run_ddp(tmp_path, seed_per_rank=True)
    largest = max((result["state"][k] - state[k]).abs().max().item() for k in state)
    assert largest > 1e-3  # far beyond the float32 rounding of the equivalence test (< 1e-5)


def test_a_larger_global_batch_is_a_different_optimisation(single_process) -> None:
    """Appendix pitfall 5: keeping the per-process batch while adding processes doubles the
    global batch; the run is then not the single-process run (losses and weights differ)."""
    state, losses = single_process
    model = fresh_model()
    optimizer = torch.optim.AdamW(param_groups(model, weight_decay=0.1), lr=3e-3)
    doubled = train(
        model,
        optimizer,
        IDS,
        total_steps=STEPS,
        batch_size=2 * GLOBAL_BATCH,
        context_length=CFG.context_length,
        max_norm=1.0,
        generator=torch.Generator().manual_seed(7),
    ).losses
    assert doubled[1:] != pytest.approx(losses[1:], rel=1e-3)
    largest = max((model.state_dict()[k] - state[k]).abs().max().item() for k in state)
    assert largest > 1e-3


def test_train_step_moves_the_batch_to_the_models_device() -> None:
    """On a GPU the model lives on cuda:LOCAL_RANK and the batches arrive on the CPU; the
    "meta" device stands in for the GPU here (any non-CPU device shows the move)."""
    seen: list[torch.device] = []
    model = torch.nn.Linear(2, 2, device="meta")

    def loss_fn(m: torch.nn.Module, x: torch.Tensor) -> torch.Tensor:
        seen.append(x.device)
        return torch.zeros((), requires_grad=True)

    train_step(model, torch.optim.SGD(model.parameters(), lr=0.1), torch.ones(3, 2), loss_fn=loss_fn)
    assert seen == [torch.device("meta")]


def test_devices_for_training_and_collectives(monkeypatch) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert training_device(DistributedInfo(1, 2, 1)) == torch.device("cpu")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert training_device(DistributedInfo(3, 4, 1)) == torch.device("cuda", 1)  # LOCAL_RANK
    assert collective_device("gloo") == torch.device("cpu")
    monkeypatch.setattr(torch.cuda, "current_device", lambda: 1)
    assert collective_device("nccl") == torch.device("cuda", 1)  # NCCL reduces CUDA tensors
    with pytest.raises(TypeError, match="backend must be a str"):
        collective_device(None)


def test_gradient_accumulation_equals_one_batch_of_twice_the_size(single_process) -> None:
    state, losses = single_process
    model = fresh_model()
    accumulated = run(model, grad_accum_steps=2)
    assert_same_parameters(model.state_dict(), state)
    assert accumulated == pytest.approx(losses, rel=1e-5)


def test_without_torchrun_everything_is_rank_zero_of_one(monkeypatch) -> None:
    for name in ("RANK", "WORLD_SIZE"):
        monkeypatch.delenv(name, raising=False)
    assert init_distributed() == DistributedInfo() == distributed_info()
    assert is_main_process() and all_reduce_mean(3.0) == 3.0


def test_shard_takes_contiguous_rows_and_rejects_uneven_batches() -> None:
    x, y = torch.arange(8).view(4, 2), torch.arange(4)
    got = shard((x, y), DistributedInfo(rank=1, world_size=2))
    assert got[0].tolist() == [[4, 5], [6, 7]] and got[1].tolist() == [2, 3]
    with pytest.raises(ValueError, match="does not split evenly over world_size=3"):
        shard((x,), DistributedInfo(rank=0, world_size=3))
    with pytest.raises(ValueError, match="rank must be an int in"):
        shard((x,), DistributedInfo(rank=2, world_size=2))


def test_accumulation_needs_divisible_batches() -> None:
    model = fresh_model()
    with pytest.raises(ValueError, match="divisible by grad_accum_steps=3"):
        train(
            model,
            torch.optim.SGD(model.parameters(), lr=0.1),
            IDS,
            total_steps=1,
            batch_size=4,
            context_length=8,
            grad_accum_steps=3,
        )


def test_the_appendix_script_under_torchrun(tmp_path) -> None:
    """A short slice of the run the appendix prints, launched exactly as the reader would;
    the stored full run must show the same agreement."""
    import json
    import subprocess
    import sys

    root = Path(__file__).resolve().parents[2]
    out = tmp_path / "ddp.json"
    subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2",
         "--master_port", str(free_port()), str(root / "experiments" / "ddp.py"),
         "--steps", "4", "--output", str(out)],
        check=True, capture_output=True, timeout=120, cwd=root,
    )
    short = json.loads(out.read_text())
    stored = json.loads((root / "experiments" / "results" / "ddp.json").read_text())
    for run in (short, stored):
        assert run["world_size"] == 2 and run["backend"] == "gloo"
        assert run["ddp_losses"] == pytest.approx(run["single_process_losses"], rel=1e-5)
        assert run["max_abs_parameter_difference"] < 1e-5
    # same model, seeds and first batch: the first loss (before any update) is the stored one
    assert short["ddp_losses"][0] == pytest.approx(stored["ddp_losses"][0], rel=1e-5)
