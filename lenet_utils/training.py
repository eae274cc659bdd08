"""Training, in the shape of pytorch/examples' mnist: ``train_one_epoch``, ``evaluate``, ``fit``.

``fit`` takes any iterable of ``(images, labels)`` batches: a ``DataLoader`` or a
:class:`lenet_utils.pipeline.TensorLoader` whose tensors already sit on the GPU. It keeps a
per-epoch history (loss, top-1, and top-5 with more than 10 classes), prints one line per
epoch (with live progress bars unless ``LENET_PROGRESS=0``), uses mixed precision on CUDA,
and can save and resume a checkpoint after every epoch.
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
from .records import atomic_write

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
    return torch.amp.GradScaler("cuda")


@torch.no_grad()
def evaluate(
    model: nn.Module,
    batches: Batches,
    device: torch.device | None = None,
    loss_fn: Callable = nn.functional.cross_entropy,
    amp: bool = True,
    flip_tta: bool = False,
) -> dict[str, float]:
    """Mean loss and top-1 (and top-5 with more than 10 classes) in percent.

    With ``flip_tta``, each image is scored by the mean of the softmax outputs for it and
    its mirror image (test-time augmentation); the loss is then that of the mean.
    """
    device = device or next(model.parameters()).device
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
    if total == 0:
        raise ValueError("evaluate: the batches were empty")
    rates = (100.0 * correct / total).tolist()
    out = {"loss": float(loss_sum) / total, "top1": rates[0]}
    if len(rates) > 1:
        out["top5"] = rates[1]
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


def save_checkpoint(
    path: str | os.PathLike, model: nn.Module, optimizer, scheduler, history: History
) -> None:
    """Save what resuming after the last finished epoch needs (written atomically)."""
    sched = None
    if scheduler is not None:  # older torch keeps a bound method in it: not a weight
        sched = {k: v for k, v in scheduler.state_dict().items() if not callable(v)}
    state = {
        "model": model.state_dict(),
        "optimizer": optimizer.state_dict(),
        "scheduler": sched,
        "history": history.epochs,
        "rng": torch.get_rng_state(),
    }
    atomic_write(path, lambda f: torch.save(state, f))


def load_checkpoint(
    path: str | os.PathLike, model: nn.Module, optimizer=None, scheduler=None
) -> History:
    """Restore a checkpoint written by :func:`save_checkpoint`; returns its history.

    Loaded with ``weights_only=True``: tensors and plain containers, never pickled code.
    """
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
        model.load_state_dict(state["model"])
        if optimizer is not None:
            optimizer.load_state_dict(state["optimizer"])
        if scheduler is not None and state["scheduler"] is not None:
            scheduler.load_state_dict(state["scheduler"])
    except Exception as err:  # unreadable, truncated, not a checkpoint, another model's
        first = str(err).strip().splitlines()[0][:160] if str(err).strip() else ""
        raise ValueError(
            f"checkpoint {path} could not be loaded ({type(err).__name__}: {first}); "
            "delete it to start from scratch, or pass the model it was saved from"
        ) from err
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
    after every batch). Returns the mean training loss, top-1 and the seconds it took."""
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
    seconds = time.perf_counter() - start
    if seen == 0:
        raise ValueError("train_one_epoch: the batches were empty")
    return {
        "train_loss": float(loss_sum) / seen,
        "train_top1": 100.0 * float(correct) / seen,
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
) -> History:
    """Train for ``epochs`` epochs, evaluating on ``test`` after each; returns the history.

    ``scheduler`` is stepped after every batch (e.g. ``OneCycleLR``). With ``checkpoint``,
    the state is saved after each epoch, and a run restarted with the same path resumes
    after the last finished epoch. ``progress`` defaults to ``LENET_PROGRESS``.
    """
    device = device or get_device()
    progress = progress_bars() if progress is None else progress
    model.to(device)
    history = History()
    if checkpoint is not None and Path(checkpoint).exists():
        history = load_checkpoint(checkpoint, model, optimizer, scheduler)
        print(
            f"resumed from {describe_path(checkpoint)} after epoch {len(history.epochs)}"
        )
    scaler = _scaler(device, amp)
    say = print
    if progress:
        from tqdm.auto import tqdm

        say = tqdm.write  # prints above the live bars instead of through them
    for epoch in _bar(range(len(history.epochs), epochs), progress, desc="epochs"):
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
        if checkpoint is not None:
            save_checkpoint(checkpoint, model, optimizer, scheduler, history)
    return history
