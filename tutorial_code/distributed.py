"""Running the book's training loop on several processes with ``torch.distributed``.

The book's loop (:func:`tutorial_code.training.train`) runs unchanged under ``torchrun``:
this module holds the few calls that differ, all of them PyTorch's own
(``torch.distributed`` and ``DistributedDataParallel``), never a home-made replacement.

* :func:`init_distributed` reads the variables ``torchrun`` sets (``RANK``, ``WORLD_SIZE``,
  ``LOCAL_RANK``, ``MASTER_ADDR``, ``MASTER_PORT``) and starts the process group: ``gloo`` on
  CPU, ``nccl`` when a GPU is there. Without them it does nothing, and every helper below
  behaves as in a single process (rank 0 of 1).
* Data parallelism (DDP; Li et al., 2020, "PyTorch Distributed: Experiences on Accelerating
  Data Parallel Training"): every rank holds the whole model, draws the *same* global batch
  (same data seed on every rank) and keeps its own contiguous slice (:func:`shard`); the
  backward pass averages the gradients over ranks (an all-reduce), so every rank takes the
  same optimizer step as one process would on the whole global batch.
* :func:`all_reduce_mean` averages a logged number over ranks; :func:`is_main_process`
  tells rank 0, the only one that prints and saves.

Launch: ``torchrun --nproc_per_node=N script.py`` (one process per GPU, or per CPU core for
testing; see the appendix).
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch import nn

from tutorial_code.checks import check_int

__all__ = [
    "DistributedInfo",
    "all_reduce_mean",
    "collective_device",
    "distributed_info",
    "init_distributed",
    "is_main_process",
    "maybe_no_sync",
    "shard",
    "training_device",
]


@dataclass(frozen=True)
class DistributedInfo:
    """Where this process sits: ``rank`` in ``[0, world_size)``; ``local_rank`` on its node."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def is_distributed(self) -> bool:
        return self.world_size > 1


def distributed_info() -> DistributedInfo:
    """The running process group's rank and size (rank 0 of 1 when none is running)."""
    if dist.is_available() and dist.is_initialized():
        local = int(os.environ.get("LOCAL_RANK", dist.get_rank()))
        return DistributedInfo(dist.get_rank(), dist.get_world_size(), local)
    return DistributedInfo()


def init_distributed(backend: str | None = None) -> DistributedInfo:
    """Start the process group from ``torchrun``'s environment; a no-op without it.

    ``backend`` defaults to ``"nccl"`` when CUDA is available and ``"gloo"`` otherwise (the
    CPU backend). On a GPU, each process uses the device ``cuda:LOCAL_RANK``.
    """
    if "RANK" not in os.environ or "WORLD_SIZE" not in os.environ:
        return DistributedInfo()
    if not (dist.is_available() and dist.is_initialized()):
        backend = backend or ("nccl" if torch.cuda.is_available() else "gloo")
        if backend == "nccl":
            torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", 0)))
        dist.init_process_group(backend=backend)
    return distributed_info()


def is_main_process() -> bool:
    """True on rank 0 (and in a single process): the process that logs and saves."""
    return distributed_info().rank == 0


def shard(batch: tuple[torch.Tensor, ...], info: DistributedInfo) -> tuple[torch.Tensor, ...]:
    """This rank's contiguous slice of a global batch: rows ``[r b, (r + 1) b)`` of each tensor,
    with ``b = B / world_size`` (``B`` must be divisible by the world size)."""
    _check_world(info)
    if not batch:
        raise ValueError("batch must hold at least one tensor")
    size = batch[0].shape[0]
    if any(t.shape[0] != size for t in batch):
        rows = [t.shape[0] for t in batch]
        raise ValueError(f"every tensor of batch must have {size} rows, got {rows}")
    if size % info.world_size:
        raise ValueError(
            f"the global batch of {size} rows does not split evenly over world_size="
            f"{info.world_size} processes"
        )
    per_rank = size // info.world_size
    start = info.rank * per_rank
    return tuple(t[start : start + per_rank] for t in batch)


def training_device(info: DistributedInfo | None = None) -> torch.device:
    """The device this process trains on: ``cuda:LOCAL_RANK`` when CUDA is available (one GPU
    per process, as ``torchrun --nproc_per_node=<GPUs>`` starts them), the CPU otherwise.

    Move the model there before wrapping it:
    ``DistributedDataParallel(model.to(device), device_ids=[device.index])`` on a GPU,
    ``DistributedDataParallel(model)`` on the CPU. :func:`tutorial_code.training.train_step`
    moves every batch to the model's device.
    """
    info = distributed_info() if info is None else info
    _check_world(info)
    if torch.cuda.is_available():
        return torch.device("cuda", info.local_rank)
    return torch.device("cpu")


def collective_device(backend: str) -> torch.device:
    """Where a tensor must live for ``backend``'s collectives: NCCL reduces CUDA tensors only
    (the current device, set by :func:`init_distributed`); gloo reduces CPU tensors."""
    if not isinstance(backend, str):
        raise TypeError(f"backend must be a str such as 'gloo' or 'nccl', got {backend!r}")
    if backend.lower() == "nccl":
        return torch.device("cuda", torch.cuda.current_device())
    return torch.device("cpu")


def all_reduce_mean(value: torch.Tensor | float) -> float:
    """The mean of ``value`` over all ranks (``value`` itself in a single process).

    The number is copied to the backend's device (:func:`collective_device`), so the same
    call works with gloo on CPUs and NCCL on GPUs.
    """
    tensor = torch.as_tensor(value, dtype=torch.float64).detach().clone().cpu()
    info = distributed_info()
    if info.is_distributed:
        tensor = tensor.to(collective_device(dist.get_backend()))
        dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
        tensor /= info.world_size
    return float(tensor)


@contextlib.contextmanager
def maybe_no_sync(model: nn.Module, skip_sync: bool) -> Iterator[None]:
    """``model.no_sync()`` if ``model`` is a ``DistributedDataParallel`` and ``skip_sync``.

    Inside it the backward pass accumulates gradients locally without the all-reduce; the
    last micro-batch of an accumulation runs outside it, and its all-reduce averages the
    accumulated sum (PyTorch's documented way to accumulate gradients with DDP).
    """
    if skip_sync and isinstance(model, nn.parallel.DistributedDataParallel):
        with model.no_sync():
            yield
    else:
        yield


def _check_world(info: DistributedInfo) -> None:
    check_int("world_size", info.world_size, low=1)
    check_int("rank", info.rank, low=0, high=info.world_size - 1)
