"""The chapters' training runs from the command line, in one process or under torchrun.

    python -m lenet_utils.train --recipe mnist
    torchrun --standalone --nproc_per_node=2 -m lenet_utils.train --recipe mnist

A recipe (:data:`RECIPES`) is a chapter's run: dataset, model, epochs, batch, learning
rate, augmentation; every option overrides it. The run itself is the chapters' own code:
:func:`~lenet_utils.readers.load_tensors`, :func:`~lenet_utils.pipeline.make_loaders`,
:func:`~lenet_utils.training.sgd_one_cycle` and :func:`~lenet_utils.training.fit`. Under
``torchrun`` it trains with ``DistributedDataParallel`` (:mod:`lenet_utils.distributed`):
one process per GPU (or several on the CPU, through gloo), each with its own shard of the
data, and the figures of the whole dataset on every rank. Rank 0 alone prints, checkpoints
and writes the results record.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import sys
from pathlib import Path

import torch

from . import distributed
from .config import BUDGET_ENV, budget, describe_path, device_name, seed_everything
from .models import LeNet5, count_parameters
from .pipeline import make_loaders
from .readers import DATASETS, load_tensors
from .files import atomic_write
from .records import CHAPTERS, record_result
from .training import History, fit, sgd_one_cycle

__all__ = ["RECIPES", "build_parser", "main"]

_CROPS = dict(variant="modern", batchnorm=True, flip=True, pad_mode="reflect")
#: The chapters' runs. ``smoke``: training and test images per class for the smoke budget
#: (which also trains 2 epochs); ``target``: the chapter's target (top-1, top-5).
RECIPES: dict[str, dict] = {
    "mnist": dict(
        chapter="MNIST", dataset="mnist", variant="modern", batchnorm=False,
        epochs=15, batch_size=128, lr=0.1, weight_decay=5e-4, padding=2, flip=False,
        pad_mode="zeros", label_smoothing=0.0, smoke=(100, 50), target=(99.3, None),
    ),
    "cifar10": dict(
        chapter="CIFAR-10", dataset="cifar10", **_CROPS, epochs=30, batch_size=128,
        lr=0.1, weight_decay=5e-4, padding=4, label_smoothing=0.1, smoke=(100, 50),
        target=(72.0, None),
    ),
    "tiny-imagenet": dict(
        chapter="Downscaled ImageNet", dataset="tiny-imagenet", **_CROPS, epochs=30,
        batch_size=64, lr=0.05, weight_decay=5e-5, padding=2, label_smoothing=0.0,
        smoke=(10, 5), target=(25.0, 50.0),
    ),
}  # fmt: skip
# Full Imagenet32/64: not run by the course yet. A starting point: Tiny ImageNet's recipe
# with batches of 256 (more images per step suit several GPUs) and the peak learning rate
# scaled by the square root of the batch ratio, as chapter 8 does (0.05 x 2 = 0.1).
for _res in (32, 64):
    RECIPES[f"imagenet{_res}"] = dict(
        RECIPES["tiny-imagenet"], dataset=f"imagenet{_res}", batch_size=256, lr=0.1,
        smoke=(2, 1), target=None,
    )  # fmt: skip

EXAMPLES = """\
examples:
  python -m lenet_utils.train --recipe mnist
      chapter 4's run, on the best device there is (full budget unless LENET_BUDGET=smoke)
  python -m lenet_utils.train --recipe cifar10 --epochs 5 --no-flip --device cuda
      chapter 6's recipe, shortened, without flips, on the GPU
  torchrun --standalone --nproc_per_node=2 -m lenet_utils.train --recipe mnist --device cpu
      the same training in 2 processes on the CPU (gloo): each takes half of every batch
  torchrun --standalone --nproc_per_node=8 -m lenet_utils.train --recipe imagenet32 \\
        --checkpoint imagenet32.pt
      8 GPUs of one machine (nccl); run it again with the same path to resume
  torchrun --nnodes=2 --node_rank=0 --nproc_per_node=8 --rdzv_endpoint=HOST:29500 \\
        -m lenet_utils.train --recipe imagenet64
      machine 0 of 2 (machine 1: --node_rank=1; HOST is machine 0's address)

Records go to $LENET_RESULTS_DIR (default: results/), full budget only; datasets are read
from $LENET_DATA_ROOT. Imagenet32/64 are converted once to a memory-mapped file in the
cache, which every process then reads.
"""


def _describe(name: str, r: dict) -> str:
    """Three lines of ``--help`` for one recipe."""
    model = f"{r['variant']} LeNet-5" + (" + batch norm" if r["batchnorm"] else "")
    crops = "reflect crops" if r["pad_mode"] == "reflect" else "shifts"
    aug = f"{r['padding']}-px {crops}"
    aug += " + flips" if r["flip"] else ""
    aug += f", label smoothing {r['label_smoothing']}" if r["label_smoothing"] else ""
    decay = f"{r['weight_decay']:.0e}".replace("e-0", "e-")
    number = CHAPTERS.index(r["chapter"]) + 1
    where = f"chapter {number}" if r["target"] else "not run by the course yet"
    if r["dataset"] == "imagenet64":
        where += " (images box-averaged to 32x32)"
    pad = " " * 17
    return (
        f"  {name:<15}{where}: {model}\n{pad}{r['epochs']} epochs, batch "
        f"{r['batch_size']}, peak lr {r['lr']}, weight decay {decay}\n{pad}{aug}"
    )


def build_parser() -> argparse.ArgumentParser:
    """The command line (``--help`` shows the recipes and examples)."""
    recipes = "\n".join(_describe(k, r) for k, r in RECIPES.items())
    parser = argparse.ArgumentParser(
        prog="python -m lenet_utils.train",
        description="Train LeNet-5 as a chapter of the course does, in one process or\n"
        "in several under torchrun (DistributedDataParallel).\n\n"
        f"recipes (every option below overrides them):\n{recipes}",
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add = parser.add_argument
    add("--recipe", required=True, choices=list(RECIPES), help="the chapter's run")
    what = parser.add_argument_group("data and model")
    what.add_argument("--dataset", choices=DATASETS, help="another dataset")
    what.add_argument(
        "--variant", choices=("modern", "classic"), help="LeNet-5 variant"
    )
    what.add_argument(
        "--batchnorm",
        action=argparse.BooleanOptionalAction,
        help="batch norm after C1, C3, C5 and F6",
    )
    what.add_argument(
        "--per-class",
        type=int,
        metavar="N",
        help="train on the first N images of each class (smoke: a few)",
    )
    what.add_argument(
        "--test-per-class",
        type=int,
        metavar="N",
        help="test on the first N images of each class",
    )
    how = parser.add_argument_group("training")
    how.add_argument("--epochs", type=int, metavar="N", help="(smoke budget: 2)")
    how.add_argument(
        "--batch-size",
        type=int,
        metavar="B",
        help="the global batch: "
        "under torchrun each of N processes takes B/N images a step",
    )
    how.add_argument("--lr", type=float, help="peak learning rate of the one-cycle")
    how.add_argument("--weight-decay", type=float, metavar="WD")
    how.add_argument("--padding", type=int, metavar="PX", help="random shifts/crops")
    how.add_argument("--pad-mode", choices=("zeros", "reflect"))
    how.add_argument(
        "--flip", action=argparse.BooleanOptionalAction, help="random horizontal flips"
    )
    how.add_argument("--label-smoothing", type=float, metavar="EPS")
    how.add_argument("--seed", type=int, default=0, help="(default: 0)")
    run = parser.add_argument_group("where and how it runs")
    run.add_argument(
        "--device",
        choices=("cuda", "mps", "cpu"),
        help="default: the best there is; under torchrun on GPUs, "
        "process k of a machine uses cuda:k",
    )
    run.add_argument(
        "--budget", choices=("full", "smoke"), help=f"default: ${BUDGET_ENV}, else full"
    )
    run.add_argument(
        "--checkpoint",
        type=Path,
        metavar="PATH",
        help="save after every epoch; if PATH exists, resume from it (same processes)",
    )
    run.add_argument(
        "--stop-after",
        type=int,
        metavar="K",
        help="stop after epoch K "
        "(with --checkpoint: go on later, e.g. within a job's time limit)",
    )
    run.add_argument(
        "--drop-remainder",
        action="store_true",
        help="under torchrun, "
        "leave out the images that do not split evenly over the processes",
    )
    run.add_argument("--threads", type=int, metavar="N", help="CPU threads per process")
    run.add_argument(
        "--timeout",
        type=float,
        default=1800,
        metavar="S",
        help="fail when the processes wait for each other over S seconds (1800)",
    )
    run.add_argument(
        "--progress",
        action=argparse.BooleanOptionalAction,
        help="live progress bars (default: $LENET_PROGRESS, else on)",
    )
    out = parser.add_argument_group("results")
    out.add_argument(
        "--chapter",
        choices=CHAPTERS,
        metavar="NAME",
        help="the chapter the record belongs to (default: the recipe's)",
    )
    out.add_argument("--no-record", action="store_true", help="write no results record")
    out.add_argument(
        "--log-json",
        type=Path,
        metavar="PATH",
        help="also write the history and throughput here (any budget)",
    )
    return parser


def settings(args: argparse.Namespace) -> dict:
    """The recipe with the options given on the command line put over it."""
    out = dict(RECIPES[args.recipe])
    options = ("dataset", "variant", "batchnorm", "epochs", "batch_size", "lr")
    options += ("weight_decay", "padding", "pad_mode", "flip", "label_smoothing")
    for key in options:
        if getattr(args, key) is not None:
            out[key] = getattr(args, key)
    smoke = budget() == "smoke"
    if smoke and args.epochs is None:
        out["epochs"] = 2
    if out["dataset"] != RECIPES[args.recipe]["dataset"]:  # smoke sizes, target: theirs
        other = next(r for r in RECIPES.values() if r["dataset"] == out["dataset"])
        out["smoke"], out["target"] = other["smoke"], None
    keys = ("variant", "batchnorm")
    if any(out[k] != RECIPES[args.recipe][k] for k in keys):
        out["target"] = None  # the chapter's target was set for its own model
    per_class, test_per_class = out["smoke"] if smoke else (None, None)
    given = (args.per_class, args.test_per_class)
    out["per_class"] = per_class if given[0] is None else given[0]
    out["test_per_class"] = test_per_class if given[1] is None else given[1]
    out["chapter"] = args.chapter or out["chapter"]
    out["stop_after"] = args.stop_after
    for key in ("epochs", "batch_size", "per_class", "test_per_class", "stop_after"):
        if out[key] is not None and out[key] < 1:
            raise ValueError(f"--{key.replace('_', '-')} must be at least 1")
    return out


def _model_label(s: dict, world: int) -> str:
    label = f"{s['variant']} LeNet-5" + (" + batch norm" if s["batchnorm"] else "")
    return label + (f", {world} processes (DDP)" if world > 1 else "")


def _prepare(s: dict, args, device: torch.device):
    """Data, model and loaders, exactly as the chapters build them."""
    mmap = s["dataset"].startswith("imagenet")  # 1.28 M images: mapped, not read
    with distributed.main_first():  # one process per machine decodes or converts
        train = load_tensors(s["dataset"], "train", per_class=s["per_class"], mmap=mmap)
        test = load_tensors(s["dataset"], "test", per_class=s["test_per_class"],
                            mmap=mmap)  # fmt: skip
    downscale = 2 if train.images.shape[-1] == 64 else 1  # LeNet-5 takes 32x32
    seed_everything(args.seed)  # the same initial weights on every rank
    model = LeNet5(
        s["variant"], in_channels=train.images.shape[1], num_classes=len(train.classes),
        input_size=train.images.shape[-1] // downscale, batchnorm=s["batchnorm"],
    )  # fmt: skip
    torch.manual_seed(args.seed + distributed.rank())  # but each rank its own crops
    loaders = make_loaders(
        train, test, device, batch_size=s["batch_size"], padding=s["padding"],
        flip=s["flip"], mode=s["pad_mode"], seed=args.seed, downscale=downscale,
        on_device=not mmap, drop_remainder=args.drop_remainder,
    )  # fmt: skip
    return train, test, model.to(device), loaders


def _log(path: Path, summary: dict, history: History) -> None:
    summary = {**summary, "history": history.epochs}
    text = json.dumps(summary, indent=2) + "\n"
    atomic_write(path, lambda f: f.write(text.encode()))


def _train(args: argparse.Namespace) -> History:
    if args.budget:
        os.environ[BUDGET_ENV] = args.budget  # what records and is_smoke() read
    if args.threads:
        torch.set_num_threads(args.threads)
    s = settings(args)
    device = distributed.setup(args.device, timeout_s=args.timeout)
    world, main = distributed.world_size(), distributed.is_main()
    backend = torch.distributed.get_backend() if world > 1 else "none"
    train, test, model, (train_loader, test_loader) = _prepare(s, args, device)
    label, params = _model_label(s, world), count_parameters(model)
    if main:
        hardware = f"{device_name(device)} | {world} process(es), backend {backend}"
        print(f"Hardware: {hardware} | budget: {budget()}")
        sizes = f"{len(train):,} training and {len(test):,} test images"
        print(f"{args.recipe}: {train.title}, {sizes}; {label}, {params:,} parameters")
        steps = f"{len(train_loader)} steps of {s['batch_size'] // world} per process"
        print(
            f"{s['epochs']} epochs, batch {s['batch_size']} ({steps}), peak lr {s['lr']}"
        )
    optimizer, scheduler = sgd_one_cycle(
        model, lr=s["lr"], epochs=s["epochs"], steps_per_epoch=len(train_loader),
        weight_decay=s["weight_decay"],
    )  # fmt: skip
    loss_fn = functools.partial(
        torch.nn.functional.cross_entropy, label_smoothing=s["label_smoothing"]
    )
    history = fit(
        distributed.wrap(model, device), train_loader, test_loader,
        epochs=s["epochs"], stop_after=args.stop_after, optimizer=optimizer,
        scheduler=scheduler, loss_fn=loss_fn, device=device,
        checkpoint=args.checkpoint, progress=args.progress,
    )  # fmt: skip
    images = train_loader.shard_size * world  # per epoch, over every process
    for row in history.epochs:
        row.setdefault("images_per_s", images / row["seconds"])
    last, rate = history.last, images * len(history.epochs) / history.train_seconds
    if not main:
        return history
    print(f"{history.train_seconds:.1f} s of training, {rate:,.0f} images/s over "
          f"{world} process(es)")  # fmt: skip
    target = s["target"]
    met = None
    if target is not None:
        met = last["test_top1"] >= target[0]
        met = met and (target[1] is None or last["test_top5"] >= target[1])
    summary = {
        "recipe": args.recipe, "chapter": s["chapter"], "dataset": train.title,
        "model": label, "params": params, "epochs": len(history.epochs),
        "top1": last["test_top1"], "top5": last.get("test_top5"),
        "train_seconds": history.train_seconds, "device": device_name(device),
        "processes": world, "backend": backend, "batch_size": s["batch_size"],
        "train_images": images, "images_per_s": rate,
    }  # fmt: skip
    if args.log_json:
        _log(args.log_json, summary, history)
        print(f"history written to {describe_path(args.log_json)}")
    if len(history.epochs) < s["epochs"]:
        print(f"stopped after epoch {len(history.epochs)} of {s['epochs']}, not "
              "recorded: run it again with the same --checkpoint to go on")  # fmt: skip
    elif not args.no_record:
        extra = {k: summary[k] for k in ("processes", "backend", "batch_size")}
        extra.update(recipe=args.recipe, images_per_s=round(rate, 1))
        if target is not None:
            top5 = f", top-5 ≥ {target[1]:g}%" if target[1] else ""
            extra.update(target=f"top-1 ≥ {target[0]:g}%{top5}", met=met)
        record_result(
            chapter=s["chapter"], dataset=train.title, model=label, params=params,
            epochs=len(history.epochs), top1=last["test_top1"],
            top5=last.get("test_top5"), train_seconds=history.train_seconds,
            device=device, extra=extra,
        )  # fmt: skip
    return history


def main(argv: list[str] | None = None) -> History:
    """Parse ``argv`` and train; a bad input ends with its reason and exit status 2."""
    args = build_parser().parse_args(argv)
    budget_before = os.environ.get(BUDGET_ENV)
    finished = False
    try:
        history = _train(args)
        finished = True
        return history
    except (ValueError, FileNotFoundError, RuntimeError) as err:
        # The same inputs reach every rank, so every rank stops here: none waits for ever.
        if os.environ.get("RANK", "0").strip() in ("0", ""):
            ours = (ValueError, OSError, distributed.LaunchError)
            kind = "" if isinstance(err, ours) else f"{type(err).__name__}: "
            print(f"python -m lenet_utils.train: error: {kind}{err}", file=sys.stderr)
        sys.exit(2)
    finally:
        distributed.teardown(wait=finished)
        if budget_before is None:  # main() called from Python: leave no trace
            os.environ.pop(BUDGET_ENV, None)
        else:
            os.environ[BUDGET_ENV] = budget_before


if __name__ == "__main__":
    main()
