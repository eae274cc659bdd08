"""Several processes, one training: the process group, rank helpers and the reductions.

Without ``torchrun``'s variables every helper answers for one process (rank 0 of 1), so
the same code runs alone or under ``torchrun``."""

from __future__ import annotations

import datetime
import os
import time
from contextlib import contextmanager
from typing import Iterator

import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from .config import get_device

__all__ = [
    "LaunchError", "all_reduce_max", "is_main", "join_process_group", "launched",
    "main_first", "rank", "sum_over_ranks", "teardown", "unwrap", "world_size", "wrap",
]  # fmt: skip

# What ``torchrun`` sets for every process it starts, and a process group needs.
_RENDEZVOUS_VARIABLES = ("RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT")
HOW_TO_LAUNCH = (
    "run it under torchrun, which sets them all, e.g. "
    "torchrun --standalone --nproc_per_node=2 -m lenet_utils.train --recipe mnist"
)


class LaunchError(RuntimeError):
    """The process was started for a distributed run, but not in a way that can work."""


def launched() -> bool:
    """True when ``RANK`` or ``WORLD_SIZE`` is set: a process started as one of several."""
    return any(os.environ.get(v, "").strip() for v in ("RANK", "WORLD_SIZE"))


def _int_env(name: str) -> int:
    value = os.environ.get(name, "").strip()
    try:
        return int(value)
    except ValueError:
        raise LaunchError(
            f"{name}={value!r} is not a whole number; {HOW_TO_LAUNCH}"
        ) from None


def _check_environment() -> tuple[int, int, int]:
    """(rank, world size, local rank) from torchrun's variables, or a clear error."""
    missing = [v for v in _RENDEZVOUS_VARIABLES if not os.environ.get(v, "").strip()]
    if missing:
        given = [v for v in _RENDEZVOUS_VARIABLES if v not in missing]
        raise LaunchError(
            f"{' and '.join(given)} {'is' if len(given) == 1 else 'are'} set, so this "
            f"looks like one process of a distributed run, but {', '.join(missing)} "
            f"{'is' if len(missing) == 1 else 'are'} missing: {HOW_TO_LAUNCH}; or unset "
            f"{', '.join(given)} to train in a single process"
        )
    rank_, world = _int_env("RANK"), _int_env("WORLD_SIZE")
    local = _int_env("LOCAL_RANK") if os.environ.get("LOCAL_RANK") else rank_
    if world < 1 or not 0 <= rank_ < world:
        raise LaunchError(
            f"RANK={rank_} and WORLD_SIZE={world} do not fit (0 <= RANK < WORLD_SIZE); "
            + HOW_TO_LAUNCH
        )
    return rank_, world, local


def join_process_group(
    device: str | torch.device | None = None, timeout_s: float = 1800.0
) -> torch.device:
    """Join the process group under ``torchrun`` (NCCL on GPUs, else gloo) and return this
    process's device: ``cuda:LOCAL_RANK`` on GPUs. A collective that waits over
    ``timeout_s`` (e.g. for a dead rank) fails instead of hanging for ever."""
    if not launched():
        return get_device(device)
    rank_, world, local = _check_environment()
    device = get_device(device)
    if device.type == "cuda":
        if local >= torch.cuda.device_count():
            raise LaunchError(
                f"process {local} of this machine needs GPU cuda:{local}, but there "
                f"are {torch.cuda.device_count()} GPU(s): start at most that many "
                "processes per machine (--nproc_per_node)"
            )
        device = torch.device("cuda", local)
        torch.cuda.set_device(device)
    if not dist.is_initialized():
        backend = "nccl" if device.type == "cuda" else "gloo"
        timeout = datetime.timedelta(seconds=timeout_s)
        dist.init_process_group(backend, rank=rank_, world_size=world, timeout=timeout)
    return device


def teardown(wait: bool = True) -> None:
    """Leave the process group (if any), after a barrier with ``wait`` (so that none leaves
    while another still reduces; skip it after an error: a rank may be gone)."""
    if not is_distributed():
        return
    if wait:
        dist.barrier()
    # Why the pause: on torch 2.2 (the oldest we support) destroying the group joins gloo's
    # worker threads *holding* the GIL, so a worker still freeing the last collective's
    # tensors (which takes the GIL) waits for ever. Measured on two ranks: 8 hangs in 30
    # runs with neither barrier nor pause, 0 in 30 with both; the barrier alone is not
    # enough (its own work holds the last reduction). Sleeping releases the GIL, and the
    # workers finish first (tests/test_distributed.py tries 50 times).
    time.sleep(0.1)
    dist.destroy_process_group()


def is_distributed() -> bool:
    """True inside an initialised process group."""
    return dist.is_available() and dist.is_initialized()


def rank() -> int:
    """This process's rank (0 outside a process group)."""
    return dist.get_rank() if is_distributed() else 0


def world_size() -> int:
    """How many processes train together (1 outside a process group)."""
    return dist.get_world_size() if is_distributed() else 1


def is_main() -> bool:
    """True on rank 0: the one process that prints, records and checkpoints."""
    return rank() == 0


@contextmanager
def main_first(local: bool = True) -> Iterator[None]:
    """Run the block on rank 0 first (per machine if ``local``), then on the others: one
    process builds a cache (decoded images, a memory map), the others then read it."""
    wait, local_rank = is_distributed(), os.environ.get("LOCAL_RANK", "").strip()
    first = (int(local_rank) if local and local_rank and wait else rank()) == 0
    if wait and not first:
        dist.barrier()
    try:
        yield
    finally:  # even after an error, so that the others go on (and meet it themselves)
        if wait and first:
            dist.barrier()


def all_reduce_sum(tensor: torch.Tensor) -> torch.Tensor:
    """Sum ``tensor`` over the ranks, in place, and return it (in its own precision: use
    float64 or integers for exact counts)."""
    if is_distributed():
        dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
    return tensor


def sum_over_ranks(values: list, device: torch.device) -> list[float]:
    """The ranks' sums of ``values`` (numbers or 0-d tensors) as floats; in one process,
    the values themselves. float64, so counts up to 2**53 stay exact."""
    if not is_distributed():
        return [float(v) for v in values]
    where = device if device.type == "cuda" else torch.device("cpu")  # nccl: GPU only
    t = torch.stack([torch.as_tensor(v, dtype=torch.float64).to(where) for v in values])
    return all_reduce_sum(t).tolist()


def all_reduce_max(value: float, device: torch.device | str = "cpu") -> float:
    """The largest ``value`` over the ranks (e.g. the slowest rank's epoch time)."""
    if not is_distributed():
        return float(value)
    t = torch.tensor([float(value)], dtype=torch.float64, device=device)
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return float(t.item())


def wrap(model: nn.Module, device: torch.device) -> nn.Module:
    """``model`` in ``DistributedDataParallel`` inside a process group, else unchanged
    (DDP averages the gradients during the backward pass: every rank takes one step)."""
    if not is_distributed():
        return model
    ids = [device.index] if device.type == "cuda" else None
    return DistributedDataParallel(model.to(device), device_ids=ids)


def unwrap(model: nn.Module) -> nn.Module:
    """The model inside a ``DistributedDataParallel`` wrapper (or ``model`` itself)."""
    return model.module if isinstance(model, DistributedDataParallel) else model
