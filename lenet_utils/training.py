"""Training in the shape of pytorch/examples' mnist: ``train_one_epoch`` (chapter 4's
loop), ``evaluate`` and ``fit``, which adds what a long run needs: checkpoints, mixed
precision on CUDA, a stop on a NaN loss, and the sums of every ``torchrun`` process."""

from __future__ import annotations

import os
import time
from typing import Callable, Iterable, Sequence

import torch
from torch import nn
from torch.optim.lr_scheduler import OneCycleLR

from .checkpoints import History, resume, save_checkpoint
from .config import get_device, progress_bars, sync
from .distributed import all_reduce_max, is_main, sum_over_ranks, unwrap

__all__ = [
    "History", "autocast", "evaluate", "fit", "grad_scaler", "lr_for_batch", "precision",
    "predict", "sgd_one_cycle",
]  # fmt: skip

Batches = Iterable[tuple[torch.Tensor, torch.Tensor]]


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
    epoch: int | None = None,
) -> dict[str, float]:
    """One pass over ``batches`` (the scheduler steps after each batch): the mean training
    loss, top-1 and seconds; a ``FloatingPointError`` if the loss became NaN or infinite."""
    model.train()
    chosen = precision(device, amp)  # once, not at every step
    sums = _EpochSums(device)  # loss, hits and images, summed on the device; the time
    for step, (x, y) in enumerate(_bar(batches, progress, epoch)):
        x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
        optimizer.zero_grad(set_to_none=True)
        with autocast(device, chosen):
            logits = model(x)
            loss = loss_fn(logits.float(), y)
        if scaler is None:
            loss.backward()
            optimizer.step()
        else:  # fp16: scale the loss so small gradients do not underflow; the scaler
            scaler.scale(loss).backward()  # skips a step whose gradients overflowed
            scaler.step(optimizer)
            scaler.update()
        if scheduler is not None:
            scheduler.step()
        sums.add(step, x, y, logits, loss)
    return sums.figures(epoch)


@torch.no_grad()
def evaluate(
    model: nn.Module,
    batches: Batches,
    device: torch.device | None = None,
    loss_fn: Callable = nn.functional.cross_entropy,
    amp: bool = True,
    flip_tta: bool = False,
) -> dict[str, float]:
    """Mean loss and top-1 (and top-5 with more than 10 classes) in percent, over every
    DDP rank's shard together. ``flip_tta`` scores each image by the mean of the softmax
    outputs for it and its mirror image (test-time augmentation), the loss included."""
    device = device or next(model.parameters()).device
    model = unwrap(model).eval()  # every rank holds the same weights: no DDP needed
    total, loss_sum, correct, chosen = 0, 0.0, None, precision(device, amp)
    for x, y in batches:
        x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
        with autocast(device, chosen):
            logits = model(x)
            if flip_tta:
                mirror = model(x.flip(-1)).float().softmax(1)
                probs = (logits.float().softmax(1) + mirror) / 2
                logits = probs.clamp_min(1e-12).log()  # log-probabilities: a true loss
        loss_sum = loss_sum + loss_fn(logits.float(), y, reduction="sum")
        hits = accuracy(logits, y, (1, 5) if logits.shape[1] > 10 else (1,))
        correct = hits if correct is None else correct + hits
        total += y.numel()
    # Under DDP a rank's shard may be empty: it still takes part in the sums, with zeros.
    hits = [0, 0] if correct is None else [*correct, 0][:2]
    top5 = correct is not None and len(correct) > 1
    loss_sum, total, top1, top5_hits, top5 = sum_over_ranks(
        [loss_sum, total, *hits, top5], device
    )
    if total == 0:
        raise ValueError("evaluate: the batches were empty")
    top5 = {"top5": 100.0 * top5_hits / total} if top5 else {}
    return {"loss": loss_sum / total, "top1": 100.0 * top1 / total, **top5}


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
    settings: dict | None = None,
    split: str = "test",
) -> History:
    """Train for ``epochs`` epochs, evaluating on ``test`` after each; returns the history,
    whose columns name the evaluated ``split`` (``"val"``: ``val_top1``, ``val_loss``).

    ``scheduler`` (e.g. ``OneCycleLR``) steps after every batch. With ``checkpoint`` the
    state is saved after each epoch, and a restart with the same path and ``settings``
    resumes after the last finished one (a loader's ``set_epoch`` replays its shuffle);
    ``stop_after`` ends this session after that epoch. ``progress`` defaults to
    ``LENET_PROGRESS``. Only rank 0 prints and saves. A NaN or infinite loss, or an epoch's
    loss over 1,000 times the first's, stops the run with a ``FloatingPointError``."""
    device = device or get_device()
    progress = (progress_bars() if progress is None else progress) and is_main()
    model.to(device)
    _check_labels(model, train, test)
    history = resume(checkpoint, model, optimizer, scheduler, settings, device)
    scaler, say = grad_scaler(precision(device, amp)), _printer(progress)
    last = epochs if stop_after is None else min(stop_after, epochs)
    for epoch in _bar(range(len(history.epochs), last), progress, "epochs"):
        _set_epoch(train, epoch)  # the same shuffle on every rank, and after a resume
        trained = train_one_epoch(
            model, train, optimizer, scheduler=scheduler, loss_fn=loss_fn,
            device=device, amp=amp, scaler=scaler, progress=progress, epoch=epoch + 1,
        )  # fmt: skip
        first = history.epochs[0]["train_loss"] if history.epochs else 1.0
        if not trained["train_loss"] <= 1000 * max(first, 1.0):  # finite, but diverged
            raise FloatingPointError(
                f"the loss exploded in epoch {epoch + 1} (mean {trained['train_loss']:.3g}"
                ", over 1,000 times epoch 1's): training diverged; lower the learning "
                "rate (e.g. by a factor of 10) and start again"
            )
        scores = evaluate(model, test, device, loss_fn=loss_fn, amp=amp)
        row = {"epoch": epoch + 1, "lr": optimizer.param_groups[0]["lr"], **trained}
        row.update({f"{split}_{k}": v for k, v in scores.items()})
        history.epochs.append(row)
        say(_epoch_line(row, epochs, split))
        if checkpoint is not None and is_main():
            save_checkpoint(checkpoint, model, optimizer, scheduler, history, settings)
    return history


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
    preds, labels, chosen = [], [], precision(device, amp)
    for x, y in batches:
        with autocast(device, chosen):
            preds.append(model(x.to(device)).argmax(1).cpu())
        labels.append(y.cpu())
    if not preds:
        raise ValueError("predict: the batches were empty; pass a loader of (x, y)")
    return torch.cat(preds), torch.cat(labels)


def lr_for_batch(batch_size: int, base_lr: float = 0.1, base_batch: int = 64) -> float:
    """The one rule for the peak learning rate: ``base_lr`` at ``base_batch`` (0.1 at
    64), times the square root of the batch ratio (Hoffer et al. 2017): 0.8 at 4,096.
    With batch norm it trains LeNet-5 at every batch size from 64 to 4,096; linear
    scaling (Goyal et al. 2017) overshot at 4,096. Chapter 8's ladder, sweep and sprint
    and ``python -m lenet_utils.train --batch-size`` use it."""
    return base_lr * (batch_size / base_batch) ** 0.5


def sgd_one_cycle(
    model: nn.Module,
    *,
    lr: float,
    epochs: int,
    steps_per_epoch: int,
    weight_decay: float = 5e-4,
    one_cycle: bool = True,
) -> tuple[torch.optim.SGD, OneCycleLR | None]:
    """SGD with Nesterov momentum and a one-cycle schedule that warms up to ``lr`` over 30%
    of the steps, then anneals, moving the momentum the other way, 0.95 to 0.85 and back
    (``OneCycleLR``'s default). ``one_cycle=False``: a constant ``lr`` and momentum 0.9."""
    optimizer = torch.optim.SGD(
        model.parameters(), lr, momentum=0.9, nesterov=True, weight_decay=weight_decay
    )
    if not one_cycle:
        return optimizer, None
    return optimizer, OneCycleLR(optimizer, lr, total_steps=epochs * steps_per_epoch)


def accuracy(
    logits: torch.Tensor, labels: torch.Tensor, topk: Sequence[int] = (1,)
) -> torch.Tensor:
    """How many predictions are right, for each k in ``topk`` (counts, not rates), as a
    tensor on the logits' device: summing it over batches needs no GPU synchronisation."""
    k = min(max(topk), logits.shape[1])
    hit = logits.topk(k, dim=1).indices.eq(labels.unsqueeze(1))
    return torch.stack([hit[:, : min(kk, k)].any(dim=1).sum() for kk in topk])


class _EpochSums:
    """An epoch's sums, kept on the device so that no step waits for the GPU, and the
    first step whose loss was NaN or infinite (checked once, at the end of the epoch)."""

    def __init__(self, device: torch.device) -> None:
        self.device, self.seen, self.loss, self.correct = device, 0, 0.0, 0
        self.bad_step = torch.full((), -1, dtype=torch.long, device=device)
        self.bad_input = torch.zeros((), dtype=torch.bool, device=device)
        sync(device)
        self.start = time.perf_counter()

    def add(self, step: int, x, y, logits, loss) -> None:
        loss, logits = loss.detach(), logits.detach()
        self.seen += y.numel()
        self.loss = self.loss + loss * y.numel()
        self.correct = self.correct + accuracy(logits, y)[0]
        first = ~torch.isfinite(loss) & (self.bad_step < 0)
        self.bad_step = torch.where(first, step, self.bad_step)
        self.bad_input |= first & ~torch.isfinite(x).all()

    def figures(self, epoch: int | None) -> dict[str, float]:
        """Mean loss, top-1 and seconds over every rank (the slowest rank's seconds)."""
        sync(self.device)
        seconds = all_reduce_max(time.perf_counter() - self.start, self.device)
        loss, seen, correct, bad, bad_input = sum_over_ranks(
            [self.loss, self.seen, self.correct, self.bad_step >= 0, self.bad_input],
            self.device,
        )
        if bad:
            raise FloatingPointError(self._diverged(epoch, bool(bad_input)))
        if seen == 0:
            raise ValueError("train_one_epoch: the batches were empty")
        top1 = 100.0 * correct / seen
        return {"train_loss": loss / seen, "train_top1": top1, "seconds": seconds}

    def _diverged(self, epoch: int | None, bad_input: bool) -> str:
        mine = float(self.bad_step) if self.bad_step >= 0 else float("inf")
        step = int(-all_reduce_max(-mine, self.device)) + 1  # the first, over ranks
        where = f"step {step}" + ("" if epoch is None else f" of epoch {epoch}")
        if bad_input:
            return (
                f"the loss became NaN or infinite at {where}, and that batch held NaN "
                "or infinite values: check the data (torch.isfinite(images).all())"
            )
        return (
            f"the loss became NaN or infinite at {where}: training diverged; lower the "
            "learning rate (e.g. by a factor of 10) and start again"
        )


def precision(device: torch.device, amp: bool = True) -> str:
    """The precision rule of ``fit`` and the ladder: ``"bf16"`` autocast on CUDA GPUs
    with native bf16 (compute capability 8.0 and up), ``"fp16"`` with a gradient scaler
    on older ones (Colab's T4: 7.5), else ``"fp32"``: on a CPU, bf16 pays only where it
    has bf16 instructions, and fp32 keeps every machine's CPU runs comparable."""
    if not (amp and device.type == "cuda"):
        return "fp32"
    return "bf16" if torch.cuda.get_device_capability(device)[0] >= 8 else "fp16"


def autocast(device: torch.device, chosen: str):
    """Autocast in ``chosen`` (a :func:`precision`), a no-op for ``"fp32"``."""
    if chosen == "fp32":
        return torch.autocast(device.type, enabled=False)
    dtype = torch.bfloat16 if chosen == "bf16" else torch.float16
    return torch.autocast(device.type, dtype=dtype)


def grad_scaler(chosen: str):
    """A gradient scaler, on for ``"fp16"`` only (small gradients would underflow); off,
    its ``scale``, ``step`` and ``update`` pass the loss and the step through as is."""
    # torch.amp.GradScaler is new in torch 2.3; torch 2.2 (the last for Intel Macs) has
    # only torch.cuda.amp.GradScaler, which later releases deprecate.
    if not hasattr(torch.amp, "GradScaler"):
        return torch.cuda.amp.GradScaler(enabled=chosen == "fp16")
    return torch.amp.GradScaler("cuda", enabled=chosen == "fp16")


def _bar(iterable, progress: bool, epoch: int | str | None):
    """A live progress bar (notebook widget or terminal), or the iterable itself."""
    if not progress:
        return iterable
    from tqdm.auto import tqdm

    if epoch == "epochs":
        return tqdm(iterable, desc="epochs")
    return tqdm(iterable, desc=f"epoch {epoch}", leave=False, mininterval=1.0)


def _printer(progress: bool) -> Callable[[str], None]:
    """How ``fit`` prints a line: above the live bars, on rank 0 only."""
    if not progress:
        return print if is_main() else lambda line: None
    from tqdm.auto import tqdm

    return tqdm.write  # prints above the live bars instead of through them


def _epoch_line(row: dict, epochs: int, split: str = "test") -> str:
    top5 = f", top-5 {row[f'{split}_top5']:.2f}%" if f"{split}_top5" in row else ""
    return (
        f"epoch {row['epoch']:>2}/{epochs}: train loss {row['train_loss']:.4f}, "
        f"top-1 {row['train_top1']:.2f}% | {split} loss {row[f'{split}_loss']:.4f}, "
        f"top-1 {row[f'{split}_top1']:.2f}%{top5} | {row['seconds']:.1f} s"
    )


def _set_epoch(train: Batches, epoch: int) -> None:
    """Tell the loader (or a DataLoader's sampler) which epoch comes next."""
    set_epoch = getattr(train, "set_epoch", None)
    set_epoch = set_epoch or getattr(getattr(train, "sampler", None), "set_epoch", None)
    if set_epoch is not None:
        set_epoch(epoch)


def _check_labels(model: nn.Module, *loaders: Batches) -> None:
    """Refuse labels outside ``0 … num_classes - 1`` of loaders that hold them as one tensor,
    before training: on a GPU such a label is a device-side assert that ends the process."""
    classes = getattr(unwrap(model), "num_classes", None)
    for loader in loaders:
        labels = getattr(loader, "labels", None)
        if classes is None or not isinstance(labels, torch.Tensor) or not len(labels):
            continue
        low, high = int(labels.min()), int(labels.max())
        if low < 0 or high >= classes:
            raise ValueError(
                f"label {low if low < 0 else high} is outside 0 … {classes - 1}: the "
                f"model has {classes} outputs, one per class; build it with the "
                "dataset's number of classes, or check the labels"
            )
