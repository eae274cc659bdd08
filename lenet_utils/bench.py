"""The fast-training ladder: one LeNet-5, six input pipelines, timed side by side.

    python -m lenet_utils.bench --device cuda --dataset mnist --epochs 10

Each rung adds one change to the one before:

1. ``baseline``: torchvision dataset, PIL transforms, ``DataLoader(batch_size=64, shuffle=True)``, fp32;
2. ``tensor data``: decoded ``uint8`` tensors, normalised per batch, copied to the device per batch;
3. ``data on device``: the whole dataset on the device, ``randperm`` shuffling, augmentation there;
4. ``large batch``: batch 512, the learning rate scaled by the square root of the batch ratio;
5. ``channels_last + bf16``: the NHWC memory format and, on CUDA, bf16 autocast (a CPU keeps
   fp32: bf16 autocast training of LeNet-5 collapsed to chance accuracy on the course's CPU);
6. ``compiled``: ``torch.compile`` (with CUDA graphs on a GPU: ``mode="reduce-overhead"``).

All rungs run in one process, from the same initial weights, so their ratios hold on a noisy
machine. For each: images/s and seconds per epoch (training only), time to reach the target
test accuracy, warm-up/compile time (measured apart, on one batch, before the weights are
reset), peak memory (CUDA) and final accuracy. The record goes to ``results/`` as
``kind: "bench"``.
"""

from __future__ import annotations

import argparse
import copy
import json
import time
from dataclasses import asdict, dataclass
from typing import Callable, Iterable

import torch
from torch import nn
from torch.utils.data import DataLoader, Subset
from torchvision import transforms

from .config import budget, device_name, get_device, seed_everything
from .data import (
    STATS,
    TensorLoader,
    first_indices,
    load_tensors,
    mnist,
    normalize,
    random_crop_flip,
)
from .models import LeNet5
from .training import evaluate, save_record

__all__ = ["RungResult", "RUNGS", "run_ladder", "main"]

RUNGS = (
    "baseline",
    "tensor data",
    "data on device",
    "large batch",
    "channels_last + bf16",
    "compiled",
)
SMALL_BATCH, LARGE_BATCH = 64, 512
# SGD with Nesterov momentum and a one-cycle schedule (every rung), peaking at 0.05 for batch 64.
# For batch 512 the peak is scaled by sqrt(512 / 64): linear scaling (0.4) diverges for LeNet-5
# without batch norm in short runs, square-root scaling (0.14) trains reliably.
BASE_LR = 0.05


@dataclass
class RungResult:
    rung: str
    batch_size: int
    precision: str
    images_per_s: float
    epoch_s: float
    time_to_target_s: float | None
    compile_s: float
    peak_mem_mb: float | None
    top1: float
    epochs: int

    def as_record(self, target: float) -> dict:
        out = asdict(self)
        out["time_to_99_s" if target == 99.0 else f"time_to_{target:g}_s"] = out.pop(
            "time_to_target_s"
        )
        return out


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _train_rung(
    rung: str,
    initial: dict,
    batches: Callable[[], Iterable[tuple[torch.Tensor, torch.Tensor]]],
    n_train: int,
    test: tuple[torch.Tensor, torch.Tensor],
    device: torch.device,
    epochs: int,
    target: float,
    batch_size: int,
) -> RungResult:
    """Train one rung from the shared initial weights and time it."""
    index = RUNGS.index(rung)
    fast_format, compiled = index >= 4, index >= 5
    amp = (
        fast_format and device.type == "cuda"
    )  # bf16 on CUDA only (see the module docstring)
    model = LeNet5("modern", input_size=28).to(device)
    model.load_state_dict(initial)
    if fast_format:
        model = model.to(memory_format=torch.channels_last)
    step_model: nn.Module = model
    if compiled:
        mode = (
            "reduce-overhead" if device.type == "cuda" else "default"
        )  # reduce-overhead = CUDA graphs
        step_model = torch.compile(model, mode=mode)
    lr = BASE_LR * (batch_size / SMALL_BATCH) ** 0.5
    optimizer = torch.optim.SGD(
        model.parameters(), lr=lr, momentum=0.9, nesterov=True, weight_decay=5e-4
    )
    steps_per_epoch = -(-n_train // batch_size)
    scheduler = torch.optim.lr_scheduler.OneCycleLR(
        optimizer, max_lr=lr, total_steps=epochs * steps_per_epoch + 1
    )
    mean, std = STATS["mnist"]

    def prep(x: torch.Tensor) -> torch.Tensor:  # test images: uint8 on the device
        x = normalize(x, mean, std)
        return x.contiguous(memory_format=torch.channels_last) if fast_format else x

    def step(x: torch.Tensor, y: torch.Tensor) -> None:
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=amp):
            loss = nn.functional.cross_entropy(step_model(x), y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    # Warm-up (and compilation) on one batch, timed apart; then back to the initial weights.
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    start = time.perf_counter()
    for x, y in batches():
        for _ in range(3 if compiled else 1):  # CUDA graphs record on the third call
            step(x, y)
        break
    _sync(device)
    compile_s = time.perf_counter() - start
    model.load_state_dict(initial)
    optimizer.state.clear()

    train_s, time_to_target, top1 = 0.0, None, 0.0
    for _ in range(epochs):
        _sync(device)
        start = time.perf_counter()
        for x, y in batches():
            step(x, y)
            scheduler.step()
        _sync(device)
        train_s += time.perf_counter() - start
        top1 = evaluate(
            model, TensorLoader(*test, 2000, transform=prep), device, amp=amp
        )["top1"]
        model.train()
        if time_to_target is None and top1 >= target:
            time_to_target = train_s
    peak = (
        torch.cuda.max_memory_allocated(device) / 2**20
        if device.type == "cuda"
        else None
    )
    return RungResult(
        rung,
        batch_size,
        "bf16" if amp else "fp32",
        n_train * epochs / train_s,
        train_s / epochs,
        time_to_target,
        compile_s,
        peak,
        top1,
        epochs,
    )


def run_ladder(
    device: torch.device | str | None = None,
    *,
    epochs: int = 10,
    target: float = 99.0,
    per_class: int | None = None,
    rungs: Iterable[str] = RUNGS,
    seed: int = 0,
    log: Callable[[str], None] = print,
) -> list[RungResult]:
    """Run the chosen rungs in order on MNIST and return their results."""
    device = torch.device(device) if device is not None else get_device()
    seed_everything(seed)
    train = load_tensors("mnist", "train", per_class=per_class)
    test = load_tensors(
        "mnist",
        "test",
        per_class=None if per_class is None else max(per_class // 2, 10),
    )
    test_dev = (test.images.to(device), test.labels.to(device))
    initial = copy.deepcopy(LeNet5("modern", input_size=28).state_dict())
    mean, std = STATS["mnist"]
    n = len(train)

    # Rung 1: the seed articles' pipeline, through torchvision and PIL.
    pil = mnist(
        train=True,
        transform=transforms.Compose(
            [transforms.ToTensor(), transforms.Normalize(mean, std)]
        ),
    )
    if per_class is not None:  # the same images as the tensor rungs
        pil = Subset(pil, first_indices(pil.targets.numpy(), per_class).tolist())
    g = torch.Generator().manual_seed(seed)

    def baseline():
        for x, y in DataLoader(pil, batch_size=SMALL_BATCH, shuffle=True, generator=g):
            yield x.to(device), y.to(device)

    def tensor_data():
        loader = TensorLoader(
            train.images,
            train.labels,
            SMALL_BATCH,
            shuffle=True,
            seed=seed,
            transform=lambda x: normalize(x, mean, std),
        )
        for x, y in loader:
            yield x.to(device, non_blocking=True), y.to(device, non_blocking=True)

    on_dev = (train.images.to(device), train.labels.to(device))

    def on_device(batch_size: int, channels_last: bool):
        def tf(x: torch.Tensor) -> torch.Tensor:
            x = normalize(random_crop_flip(x, padding=2, flip=False), mean, std)
            return (
                x.contiguous(memory_format=torch.channels_last) if channels_last else x
            )

        return lambda: iter(
            TensorLoader(*on_dev, batch_size, shuffle=True, seed=seed, transform=tf)
        )

    pipelines = {
        "baseline": (baseline, SMALL_BATCH),
        "tensor data": (tensor_data, SMALL_BATCH),
        "data on device": (on_device(SMALL_BATCH, False), SMALL_BATCH),
        "large batch": (on_device(LARGE_BATCH, False), LARGE_BATCH),
        "channels_last + bf16": (on_device(LARGE_BATCH, True), LARGE_BATCH),
        "compiled": (on_device(LARGE_BATCH, True), LARGE_BATCH),
    }
    results = []
    for rung in rungs:
        if rung not in pipelines:
            raise ValueError(f"unknown rung {rung!r}; choose from {RUNGS}")
        batches, batch_size = pipelines[rung]
        r = _train_rung(
            rung, initial, batches, n, test_dev, device, epochs, target, batch_size
        )
        log(_row(r))
        results.append(r)
    return results


def _row(r: RungResult) -> str:
    t = (
        f"{r.time_to_target_s:>10.2f}"
        if r.time_to_target_s is not None
        else f"{'n/a':>10}"
    )
    mem = f"{r.peak_mem_mb:>9.1f}" if r.peak_mem_mb is not None else f"{'n/a':>9}"
    return (
        f"{r.rung:<22}{r.batch_size:>6}{r.precision:>6}{r.images_per_s:>12,.0f}{r.epoch_s:>10.2f}{t}"
        f"{r.compile_s:>10.2f}{mem}{r.top1:>8.2f}"
    )


HEADER = f"{'rung':<22}{'batch':>6}{'prec.':>6}{'images/s':>12}{'s/epoch':>10}{'to target':>10}{'warm-up s':>10}{'peak MB':>9}{'top-1':>8}"


def write_record(
    results: list[RungResult],
    device: torch.device,
    target: float,
    extra: dict | None = None,
) -> dict:
    """The benchmark's results JSON (COURSE.md's bench fields), written under results/."""
    base = (
        results[0].images_per_s if results and results[0].rung == "baseline" else None
    )
    best = max(results, key=lambda r: r.images_per_s)
    fields = {
        "kind": "bench",
        "chapter": "Fast training on the GPU",
        "dataset": "MNIST",
        "model": "modern LeNet-5",
    }
    summary = {
        "target_top1": target,
        "rungs": [r.as_record(target) for r in results],
        "best_rung": best.rung,
        "speedup": None if base is None else round(best.images_per_s / base, 2),
        **(extra or {}),
    }
    path = save_record(f"bench__mnist__{device.type}", fields, device, summary)
    record = json.loads(path.read_text())
    record["path"] = str(path)
    return record


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(
        prog="python -m lenet_utils.bench", description=__doc__.splitlines()[0]
    )
    parser.add_argument(
        "--device", default=None, help="cuda, mps or cpu (default: the best available)"
    )
    parser.add_argument(
        "--dataset",
        default="mnist",
        choices=["mnist"],
        help="the ladder trains on MNIST",
    )
    parser.add_argument(
        "--epochs", type=int, default=10, help="epochs per rung (default 10)"
    )
    parser.add_argument(
        "--per-class",
        type=int,
        default=None,
        help="train on the first N images of each class",
    )
    parser.add_argument(
        "--target",
        type=float,
        default=99.0,
        help="test accuracy for 'time to target' (default 99.0)",
    )
    parser.add_argument(
        "--rungs",
        default=",".join(RUNGS),
        help="comma-separated subset of: " + ", ".join(RUNGS),
    )
    parser.add_argument(
        "--threads",
        type=int,
        default=None,
        help="torch CPU threads (default: torch's choice)",
    )
    parser.add_argument(
        "--no-record", action="store_true", help="print only; write no JSON"
    )
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device) if args.device else get_device()
    print(
        f"device: {device_name(device)} | torch {torch.__version__} | {args.epochs} epochs per rung | budget {budget()}"
    )
    print(HEADER)
    results = run_ladder(
        device,
        epochs=args.epochs,
        target=args.target,
        per_class=args.per_class,
        rungs=[r.strip() for r in args.rungs.split(",") if r.strip()],
    )
    record = {"rungs": [r.as_record(args.target) for r in results]}
    if not args.no_record:
        record = write_record(
            results,
            device,
            args.target,
            {"epochs": args.epochs, "per_class": args.per_class},
        )
        print(
            f"speedup of the best rung ({record['best_rung']}) over the baseline: {record['speedup']}x; "
            f"recorded in {record['path']}"
        )
    return record


if __name__ == "__main__":
    main()
