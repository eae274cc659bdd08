"""Checkpoints: what resuming after the last finished epoch needs, saved atomically, and
the checks that refuse another run's checkpoint (model, processes, schedule, settings)."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn

from .config import describe_path
from .distributed import is_main, sum_over_ranks, unwrap, world_size
from .files import atomic_write, check_writable

__all__ = ["History", "resume", "save_checkpoint"]

_AFRESH = "or give another checkpoint path (or delete this one) to start afresh"
# The optimizer's settings a resume must keep. A scheduler moves "lr" and "momentum"
# during the run; it keeps the settings they started from in the other keys.
_HYPERPARAMETERS = ("lr", "momentum", "dampening", "weight_decay", "nesterov", "betas")
_HYPERPARAMETERS += ("initial_lr", "max_lr", "min_lr", "max_momentum", "base_momentum")


@dataclass
class History:
    """One dict per epoch: ``epoch``, ``lr``, ``train_loss``, ``train_top1``, ``test_loss``,
    ``test_top1`` (and ``test_top5``), ``seconds`` (that epoch's training time)."""

    epochs: list[dict] = field(default_factory=list)

    def frame(self):
        """The history as a pandas DataFrame indexed by epoch."""
        import pandas as pd

        return pd.DataFrame(self.epochs).set_index("epoch")

    @property
    def train_seconds(self) -> float:
        """The training time of all epochs together (evaluations left out)."""
        return float(sum(e["seconds"] for e in self.epochs))

    @property
    def last(self) -> dict:
        """The last epoch's row."""
        return self.epochs[-1]


def resume(
    checkpoint: str | os.PathLike | None,
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    scheduler,
    settings: dict | None,
    device: torch.device,
) -> History:
    """The history so far: empty, or that of ``checkpoint`` if it exists (every rank
    loads it, and it is refused if only some ranks see it)."""
    if checkpoint is None:
        return History()
    if is_main():
        check_writable(checkpoint)  # now, not after the first epoch
    found = Path(checkpoint).exists()
    seen_by = sum_over_ranks([found], device)[0]  # how many ranks see the file
    if 0 < seen_by < world_size():  # some would resume, others start afresh: refuse
        raise RuntimeError(
            f"checkpoint {checkpoint} exists for {seen_by:.0f} of {world_size()} "
            "processes: put it on a file system that every machine sees, or remove it"
        )
    if not found:
        return History()
    history = load_checkpoint(checkpoint, model, optimizer, scheduler, settings)
    if is_main():
        where, done = describe_path(checkpoint), len(history.epochs)
        print(f"resumed from {where} after epoch {done}")
    return history


def _model_name(model: nn.Module) -> str:
    model = unwrap(model)
    return f"{type(model).__name__}({model.extra_repr()})"


def save_checkpoint(
    path: str | os.PathLike,
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    scheduler,
    history: History,
    settings: dict | None = None,
) -> None:
    """Save what resuming after the last finished epoch needs, atomically, with the model's
    description, the number of processes and ``settings`` (all checked on loading)."""
    sched = None
    if scheduler is not None:  # older torch keeps a bound method in it: not a weight
        sched = {k: v for k, v in scheduler.state_dict().items() if not callable(v)}
    state = {
        "model": unwrap(model).state_dict(),  # without DDP's "module." prefixes
        "optimizer": optimizer.state_dict(),
        "scheduler": sched,
        "history": history.epochs,
        "rng": torch.get_rng_state(),
        "model_name": _model_name(model),
        "world_size": world_size(),
        "settings": settings,
    }
    atomic_write(path, lambda f: torch.save(state, f))


def load_checkpoint(
    path: str | os.PathLike,
    model: nn.Module,
    optimizer: torch.optim.Optimizer | None = None,
    scheduler=None,
    settings: dict | None = None,
) -> History:
    """Restore a checkpoint of :func:`save_checkpoint` (``weights_only``: never pickled
    code) and return its history; another run's raises a ``ValueError`` naming why."""
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # unreadable, truncated, not a checkpoint
        raise _unreadable(path, err) from err
    needed = ("model", "optimizer", "scheduler", "history", "rng")
    missing = [k for k in needed if not isinstance(state, dict) or k not in state]
    if missing:  # it loads, but lacks what resuming needs
        raise ValueError(
            f"checkpoint {path} is not a complete checkpoint of this course (it has no "
            f"{', '.join(repr(k) for k in missing)}): delete it to start from scratch, "
            "or give another checkpoint path"
        )
    _check_same_run(path, state, model, optimizer, scheduler, settings)
    try:
        unwrap(model).load_state_dict(state["model"])
        if optimizer is not None:
            optimizer.load_state_dict(state["optimizer"])
        if scheduler is not None and state["scheduler"] is not None:
            scheduler.load_state_dict(state["scheduler"])
    except Exception as err:  # not a checkpoint, another model's weights
        raise _unreadable(path, err) from err
    torch.set_rng_state(state["rng"])
    return History(list(state["history"]))


def _unreadable(path, err: Exception) -> ValueError:
    first = str(err).strip().splitlines()[0][:160] if str(err).strip() else ""
    return ValueError(
        f"checkpoint {path} could not be loaded ({type(err).__name__}: {first}); "
        "delete it to start from scratch, or pass the model it was saved from"
    )


def _check_same_run(
    path, state: dict, model: nn.Module, optimizer, scheduler, settings
) -> None:
    """Refuse a checkpoint of another model, process count, schedule or settings."""
    saved, current = state.get("model_name"), _model_name(model)
    if saved is not None and saved != current:
        raise ValueError(
            f"checkpoint {path} was saved from another model, {saved}, but this run "
            f"trains {current}: resume it with the settings it was saved with, {_AFRESH}"
        )
    saved_world, world = int(state.get("world_size", 1)), world_size()
    if saved_world != world:
        how = f"under torchrun with {saved_world} processes in all"
        how = "without torchrun" if saved_world == 1 else how
        raise ValueError(
            f"checkpoint {path} was written by a run of {saved_world} process(es), but "
            f"this run has {world}: each process's shard of the data and the batches its "
            f"batch norm averages over depend on that number. Resume it {how}, {_AFRESH}"
        )
    saved = (state.get("scheduler") or {}).get("total_steps")
    steps = getattr(scheduler, "total_steps", None)
    if saved is not None and steps is not None and saved != steps:
        raise ValueError(
            f"checkpoint {path} belongs to a schedule of {saved} steps, but this run's "
            f"has {steps}: resume it with the epochs and batch size it was started with "
            f"(the one-cycle's length depends on both), {_AFRESH}"
        )
    pairs = [(state.get("settings"), settings)]
    if optimizer is not None:
        scheduled = scheduler is not None or state.get("scheduler") is not None
        saved = _optimizer_settings(state["optimizer"], scheduled)
        pairs.append((saved, _optimizer_settings(optimizer.state_dict(), scheduled)))
    for saved, now in pairs:
        changed = [k for k in saved or () if now and k in now and saved[k] != now[k]]
        if changed:
            what = ", ".join(f"{k} {saved[k]!r} (now {now[k]!r})" for k in changed)
            raise ValueError(
                f"checkpoint {path} was saved with {what}: resume it with the settings "
                f"it was started with, {_AFRESH}"
            )


def _optimizer_settings(optimizer_state: dict, scheduled: bool) -> dict:
    keys = [k for k in _HYPERPARAMETERS if not (scheduled and k in ("lr", "momentum"))]
    groups = optimizer_state.get("param_groups", [])
    return {
        k if len(groups) == 1 else f"{k} (group {i})": group[k]
        for i, group in enumerate(groups)
        for k in keys
        if k in group
    }
