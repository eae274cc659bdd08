"""A small fit/evaluate loop, checkpoints and the results record.

``fit`` takes any iterable of ``(images, labels)`` batches: a classic ``DataLoader`` or a
:class:`lenet_utils.data.TensorLoader` whose tensors already sit on the GPU. It keeps a
per-epoch history (loss, top-1, and top-5 where there are more than 10 classes), shows
``tqdm.auto`` progress bars, uses mixed precision on CUDA, and can save and resume a
checkpoint after every epoch.
"""

from __future__ import annotations

import datetime as _dt
import json
import os
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable, Sequence

import torch
from torch import nn
from tqdm.auto import tqdm

from .config import budget, device_name, get_device

__all__ = [
    "History",
    "accuracy",
    "evaluate",
    "predict",
    "fit",
    "sgd_one_cycle",
    "save_checkpoint",
    "load_checkpoint",
    "results_dir",
    "git_commit",
    "save_record",
    "record_result",
]

Batches = Iterable[tuple[torch.Tensor, torch.Tensor]]


@dataclass
class History:
    """One dict per epoch: ``epoch``, ``lr``, ``train_loss``, ``train_top1``, ``test_loss``,
    ``test_top1`` (and ``test_top5``), ``seconds`` (training time of that epoch)."""

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
) -> list[float]:
    """Number of correct predictions (not a rate) for each k in ``topk``."""
    k = min(max(topk), logits.shape[1])
    top = logits.topk(k, dim=1).indices
    hit = top.eq(labels.unsqueeze(1))
    return [hit[:, : min(kk, logits.shape[1])].any(dim=1).sum().item() for kk in topk]


def _autocast(device: torch.device, amp: bool):
    """bf16 autocast on CUDA GPUs that support it, fp16 otherwise; a no-op on the CPU."""
    if amp and device.type == "cuda":
        dtype = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        return torch.autocast("cuda", dtype=dtype)
    return torch.autocast(device.type, enabled=False)


def _topk_for(num_classes: int) -> tuple[int, ...]:
    return (1, 5) if num_classes > 10 else (1,)


@torch.no_grad()
def evaluate(
    model: nn.Module,
    batches: Batches,
    device: torch.device | None = None,
    loss_fn: Callable = nn.functional.cross_entropy,
    amp: bool = True,
    flip_tta: bool = False,
) -> dict[str, float]:
    """Mean loss and top-1 (and top-5 when there are more than 10 classes) in percent.

    With ``flip_tta``, each image is scored by the mean of the softmax outputs for it and its
    mirror image (test-time augmentation); the loss is then that of the averaged probabilities.
    """
    device = device or next(model.parameters()).device
    model.eval()
    total, loss_sum, correct = 0, 0.0, None
    for x, y in batches:
        x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
        with _autocast(device, amp):
            logits = model(x)
            if flip_tta:
                probs = (
                    logits.float().softmax(1) + model(x.flip(-1)).float().softmax(1)
                ) / 2
                logits = probs.clamp_min(
                    1e-12
                ).log()  # log-probabilities: cross-entropy stays meaningful
        loss_sum += loss_fn(logits.float(), y, reduction="sum").item()
        hits = accuracy(logits, y, _topk_for(logits.shape[1]))
        correct = hits if correct is None else [a + b for a, b in zip(correct, hits)]
        total += y.numel()
    if total == 0:
        raise ValueError("evaluate: the batches were empty")
    out = {"loss": loss_sum / total, "top1": 100.0 * correct[0] / total}
    if len(correct) > 1:
        out["top5"] = 100.0 * correct[1] / total
    return out


@torch.no_grad()
def predict(
    model: nn.Module, batches: Batches, device: torch.device | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Predicted classes and true labels for every sample, on the CPU."""
    device = device or next(model.parameters()).device
    model.eval()
    preds, labels = [], []
    for x, y in batches:
        with _autocast(device, True):
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
) -> tuple[torch.optim.SGD, torch.optim.lr_scheduler.OneCycleLR]:
    """The course's recipe: SGD with Nesterov momentum 0.9 and a one-cycle schedule peaking at ``lr``."""
    optimizer = torch.optim.SGD(
        model.parameters(),
        lr=lr,
        momentum=0.9,
        nesterov=True,
        weight_decay=weight_decay,
    )
    scheduler = torch.optim.lr_scheduler.OneCycleLR(
        optimizer, max_lr=lr, total_steps=epochs * steps_per_epoch
    )
    return optimizer, scheduler


def _atomic_save(obj, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        torch.save(obj, tmp)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def save_checkpoint(
    path: str | os.PathLike, model: nn.Module, optimizer, scheduler, history: History
) -> None:
    """Save everything needed to resume after the last finished epoch (written atomically)."""
    _atomic_save(
        {
            "model": model.state_dict(),
            "optimizer": optimizer.state_dict(),
            "scheduler": scheduler.state_dict() if scheduler is not None else None,
            "history": history.epochs,
            "rng": torch.get_rng_state(),
        },
        Path(path),
    )


def load_checkpoint(
    path: str | os.PathLike, model: nn.Module, optimizer=None, scheduler=None
) -> History:
    """Restore a checkpoint written by :func:`save_checkpoint`; returns its history."""
    try:
        state = torch.load(path, map_location="cpu", weights_only=False)
        model.load_state_dict(state["model"])
    except (
        Exception
    ) as err:  # unreadable, truncated, not a checkpoint, or another model's
        raise ValueError(
            f"checkpoint {path} could not be loaded ({type(err).__name__}: {err}); "
            "delete it to start from scratch, or pass the model it was saved from"
        ) from err
    if optimizer is not None:
        optimizer.load_state_dict(state["optimizer"])
    if scheduler is not None and state["scheduler"] is not None:
        scheduler.load_state_dict(state["scheduler"])
    torch.set_rng_state(state["rng"])
    return History(list(state["history"]))


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
    progress: bool = True,
) -> History:
    """Train for ``epochs`` epochs, evaluating on ``test`` after each; returns the history.

    ``scheduler`` is stepped after every batch (e.g. ``OneCycleLR``). With ``checkpoint``,
    the state is saved after each epoch and a run restarted with the same path resumes
    after the last finished epoch.
    """
    device = device or get_device()
    model.to(device)
    history = History()
    if checkpoint is not None and Path(checkpoint).exists():
        history = load_checkpoint(checkpoint, model, optimizer, scheduler)
        print(f"resumed from {checkpoint} after epoch {len(history.epochs)}")
    fp16 = amp and device.type == "cuda" and not torch.cuda.is_bf16_supported()
    # torch.amp.GradScaler is new in torch 2.3; torch 2.2 (the last release for Intel Macs)
    # has only torch.cuda.amp.GradScaler, which later releases deprecate.
    if hasattr(torch.amp, "GradScaler"):
        scaler = torch.amp.GradScaler("cuda", enabled=fp16)
    else:
        scaler = torch.cuda.amp.GradScaler(enabled=fp16)
    bar = tqdm(range(len(history.epochs), epochs), desc="epochs", disable=not progress)
    for epoch in bar:
        model.train()
        start = time.perf_counter()
        seen, loss_sum, correct = 0, 0.0, 0
        for x, y in tqdm(
            train,
            desc=f"epoch {epoch + 1}",
            leave=False,
            mininterval=2.0,
            disable=not progress,
        ):
            x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
            with _autocast(device, amp):
                logits = model(x)
                loss = loss_fn(logits.float(), y)
            optimizer.zero_grad(set_to_none=True)
            scaler.scale(loss).backward()
            scaler.step(optimizer)
            scaler.update()
            if scheduler is not None:
                scheduler.step()
            seen += y.numel()
            loss_sum += loss.detach() * y.numel()
            correct += (logits.detach().argmax(1) == y).sum()
        if device.type == "cuda":
            torch.cuda.synchronize()
        seconds = time.perf_counter() - start
        scores = evaluate(model, test, device, loss_fn=loss_fn, amp=amp)
        row = {
            "epoch": epoch + 1,
            "lr": optimizer.param_groups[0]["lr"],
            "train_loss": float(loss_sum) / seen,
            "train_top1": 100.0 * float(correct) / seen,
            **{f"test_{k}": v for k, v in scores.items()},
            "seconds": seconds,
        }
        history.epochs.append(row)
        top5 = f", top-5 {row['test_top5']:.2f}%" if "test_top5" in row else ""
        tqdm.write(
            f"epoch {epoch + 1:>3}/{epochs}: train loss {row['train_loss']:.4f}, acc {row['train_top1']:.2f}% | "
            f"test loss {row['test_loss']:.4f}, top-1 {row['test_top1']:.2f}%{top5} | {seconds:.1f} s"
        )
        if checkpoint is not None:
            save_checkpoint(checkpoint, model, optimizer, scheduler, history)
    return history


def results_dir() -> Path:
    """``$LENET_RESULTS_DIR``, else ``results/`` of the course checkout, else ``./results``."""
    if os.environ.get("LENET_RESULTS_DIR"):
        return Path(os.environ["LENET_RESULTS_DIR"])
    repo = Path(__file__).resolve().parents[1]
    return repo / "results" if (repo / "_toc.yml").exists() else Path("results")


def git_commit() -> str:
    """The checkout's short commit hash, or ``unknown`` outside a git checkout."""
    try:
        out = subprocess.run(
            ["git", "rev-parse", "--short=12", "HEAD"],
            capture_output=True,
            text=True,
            cwd=Path(__file__).parent,
            timeout=10,
        )
        return out.stdout.strip() or "unknown"
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def save_record(
    name: str, fields: dict, device: torch.device, extra: dict | None = None
) -> Path:
    """Write ``results/<name>.json``: ``fields``, then where it ran (device, torch, commit, date),
    then ``extra``; written to a temporary file and renamed, so a record is never half-written."""
    record = {
        **fields,
        "device": device_name(device),
        "torch": torch.__version__,
        "commit": git_commit(),
        "date": _dt.date.today().isoformat(),
        **(extra or {}),
    }
    path = results_dir() / f"{name}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(record, indent=2) + "\n")
    os.replace(tmp, path)
    return path


def record_result(
    *,
    chapter: str,
    dataset: str,
    model: str,
    params: int,
    epochs: int,
    top1: float,
    top5: float | None,
    train_seconds: float,
    device: torch.device,
    extra: dict | None = None,
    force: bool = False,
) -> Path | None:
    """Write the course's results JSON for a full run; smoke runs are not recorded.

    The fields are those of COURSE.md: chapter, dataset, model, params, epochs, top1, top5,
    train_seconds, device, torch, commit, date (plus ``extra``). The file is named
    ``<chapter>__<dataset>__<model>.json`` under :func:`results_dir`.
    """
    if budget() != "full" and not force:
        print("smoke budget: result not recorded")
        return None
    fields = {
        "chapter": chapter,
        "dataset": dataset,
        "model": model,
        "params": int(params),
        "epochs": int(epochs),
        "top1": round(float(top1), 2),
        "top5": None if top5 is None else round(float(top5), 2),
        "train_seconds": round(float(train_seconds), 1),
    }
    slug = "__".join(
        s.lower().replace(" ", "-").replace("/", "-") for s in (chapter, dataset, model)
    )
    path = save_record(slug, fields, device, extra)
    record = json.loads(path.read_text())
    print(
        f"recorded {path.name}: top-1 {record['top1']}%"
        + (f", top-5 {record['top5']}%" if top5 is not None else "")
    )
    return path
