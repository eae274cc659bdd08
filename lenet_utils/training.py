"""Training, in the shape of pytorch/examples' mnist: ``train_one_epoch``, ``evaluate``, ``fit``.

``fit`` takes any iterable of ``(images, labels)`` batches: a ``DataLoader`` or a
:class:`lenet_utils.pipeline.TensorLoader` whose tensors already sit on the GPU. It keeps a
per-epoch history (loss, top-1, and top-5 with more than 10 classes), prints one line per
epoch (with live progress bars unless ``LENET_PROGRESS=0``), uses mixed precision on CUDA,
and can save and resume a checkpoint after every epoch.

Under ``torchrun`` the same functions train with ``DistributedDataParallel``: they accept a
DDP-wrapped model, each process iterates over its own shard, and the sums behind every
figure are added up over the processes (:func:`lenet_utils.distributed.all_reduce_sum`), so
the history describes the whole dataset and is the same on every rank. Only rank 0 prints
and writes checkpoints.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable, Sequence

import torch
from torch import nn

from .config import describe_path, get_device, progress_bars, sync
from .distributed import all_reduce_max, all_reduce_sum, is_distributed, is_main
from .distributed import unwrap, world_size
from .files import atomic_write

__all__ = [
    "History",
    "accuracy",
    "evaluate",
    "fit",
    "load_checkpoint",
    "predict",
    "save_checkpoint",
    "sgd_one_cycle",
    "train_one_epoch",
]

Batches = Iterable[tuple[torch.Tensor, torch.Tensor]]


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
        return float(sum(e["seconds"] for e in self.epochs))

    @property
    def last(self) -> dict:
        return self.epochs[-1]


def accuracy(
    logits: torch.Tensor, labels: torch.Tensor, topk: Sequence[int] = (1,)
) -> torch.Tensor:
    """How many predictions are right, for each k in ``topk`` (counts, not rates), as a
    tensor on the logits' device: summing it over batches needs no GPU synchronisation."""
    k = min(max(topk), logits.shape[1])
    hit = logits.topk(k, dim=1).indices.eq(labels.unsqueeze(1))
    return torch.stack([hit[:, : min(kk, k)].any(dim=1).sum() for kk in topk])


def _topk_for(num_classes: int) -> tuple[int, ...]:
    return (1, 5) if num_classes > 10 else (1,)


def _amp_dtype(device: torch.device) -> torch.dtype:
    """bf16 on GPUs with native bf16 (Ampere and newer), fp16 on older ones (e.g. a T4)."""
    return (
        torch.bfloat16
        if torch.cuda.get_device_capability(device)[0] >= 8
        else torch.float16
    )


def _autocast(device: torch.device, amp: bool):
    """Mixed precision on CUDA; a no-op elsewhere (bf16 on the CPU trains LeNet-5 badly)."""
    if amp and device.type == "cuda":
        return torch.autocast("cuda", dtype=_amp_dtype(device))
    return torch.autocast(device.type, enabled=False)


def _scaler(device: torch.device, amp: bool):
    """A gradient scaler for fp16 training (bf16 needs none), else ``None``."""
    if not (amp and device.type == "cuda" and _amp_dtype(device) == torch.float16):
        return None
    # torch.amp.GradScaler is new in torch 2.3; torch 2.2 (the last release for Intel Macs)
    # has only torch.cuda.amp.GradScaler, which later releases deprecate.
    if not hasattr(torch.amp, "GradScaler"):
        return torch.cuda.amp.GradScaler()
    return torch.amp.GradScaler("cuda")


def _summed(values: list, device: torch.device) -> list[float]:
    """The ranks' sums of ``values`` (numbers or 0-d tensors) as floats; in one process,
    the values themselves. float64, so counts up to 2**53 stay exact."""
    if not is_distributed():
        return [float(v) for v in values]
    where = device if device.type == "cuda" else torch.device("cpu")  # nccl: GPU only
    t = torch.stack([torch.as_tensor(v, dtype=torch.float64).to(where) for v in values])
    return all_reduce_sum(t).tolist()


@torch.no_grad()
def evaluate(
    model: nn.Module,
    batches: Batches,
    device: torch.device | None = None,
    loss_fn: Callable = nn.functional.cross_entropy,
    amp: bool = True,
    flip_tta: bool = False,
) -> dict[str, float]:
    """Mean loss and top-1 (and top-5 with more than 10 classes) in percent. Under DDP each
    rank scores its shard and the figures are those of all the shards together.

    With ``flip_tta``, each image is scored by the mean of the softmax outputs for it and
    its mirror image (test-time augmentation); the loss is then that of the mean.
    """
    device = device or next(model.parameters()).device
    model = unwrap(model)  # every rank holds the same weights: no need for DDP here
    model.eval()
    total, loss_sum, correct = 0, 0.0, None
    for x, y in batches:
        x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
        with _autocast(device, amp):
            logits = model(x)
            if flip_tta:
                mirror = model(x.flip(-1)).float().softmax(1)
                probs = (logits.float().softmax(1) + mirror) / 2
                logits = probs.clamp_min(1e-12).log()  # log-probabilities: a true loss
        loss_sum = loss_sum + loss_fn(logits.float(), y, reduction="sum")
        hits = accuracy(logits, y, _topk_for(logits.shape[1]))
        correct = hits if correct is None else correct + hits
        total += y.numel()
    # Under DDP a rank's shard may be empty: it still takes part in the sums, with zeros.
    hits = [0, 0] if correct is None else [*correct, 0][:2]
    top5 = correct is not None and len(correct) > 1
    loss_sum, total, top1, top5_hits, top5 = _summed(
        [loss_sum, total, *hits, top5], device
    )
    if total == 0:
        raise ValueError("evaluate: the batches were empty")
    out = {"loss": loss_sum / total, "top1": 100.0 * top1 / total}
    if top5:
        out["top5"] = 100.0 * top5_hits / total
    return out


@torch.no_grad()
def predict(
    model: nn.Module,
    batches: Batches,
    device: torch.device | None = None,
    amp: bool = True,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Predicted classes and true labels for every sample, on the CPU."""
    device = device or next(model.parameters()).device
    model.eval()
    preds, labels = [], []
    for x, y in batches:
        with _autocast(device, amp):
            preds.append(model(x.to(device)).argmax(1).cpu())
        labels.append(y.cpu())
    return torch.cat(preds), torch.cat(labels)


def sgd_one_cycle(
    model: nn.Module,
    *,
    lr: float,
    epochs: int,
    steps_per_epoch: int,
    weight_decay: float = 5e-4,
    one_cycle: bool = True,
) -> tuple[torch.optim.SGD, torch.optim.lr_scheduler.OneCycleLR | None]:
    """The course's recipe: SGD with Nesterov momentum 0.9 and a one-cycle schedule that
    warms up to ``lr`` over 30% of the steps, then anneals. ``one_cycle=False`` gives a
    constant ``lr`` and no scheduler (``None``)."""
    optimizer = torch.optim.SGD(
        model.parameters(),
        lr=lr,
        momentum=0.9,
        nesterov=True,
        weight_decay=weight_decay,
    )
    if not one_cycle:
        return optimizer, None
    total = epochs * steps_per_epoch
    return optimizer, torch.optim.lr_scheduler.OneCycleLR(
        optimizer, lr, total_steps=total
    )


def _model_name(model: nn.Module) -> str:
    """A short description of the model a checkpoint belongs to (class and settings)."""
    model = unwrap(model)
    return f"{type(model).__name__}({model.extra_repr()})"


def save_checkpoint(
    path: str | os.PathLike, model: nn.Module, optimizer, scheduler, history: History
) -> None:
    """Save what resuming after the last finished epoch needs (written atomically), with
    the model's description and the number of processes, checked when it is loaded."""
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
    }
    atomic_write(path, lambda f: torch.save(state, f))


def _unreadable(path, err: Exception) -> ValueError:
    first = str(err).strip().splitlines()[0][:160] if str(err).strip() else ""
    return ValueError(
        f"checkpoint {path} could not be loaded ({type(err).__name__}: {first}); "
        "delete it to start from scratch, or pass the model it was saved from"
    )


def _check_fits(path, state: dict, model: nn.Module) -> None:
    """Refuse, with the reason, a checkpoint of another model or another world size."""
    saved, current = state.get("model_name"), _model_name(model)
    if saved is not None and saved != current:
        raise ValueError(
            f"checkpoint {path} was saved from another model, {saved}, but this run "
            f"trains {current}: resume it with the settings it was saved with, or give "
            "another checkpoint path (or delete this one) to start afresh"
        )
    saved_world, world = int(state.get("world_size", 1)), world_size()
    if saved_world != world:
        how = (
            "without torchrun"
            if saved_world == 1
            else f"under torchrun with {saved_world} processes in all"
        )
        raise ValueError(
            f"checkpoint {path} was written by a run of {saved_world} process(es), but "
            f"this run has {world}: each process's shard of the data and the batches its "
            f"batch norm averages over depend on that number. Resume it {how}, or give "
            "another checkpoint path (or delete this one) to start afresh"
        )


def load_checkpoint(
    path: str | os.PathLike, model: nn.Module, optimizer=None, scheduler=None
) -> History:
    """Restore a checkpoint written by :func:`save_checkpoint`; returns its history.

    Loaded with ``weights_only=True``: tensors and plain containers, never pickled code.
    A checkpoint of another model, or of a run with another number of processes, is
    refused with a ``ValueError`` that says so.
    """
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # unreadable, truncated, not a checkpoint
        raise _unreadable(path, err) from err
    if isinstance(state, dict):
        _check_fits(path, state, model)
        saved = (state.get("scheduler") or {}).get("total_steps")
        steps = getattr(scheduler, "total_steps", None)
        if saved is not None and steps is not None and saved != steps:
            raise ValueError(
                f"checkpoint {path} belongs to a schedule of {saved} steps, but this "
                f"run's has {steps}: resume it with the epochs and batch size it was "
                "started with (the one-cycle's length depends on both), or give "
                "another checkpoint path (or delete this one) to start afresh"
            )
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


def _bar(iterable, progress: bool, **kw):
    """A live progress bar (notebook widget or terminal), or the iterable itself."""
    if not progress:
        return iterable
    from tqdm.auto import tqdm

    return tqdm(iterable, **kw)


def train_one_epoch(
    model: nn.Module,
    batches: Batches,
    optimizer: torch.optim.Optimizer,
    *,
    scheduler=None,
    loss_fn: Callable = nn.functional.cross_entropy,
    device: torch.device,
    amp: bool = True,
    scaler=None,
    progress: bool = False,
    desc: str = "",
) -> dict[str, float]:
    """One pass over ``batches``: forward, loss, backward, step (and the scheduler's step
    after every batch). Returns the mean training loss, top-1 and the seconds it took
    (under DDP: over every rank's batches, and the slowest rank's seconds)."""
    model.train()
    sync(device)
    start = time.perf_counter()
    seen, loss_sum, correct = 0, 0.0, 0
    for x, y in _bar(batches, progress, desc=desc, leave=False, mininterval=1.0):
        x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
        with _autocast(device, amp):
            logits = model(x)
            loss = loss_fn(logits.float(), y)
        optimizer.zero_grad(set_to_none=True)
        if scaler is None:
            loss.backward()
            optimizer.step()
        else:  # fp16: scale the loss so small gradients do not underflow
            scaler.scale(loss).backward()
            scaler.step(optimizer)
            scaler.update()
        if scheduler is not None:
            scheduler.step()
        seen += y.numel()
        loss_sum = loss_sum + loss.detach() * y.numel()
        correct = correct + accuracy(logits.detach(), y)[0]
    sync(device)
    seconds = all_reduce_max(time.perf_counter() - start, device)
    loss_sum, seen, correct = _summed([loss_sum, seen, correct], device)
    if seen == 0:
        raise ValueError("train_one_epoch: the batches were empty")
    return {
        "train_loss": loss_sum / seen,
        "train_top1": 100.0 * correct / seen,
        "seconds": seconds,
    }


def _epoch_line(row: dict, epochs: int) -> str:
    top5 = f", top-5 {row['test_top5']:.2f}%" if "test_top5" in row else ""
    return (
        f"epoch {row['epoch']:>2}/{epochs}: train loss {row['train_loss']:.4f}, "
        f"top-1 {row['train_top1']:.2f}% | test loss {row['test_loss']:.4f}, "
        f"top-1 {row['test_top1']:.2f}%{top5} | {row['seconds']:.1f} s"
    )


def fit(
    model: nn.Module,
    train: Batches,
    test: Batches,
    *,
    epochs: int,
    optimizer: torch.optim.Optimizer,
    scheduler=None,
    loss_fn: Callable = nn.functional.cross_entropy,
    device: torch.device | None = None,
    amp: bool = True,
    checkpoint: str | os.PathLike | None = None,
    progress: bool | None = None,
    stop_after: int | None = None,
) -> History:
    """Train for ``epochs`` epochs, evaluating on ``test`` after each; returns the history.

    ``scheduler`` is stepped after every batch (e.g. ``OneCycleLR``). With ``checkpoint``,
    the state is saved after each epoch, and a run restarted with the same path resumes
    after the last finished epoch (a loader with ``set_epoch``, such as
    :class:`~lenet_utils.pipeline.TensorLoader`, then replays that epoch's shuffle).
    ``stop_after`` ends this session after that epoch (of ``epochs``), to go on later
    from the checkpoint. ``progress`` defaults to ``LENET_PROGRESS``. Under DDP every rank loads the
    checkpoint, and only rank 0 prints, shows progress bars and saves.
    """
    device = device or get_device()
    main = is_main()
    progress = (progress_bars() if progress is None else progress) and main
    model.to(device)
    history = History()
    found = checkpoint is not None and Path(checkpoint).exists()
    seen_by = _summed([found], device)[0]  # how many ranks see the file
    if 0 < seen_by < world_size():  # some would resume, others start afresh: refuse
        raise RuntimeError(
            f"checkpoint {checkpoint} exists for {seen_by:.0f} of {world_size()} "
            "processes: put it on a file system that every machine sees, or remove it"
        )
    if found:
        history = load_checkpoint(checkpoint, model, optimizer, scheduler)
        if main:
            done = len(history.epochs)
            print(f"resumed from {describe_path(checkpoint)} after epoch {done}")
    scaler = _scaler(device, amp)
    say = print if main else (lambda line: None)
    if progress:
        from tqdm.auto import tqdm

        say = tqdm.write  # prints above the live bars instead of through them
    set_epoch = getattr(train, "set_epoch", None)  # also a DataLoader's sampler's:
    set_epoch = set_epoch or getattr(getattr(train, "sampler", None), "set_epoch", None)
    last = epochs if stop_after is None else min(stop_after, epochs)
    for epoch in _bar(range(len(history.epochs), last), progress, desc="epochs"):
        if set_epoch is not None:  # the same shuffle on every rank, and after a resume
            set_epoch(epoch)
        trained = train_one_epoch(
            model, train, optimizer, scheduler=scheduler, loss_fn=loss_fn,
            device=device, amp=amp, scaler=scaler, progress=progress,
            desc=f"epoch {epoch + 1}",
        )  # fmt: skip
        scores = evaluate(model, test, device, loss_fn=loss_fn, amp=amp)
        row = {"epoch": epoch + 1, "lr": optimizer.param_groups[0]["lr"], **trained}
        row.update({f"test_{k}": v for k, v in scores.items()})
        history.epochs.append(row)
        say(_epoch_line(row, epochs))
        if checkpoint is not None and main:
            save_checkpoint(checkpoint, model, optimizer, scheduler, history)
    return history
