"""The fast-training ladder (``python -m lenet_utils.bench``): six input pipelines, each adding
one change to the one before, train one LeNet-5 with batch norm from the same weights in one
process (warm-up timed apart); the batch-size :func:`sweep` and the :func:`sprint` reuse it."""

from __future__ import annotations

import argparse
import copy
import functools
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Iterable

import torch
from torch import nn
from torch.utils.data import DataLoader, Subset
from torchvision import transforms as T

from .config import budget, device_name, get_device, seed_everything, sync
from .models import LeNet5, count_parameters
from .pipeline import TensorLoader, normalize, random_crop_flip
from .plots import readable_table
from .readers import load_tensors, torchvision_mnist
from .records import record_result
from .storage import TensorData, first_indices
from .training import autocast, evaluate, grad_scaler, lr_for_batch, precision
from .training import sgd_one_cycle

__all__ = [
    "fast_model", "ladder_table", "lr_for_batch", "main", "record_ladder", "record_sprint",
    "record_sweep", "run_ladder", "speedup", "sprint", "sweep",
]  # fmt: skip

if TYPE_CHECKING:
    import pandas as pd

#: The rungs, in order: each adds one change to the one before.
RUNGS = (
    "baseline",  # torchvision's MNIST with PIL transforms, DataLoader(batch_size=64)
    "tensor data",  # decoded uint8 tensors, normalised per batch, copied per batch
    "data on device",  # the whole dataset on the device, shuffled and augmented there
    "large batch",  # batch 512, the learning rate of lr_for_batch
    "channels_last + amp",  # NHWC, and mixed precision by training.precision's rule
    "compiled",  # torch.compile (on a GPU with CUDA graphs: mode="reduce-overhead")
)
SMALL_BATCH, LARGE_BATCH = 64, 512
EPOCHS = 10  # per rung: the chapter's run
TARGET = 99.0  # test top-1 (%) for "time to target"
#: The sprint: a schedule built to reach 99% in as few epochs as it can (chosen on a
#: validation split of 5,000 training digits, three seeds: scripts/fast_recipe_search.py).
SPRINT = dict(epochs=2, lr=0.8, label_smoothing=0.1)

Batches = Callable[[], Iterable[tuple[torch.Tensor, torch.Tensor]]]


@dataclass
class RungResult:
    """One rung's figures (training time only; warm-up timed apart)."""

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


def sweep_rung(device: torch.device) -> str:
    """Where the sweep and the sprint run, the fastest eager rung: "channels_last + amp" on
    a GPU, "large batch" elsewhere (on the course's 2-core CPU, channels_last slowed the
    batch-norm LeNet-5 from 12,428 to 9,086 images/s)."""
    return "channels_last + amp" if device.type == "cuda" else "large batch"


def fast_model() -> nn.Module:
    """The ladder's network: the modern LeNet-5 with batch norm, for 28x28 digits."""
    return LeNet5("modern", input_size=28, batchnorm=True)


def _peak_mb(device: torch.device, reset: bool = False) -> float | None:
    """CUDA: the most memory allocated since the last ``reset`` (MB); elsewhere None."""
    if device.type == "cuda" and reset:
        torch.cuda.reset_peak_memory_stats(device)
    cuda = device.type == "cuda"
    return torch.cuda.max_memory_allocated(device) / 2**20 if cuda else None


def _rung_model(rung: str, initial: dict, device: torch.device):
    """(model from the initial weights, module its steps call, precision, NHWC?)"""
    fast = RUNGS.index(rung) >= RUNGS.index("channels_last + amp")
    model = fast_model().to(device)
    model.load_state_dict(initial)
    model = model.to(memory_format=torch.channels_last) if fast else model
    # reduce-overhead = CUDA graphs over the whole step
    mode = "reduce-overhead" if device.type == "cuda" else "default"
    step_model = torch.compile(model, mode=mode) if rung == "compiled" else model
    return model, step_model, precision(device, fast), fast


def _warm_up(step: Callable, x, y, rung: str, rest: int, device: torch.device) -> float:
    """Seconds of warm-up steps, timed apart: compilation, for the batches' shape and the
    last batch's (``rest`` images), before the first epoch (CUDA graphs record on call 3)."""
    start = time.perf_counter()
    for _ in range(3 if rung == "compiled" else 1):
        step(x, y)
        if rest:
            step(x[:rest], y[:rest])
    sync(device)
    return time.perf_counter() - start


def _train_rung(
    rung: str,
    batches: Batches,
    batch_size: int,
    *,
    initial: dict,
    train: TensorData,
    test: tuple[torch.Tensor, torch.Tensor],
    device: torch.device,
    epochs: int,
    target: float,
    lr: float | None,
    label_smoothing: float,
) -> RungResult:
    """Train one rung from the shared initial weights and time it."""
    model, step_model, chosen, fast = _rung_model(rung, initial, device)
    n_train, steps = len(train), -(-len(train) // batch_size)
    optimizer, sched = sgd_one_cycle(
        model, lr=lr or lr_for_batch(batch_size), epochs=epochs, steps_per_epoch=steps
    )
    scaler = grad_scaler(chosen)  # on for fp16 only, as in fit
    smooth = label_smoothing

    def step(x: torch.Tensor, y: torch.Tensor) -> None:
        with autocast(device, chosen):
            loss = nn.functional.cross_entropy(step_model(x), y, label_smoothing=smooth)
        optimizer.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        scaler.step(optimizer)  # skips a step whose fp16 gradients overflowed
        scaler.update()

    _peak_mb(device, reset=True)
    rest = n_train % batch_size if rung == "compiled" else 0  # the last batch's shape
    compile_s = _warm_up(step, *next(iter(batches())), rung, rest, device)
    model.load_state_dict(initial)  # the warm-up steps trained it: start again
    optimizer.state.clear()

    def prep(x: torch.Tensor) -> torch.Tensor:  # test images: uint8 on the device
        x = normalize(x, train.mean, train.std)
        return x.contiguous(memory_format=torch.channels_last) if fast else x

    test_loader = TensorLoader(*test, 2000, transform=prep)
    train_s, time_to_target, top1 = 0.0, None, 0.0
    for _ in range(epochs):
        model.train()  # evaluate() left batch norm in eval mode
        sync(device)
        start = time.perf_counter()
        for x, y in batches():
            step(x, y)
            sched.step()
        sync(device)
        train_s += time.perf_counter() - start
        top1 = evaluate(model, test_loader, device, amp=fast)["top1"]
        if time_to_target is None and top1 >= target:
            time_to_target = train_s
    return RungResult(
        rung, batch_size, chosen, n_train * epochs / train_s, train_s / epochs,
        time_to_target, compile_s, _peak_mb(device), top1, epochs,
    )  # fmt: skip


def _pipelines(
    train: TensorData, device: torch.device, seed: int, large: int
) -> dict[str, tuple[Batches, int]]:
    """Each rung's batches (a fresh iterator per epoch) and batch size."""
    mean, std = train.mean, train.std
    g = torch.Generator().manual_seed(seed)

    @functools.cache  # read only if the baseline runs: torchvision may unpack its files
    def pil():
        to_tensor = T.Compose([T.ToTensor(), T.Normalize(mean, std)])
        data = torchvision_mnist(train=True, transform=to_tensor)
        if len(data) == len(train):
            return data
        per_class = int(torch.bincount(train.labels).max())  # the tensor rungs' subset
        return Subset(data, first_indices(data.targets.numpy(), per_class).tolist())

    def baseline():
        loader = DataLoader(pil(), batch_size=SMALL_BATCH, shuffle=True, generator=g)
        return ((x.to(device), y.to(device)) for x, y in loader)

    def tensor_data():
        loader = TensorLoader(
            train.images, train.labels, SMALL_BATCH, shuffle=True, seed=seed,
            transform=lambda x: normalize(x, mean, std),
        )  # fmt: skip
        for x, y in loader:
            yield x.to(device, non_blocking=True), y.to(device, non_blocking=True)

    on_dev = (train.images.to(device), train.labels.to(device))

    def on_device(batch_size: int, nhwc: bool) -> Batches:
        def tf(x: torch.Tensor) -> torch.Tensor:
            x = normalize(random_crop_flip(x, padding=2, flip=False), mean, std)
            return x.contiguous(memory_format=torch.channels_last) if nhwc else x

        return lambda: iter(
            TensorLoader(*on_dev, batch_size, shuffle=True, seed=seed, transform=tf)
        )

    return {
        "baseline": (baseline, SMALL_BATCH),
        "tensor data": (tensor_data, SMALL_BATCH),
        "data on device": (on_device(SMALL_BATCH, False), SMALL_BATCH),
        "large batch": (on_device(large, False), large),
        "channels_last + amp": (on_device(large, True), large),
        "compiled": (on_device(large, True), large),
    }


def run_ladder(
    device: torch.device | str | None = None,
    *,
    epochs: int = EPOCHS,
    target: float = TARGET,
    per_class: int | None = None,
    rungs: Iterable[str] = RUNGS,
    seed: int = 0,
    large_batch: int = LARGE_BATCH,
    lr: float | None = None,
    label_smoothing: float = 0.0,
    log: Callable[[str], None] = print,
) -> list[RungResult]:
    """Run the chosen rungs in order on MNIST and return their results; the last three
    rungs train at ``large_batch``; the peak ``lr`` is :func:`lr_for_batch`'s unless given."""
    rungs = list(rungs)
    unknown = [r for r in rungs if r not in RUNGS]
    if unknown:
        raise ValueError(f"unknown rung {unknown[0]!r}; choose from {RUNGS}")
    device = get_device(device)
    seed_everything(seed)
    train = load_tensors("mnist", "train", per_class=per_class)
    test_per_class = None if per_class is None else max(per_class // 2, 10)
    test = load_tensors("mnist", "test", per_class=test_per_class)
    test_on_device = (test.images.to(device), test.labels.to(device))
    initial = copy.deepcopy(fast_model().state_dict())
    pipelines = _pipelines(train, device, seed, large_batch)
    results = []
    for rung in rungs:
        batches, batch_size = pipelines[rung]
        result = _train_rung(
            rung, batches, batch_size, initial=initial, train=train,
            test=test_on_device, device=device, epochs=epochs, target=target, lr=lr,
            label_smoothing=label_smoothing,
        )  # fmt: skip
        log(_line(result))
        results.append(result)
    return results


def _line(r: RungResult) -> str:
    """A rung's progress line, short enough for the book's column."""
    reached = "-" if r.time_to_target_s is None else f"{r.time_to_target_s:.1f} s"
    rate = f"{r.images_per_s:>7,.0f} images/s, top-1 {r.top1:.2f}%"
    return f"{r.rung:<20} batch {r.batch_size:>5,}: {rate}, 99% after {reached}"


def ladder_table(rungs: list) -> pd.DataFrame:
    """The ladder for readers, the speedup first, peak memory only where measured (CUDA);
    ``rungs`` are :class:`RungResult` or a bench record's ``rungs``."""
    import pandas as pd

    frame = pd.DataFrame([r if isinstance(r, dict) else asdict(r) for r in rungs])
    frame = frame.set_index("rung").rename(columns={"time_to_target_s": "time_to_99_s"})
    base = frame["images_per_s"].get("baseline", float("nan"))
    shown = pd.DataFrame({
        "speedup": frame["images_per_s"] / base, "images/s": frame["images_per_s"],
        "s to 99%": frame["time_to_99_s"], "top-1 %": frame["top1"],
        "batch": frame["batch_size"],
        "precision": frame["precision"], "warm-up s": frame["compile_s"],
    })  # fmt: skip
    if frame["peak_mem_mb"].notna().any():
        shown["peak MB"] = frame["peak_mem_mb"]
    places = {"speedup": 1, "images/s": 0, "s to 99%": 1, "peak MB": 0}
    shown = readable_table(shown, decimals=places)
    shown["s to 99%"] = shown["s to 99%"].replace("–", "not reached")
    return shown.rename_axis(None)


def speedup(results: list[RungResult]) -> float | None:
    """The best rung's images/s over the baseline's, or ``None`` without a baseline."""
    base = next((r for r in results if r.rung == "baseline"), None)
    if base is None:
        return None
    return max(r.images_per_s for r in results) / base.images_per_s


def _differs(epochs: int, per_class: int | None) -> dict:
    """The settings of a run that differ from the chapter's (its record says so)."""
    differs: dict = {"epochs": epochs} if epochs != EPOCHS else {}
    return differs | ({} if per_class is None else {"per_class": per_class})


def _as_record(r: RungResult) -> dict:
    """A rung as records hold it (the course plan's field names)."""
    rung = asdict(r)
    rung["time_to_99_s"] = rung.pop("time_to_target_s")
    return rung


def _record(
    model: str, results: list[RungResult], device, replace: bool, differs: dict, **extra
) -> Path | None:
    """A bench record (one entry per rung or seed), under the fast model's name."""
    best = max(results, key=lambda r: r.images_per_s)
    return record_result(
        kind="bench", chapter="Fast training on the GPU", dataset="MNIST",
        model=f"modern LeNet-5 + batch norm{model}", params=count_parameters(fast_model()),
        epochs=best.epochs, top1=best.top1, top5=None,
        train_seconds=sum(r.epoch_s * r.epochs for r in results), device=device,
        extra={**extra, "rungs": [_as_record(r) for r in results]},
        differs=differs, replace=replace,
    )  # fmt: skip


def record_ladder(
    results: list[RungResult], device: torch.device, replace: bool = False, **extra
) -> Path | None:
    """The benchmark's record (kind ``bench``, one entry per rung). A ladder that differs
    from the chapter's (epochs, images, rungs) says so in its record and its name."""
    best = max(results, key=lambda r: r.images_per_s)
    differs = _differs(best.epochs, extra.get("per_class"))
    if [r.rung for r in results] != list(RUNGS):
        differs["rungs"] = ",".join(r.rung for r in results)
    ratio = speedup(results)
    ratio = None if ratio is None else round(ratio, 2)
    summary = {"target_top1": TARGET, "best_rung": best.rung, "speedup": ratio}
    return _record("", results, device, replace, differs, **summary, **extra)


def sweep(
    device: torch.device | str | None, batch_sizes: Iterable[int], **kwargs
) -> list[RungResult]:
    """:func:`sweep_rung` at each batch size, at :func:`lr_for_batch`'s rate (``kwargs``:
    :func:`run_ladder`'s)."""
    rung = sweep_rung(get_device(device))
    return [
        run_ladder(device, rungs=[rung], large_batch=b, **kwargs)[0]
        for b in batch_sizes
    ]


def record_sweep(
    results: list[RungResult], device: torch.device, replace: bool = False, **extra
) -> list[Path | None]:
    """One record per batch size of a :func:`sweep` (kind ``bench``)."""
    differs = _differs(results[0].epochs, extra.get("per_class"))
    return [
        _record(f", batch-size sweep, batch {r.batch_size}", [r], device, replace,
                differs, sweep=True, lr=round(lr_for_batch(r.batch_size), 4), **extra)
        for r in results
    ]  # fmt: skip


def sprint(
    device: torch.device | str | None, seeds: Iterable[int] = (0, 1, 2), **kwargs
) -> list[RungResult]:
    """:func:`sweep_rung` at batch 512 with the :data:`SPRINT` schedule, once per seed."""
    rung = sweep_rung(get_device(device))
    return [
        run_ladder(device, rungs=[rung], seed=s, **SPRINT, **kwargs)[0] for s in seeds
    ]


def record_sprint(
    results: list[RungResult], device: torch.device, replace: bool = False, **extra
) -> Path | None:
    """The sprint's record: each seed's rung, and the mean time to 99% of those that did."""
    times = [r.time_to_target_s for r in results if r.time_to_target_s is not None]
    mean = round(sum(times) / len(times), 2) if times else None
    differs = _differs(EPOCHS, extra.get("per_class"))  # a subset, if one
    return _record(", sprint to 99%", results, device, replace, differs, **SPRINT,
                   seeds=len(results), reached=len(times), time_to_99_s_mean=mean, **extra)  # fmt: skip


def main(argv: list[str] | None = None) -> list[RungResult]:
    """``python -m lenet_utils.bench``: run the ladder, print a row per rung, record it."""
    parser = argparse.ArgumentParser(
        prog="python -m lenet_utils.bench",
        description="The fast-training ladder on MNIST: six pipelines, one LeNet-5, "
        "timed side by side; the record goes to results/ (full budget only).",
    )
    add = parser.add_argument
    add("--device", help="cuda, mps or cpu (default: the best there is)")
    add("--epochs", type=int, default=EPOCHS, help=f"epochs per rung ({EPOCHS})")
    add("--per-class", type=int, help="train on N images of each class")
    subset = "comma-separated subset of: " + ", ".join(RUNGS)
    add("--rungs", default=",".join(RUNGS), help=subset)
    add("--sweep", help="batch sizes, e.g. 64,512,4096: the batch-size sweep instead")
    add("--sprint", action="store_true", help="the sprint to 99%%, 3 seeds, instead")
    add("--threads", type=int, help="torch CPU threads (torch's choice)")
    add("--no-record", action="store_true", help="print only")
    add("--replace-record", action="store_true", help="replace an existing record")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    device = get_device(args.device)
    print(
        f"device: {device_name(device)} | torch {torch.__version__} | "
        f"{SPRINT['epochs'] if args.sprint else args.epochs} epochs a run | budget {budget()}"
    )
    if args.sweep or args.sprint:
        if args.sweep:
            sizes = [int(b) for b in args.sweep.split(",") if b.strip()]
            results = sweep(device, sizes, epochs=args.epochs, per_class=args.per_class)
        else:
            results = sprint(device, per_class=args.per_class)
        write = record_sweep if args.sweep else record_sprint
        if not args.no_record:
            write(results, device, args.replace_record, per_class=args.per_class)
        return results
    rungs = [r.strip() for r in args.rungs.split(",") if r.strip()]
    results = run_ladder(
        device, epochs=args.epochs, per_class=args.per_class, rungs=rungs
    )
    print(ladder_table(results).to_string())
    ratio = speedup(results)
    if ratio is not None:
        print(f"best rung: {ratio:.1f}x the baseline's images/s")
    if not args.no_record:
        record_ladder(
            results, device, replace=args.replace_record, per_class=args.per_class
        )
    return results


if __name__ == "__main__":
    main()
