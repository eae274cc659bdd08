"""The chapters' training runs from the command line, in one process or under torchrun:

    python -m lenet_utils.train --recipe mnist
    torchrun --standalone --nproc_per_node=2 -m lenet_utils.train --recipe mnist

A recipe (:data:`RECIPES`) is a chapter's run; every option overrides it. Under
``torchrun`` rank 0 alone prints, checkpoints and records."""

from __future__ import annotations

import argparse
import functools
import json
import math
import os
import shlex
import sys
from pathlib import Path

import torch
import torch.nn.functional as F

from . import distributed
from .config import BUDGET_ENV, BUDGETS, DEVICES, budget, describe_path, device_name
from .config import results_dir, seed_everything
from .files import WriteError, atomic_write, check_writable
from .models import LeNet5, count_parameters
from .pipeline import make_loaders
from .readers import DATASETS, load_tensors
from .records import CHAPTERS, record_name, record_result
from .training import History, fit, lr_for_batch, sgd_one_cycle

__all__ = ["RECIPES", "main"]

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
  torchrun --nnodes=2 --node_rank=0 --nproc_per_node=8 --rdzv_endpoint=HOST:PORT \\
        --rdzv_conf=join_timeout=300 -m lenet_utils.train --recipe imagenet64
      machine 0 of 2 (machine 1: --node_rank=1; HOST is machine 0's address, PORT
      a free port there); gives up after 300 s if the machines do not all join

Records go to $LENET_RESULTS_DIR (default: results/), full budget only; datasets are read
from $LENET_DATA_ROOT. Imagenet32/64 are converted once to a memory-mapped file in the
cache, which every process then reads.
"""


def _describe(name: str, r: dict) -> str:
    """Three lines of ``--help`` for one recipe."""
    model = _model_label(r, 1)
    crops = "reflect crops" if r["pad_mode"] == "reflect" else "shifts"
    aug = f"{r['padding']}-px {crops}" + (" + flips" if r["flip"] else "")
    aug += f", label smoothing {r['label_smoothing']}" if r["label_smoothing"] else ""
    decay = f"{r['weight_decay']:.0e}".replace("e-0", "e-")
    number = CHAPTERS.index(r["chapter"]) + 1
    where = f"chapter {number}" if r["target"] else "not run by the course yet"
    where += " (images box-averaged to 32x32)" * (r["dataset"] == "imagenet64")
    pad = " " * 17
    return (
        f"  {name:<15}{where}: {model}\n{pad}{r['epochs']} epochs, batch "
        f"{r['batch_size']}, peak lr {r['lr']}, weight decay {decay}\n{pad}{aug}"
    )


BOOL, FLAG = argparse.BooleanOptionalAction, "store_true"
DATA, TRAINING, RUN, RESULTS = "data and model", "training", "how it runs", "results"
#: Every option after --recipe: (group, flag, argparse's keywords).
OPTIONS = (
    (DATA, "--dataset", dict(choices=DATASETS, help="another dataset")),
    (DATA, "--variant", dict(choices=("modern", "classic"), help="LeNet-5 variant")),
    (DATA, "--batchnorm", dict(action=BOOL, help="batch norm after C1, C3, C5 and F6")),
    (DATA, "--per-class", dict(type=int, metavar="N", help="train on the first N "
                               "images of each class (smoke: a few)")),
    (DATA, "--test-per-class", dict(type=int, metavar="N", help="test on the first N "
                                    "images of each class")),
    (TRAINING, "--epochs", dict(type=int, metavar="N", help="(smoke budget: 2)")),
    (TRAINING, "--batch-size", dict(type=int, metavar="B", help="the global batch: "
     "under torchrun each of N processes takes B/N images a step")),
    (TRAINING, "--lr", dict(type=float, help="peak learning rate of the one-cycle "
     "(default: the recipe's, times the square root of the --batch-size ratio)")),
    (TRAINING, "--weight-decay", dict(type=float, metavar="WD")),
    (TRAINING, "--padding", dict(type=int, metavar="PX", help="random shifts/crops")),
    (TRAINING, "--pad-mode", dict(choices=("zeros", "reflect"))),
    (TRAINING, "--flip", dict(action=BOOL, help="random horizontal flips")),
    (TRAINING, "--label-smoothing", dict(type=float, metavar="EPS")),
    (TRAINING, "--seed", dict(type=int, default=0, help="(default: 0)")),
    (RUN, "--device", dict(choices=DEVICES, help="default: the best there is; under "
     "torchrun on GPUs, process k of a machine uses cuda:k")),
    (RUN, "--budget", dict(choices=BUDGETS, help=f"default: ${BUDGET_ENV}, else full")),
    (RUN, "--checkpoint", dict(type=Path, metavar="PATH", help="save after every "
     "epoch; if PATH exists, resume from it (same settings, same processes)")),
    (RUN, "--stop-after", dict(type=int, metavar="K", help="stop after epoch K (with "
     "--checkpoint: go on later, e.g. within a job's time limit)")),
    (RUN, "--drop-remainder", dict(action=FLAG, help="under torchrun, leave out the "
     "images that do not split evenly over the processes")),
    (RUN, "--threads", dict(type=int, metavar="N", help="CPU threads per process")),
    (RUN, "--timeout", dict(type=float, default=1800, metavar="S", help="fail when "
     "the processes wait for each other over S seconds (1800)")),
    (RUN, "--progress", dict(action=BOOL, help="live progress bars (default: "
     "$LENET_PROGRESS, else on)")),
    (RESULTS, "--chapter", dict(choices=CHAPTERS, metavar="NAME", help="the chapter "
     "the record belongs to (default: the recipe's)")),
    (RESULTS, "--no-record", dict(action=FLAG, help="write no results record")),
    (RESULTS, "--replace-record", dict(action=FLAG, help="replace an existing record "
     "of the same run (by default it is kept)")),
    (RESULTS, "--log-json", dict(type=Path, metavar="PATH", help="also write the "
     "history and throughput here (any budget)")),
)  # fmt: skip


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
    parser.add_argument(
        "--recipe", required=True, choices=list(RECIPES), help="the chapter's run"
    )
    groups = {g: parser.add_argument_group(g) for g in (DATA, TRAINING, RUN, RESULTS)}
    for group, flag, options in OPTIONS:
        groups[group].add_argument(flag, **options)
    return parser


#: What a run is trained with: saved in its checkpoint (a resume must keep them), and
#: those that differ from the recipe named in its record.
TRAINING_SETTINGS = ("dataset", "variant", "batchnorm", "epochs", "batch_size", "lr",
                     "weight_decay", "padding", "pad_mode", "flip", "label_smoothing",
                     "per_class", "test_per_class", "seed")  # fmt: skip


def settings(args: argparse.Namespace) -> dict:
    """The recipe with the options given on the command line put over it."""
    s = dict(RECIPES[args.recipe])
    for key in TRAINING_SETTINGS[:11]:  # those a recipe sets
        if getattr(args, key) is not None:
            s[key] = getattr(args, key)
    if args.batch_size is not None and args.lr is None:  # chapter 8's rule
        base = RECIPES[args.recipe]["batch_size"]
        s["lr"] = round(lr_for_batch(s["batch_size"], s["lr"], base), 4)
    smoke = budget() == "smoke"
    if smoke and args.epochs is None:
        s["epochs"] = 2
    if s["dataset"] != RECIPES[args.recipe]["dataset"]:  # smoke sizes, target: theirs
        other = next(r for r in RECIPES.values() if r["dataset"] == s["dataset"])
        s["smoke"], s["target"] = other["smoke"], None
    if any(s[k] != RECIPES[args.recipe][k] for k in ("variant", "batchnorm")):
        s["target"] = None  # the chapter's target was set for its own model
    for key, default in zip(("per_class", "test_per_class"), s["smoke"]):
        given = getattr(args, key)
        s[key] = given if given is not None else default if smoke else None
    s["chapter"] = args.chapter or s["chapter"]
    s["stop_after"], s["seed"] = args.stop_after, args.seed
    at_least_1 = lambda v: v is None or v >= 1  # noqa: E731
    checks = [
        (k, s[k], at_least_1, "at least 1")
        for k in ("epochs", "batch_size", "per_class", "test_per_class", "stop_after")
    ]
    checks += [
        ("padding", s["padding"], lambda v: v >= 0, "0 or more"),
        ("lr", s["lr"], lambda v: 0 < v < math.inf, "a positive number"),
        ("weight_decay", s["weight_decay"], lambda v: 0 <= v < math.inf, "0 or more"),
        ("label_smoothing", s["label_smoothing"], lambda v: 0 <= v < 1, "in [0, 1)"),
        ("threads", args.threads, at_least_1, "at least 1"),
        ("timeout", args.timeout, lambda v: 0 < v < math.inf, "a positive number"),
    ]  # fmt: skip
    for key, value, ok, what in checks:
        if not ok(value):
            flag = "--" + key.replace("_", "-")
            raise ValueError(f"{flag} must be {what}, got {value}")
    return s


def differences(s: dict, recipe: str) -> dict:
    """The settings of ``s`` that differ from the recipe's, for the record."""
    base = {**RECIPES[recipe], "per_class": None, "test_per_class": None, "seed": 0}
    return {k: s[k] for k in TRAINING_SETTINGS if s[k] != base[k]}


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
    n, b = loaders[0].shard_size, loaders[0].batch_size
    if s["batchnorm"] and (n % b or b) == 1:  # refused now, not after an epoch
        raise ValueError(
            f"with batch norm, the last training batch of each epoch would hold one "
            f"image ({n:,} images in batches of {b} per process), and batch norm "
            f"cannot normalise a single image: choose another --batch-size, e.g. "
            f"{s['batch_size'] + distributed.world_size()}"
        )
    return train, test, model.to(device), loaders


def _train(args: argparse.Namespace) -> History:
    if args.budget:
        os.environ[BUDGET_ENV] = args.budget  # what records and is_smoke() read
    if args.threads:
        torch.set_num_threads(args.threads)
    s = settings(args)
    for path in (args.checkpoint, args.log_json):  # writable? checked before any work
        if path is not None and distributed.is_main():
            check_writable(path)
    device = distributed.join_process_group(args.device, timeout_s=args.timeout)
    train, test, model, (train_loader, test_loader) = _prepare(s, args, device)
    run = _Run(args, s, train.title, device)
    params = count_parameters(model)
    if distributed.is_main():
        hardware = f"{device_name(device)} | {run.world} process(es)"
        print(f"Hardware: {hardware}, backend {run.backend} | budget: {budget()}")
        sizes = f"{train.title}, {len(train):,} training and {len(test):,} test images"
        print(f"{args.recipe}: {sizes}; {run.label}, {params:,} parameters")
        bs = s["batch_size"]
        steps = f"{len(train_loader)} steps of {bs // run.world} per process"
        print(f"{s['epochs']} epochs, batch {bs} ({steps}), peak lr {s['lr']}")
    optimizer, scheduler = sgd_one_cycle(
        model, lr=s["lr"], epochs=s["epochs"], steps_per_epoch=len(train_loader),
        weight_decay=s["weight_decay"],
    )  # fmt: skip
    loss_fn = functools.partial(F.cross_entropy, label_smoothing=s["label_smoothing"])
    history = fit(
        distributed.wrap(model, device), train_loader, test_loader,
        epochs=s["epochs"], stop_after=args.stop_after, optimizer=optimizer,
        scheduler=scheduler, loss_fn=loss_fn, device=device,
        checkpoint=args.checkpoint, progress=args.progress,
        settings={k: s[k] for k in TRAINING_SETTINGS},
    )  # fmt: skip
    images = train_loader.shard_size * distributed.world_size()  # per epoch, in all
    for row in history.epochs:
        row.setdefault("images_per_s", images / row["seconds"])
    if distributed.is_main():
        run.finish(history, params, images)
    return history


class _Run:
    """A run's results: its record (its path checked at once) and its optional log."""

    def __init__(self, args, s: dict, title: str, device) -> None:
        self.args, self.s, self.title, self.device = args, s, title, device
        self.world, self.differs = distributed.world_size(), differences(s, args.recipe)
        self.label = _model_label(s, self.world)
        self.backend = torch.distributed.get_backend() if self.world > 1 else "none"
        if distributed.is_main() and self.records() and budget() == "full":
            name = record_name(s["chapter"], title, self.label, device, self.differs)
            check_writable(results_dir() / name)  # now, before training

    def records(self) -> bool:
        """Whether the run ends with a record (written at the full budget only)."""
        whole = self.s["stop_after"] is None or self.s["stop_after"] >= self.s["epochs"]
        return not self.args.no_record and whole

    def finish(self, history: History, params: int, images: int) -> None:
        """Print the throughput, write the record, then the log; a failed write prints
        the result, so that it is not lost, and says where it could not be written."""
        last, seconds = history.last, history.train_seconds
        rate = images * len(history.epochs) / seconds
        summary = {
            "recipe": self.args.recipe, "chapter": self.s["chapter"],
            "dataset": self.title, "model": self.label, "params": params,
            "epochs": len(history.epochs), "top1": last["test_top1"],
            "top5": last.get("test_top5"), "train_seconds": seconds,
            "device": device_name(self.device), "processes": self.world,
            "backend": self.backend, "batch_size": self.s["batch_size"],
            "train_images": images, "images_per_s": rate,
        }  # fmt: skip
        over = f"over {self.world} process(es)"
        print(f"{seconds:.1f} s of training, {rate:,.0f} images/s {over}")
        failed = []
        for write in (self._record, self._log):
            try:
                write(summary, history)
            except OSError as err:
                failed.append(str(err))
        if failed:
            print(f"result (not saved): {json.dumps(summary)}")
            raise WriteError("; ".join(failed))

    def _record(self, summary: dict, history: History) -> None:
        if not self.records():
            if len(history.epochs) < self.s["epochs"]:
                print(f"stopped after epoch {len(history.epochs)} of {self.s['epochs']}"
                      ", not recorded: run it again with the same --checkpoint to go "
                      "on")  # fmt: skip
            return
        extra = {k: summary[k] for k in ("processes", "backend", "batch_size")}
        rate = round(summary["images_per_s"], 1)
        extra.update(recipe=self.args.recipe, images_per_s=rate)
        target = self.s["target"]
        if target is not None:
            met = summary["top1"] >= target[0]
            met = met and (target[1] is None or summary["top5"] >= target[1])
            top5 = f", top-5 ≥ {target[1]:g}%" if target[1] else ""
            extra.update(target=f"top-1 ≥ {target[0]:g}%{top5}", met=met)
        record_result(
            chapter=self.s["chapter"], dataset=self.title, model=self.label,
            params=summary["params"], epochs=summary["epochs"], top1=summary["top1"],
            top5=summary["top5"], train_seconds=summary["train_seconds"],
            device=self.device, extra=extra, differs=self.differs,
            replace=self.args.replace_record,
        )  # fmt: skip

    def _log(self, summary: dict, history: History) -> None:
        if (path := self.args.log_json) is None:
            return
        text = json.dumps({**summary, "history": history.epochs}, indent=2) + "\n"
        atomic_write(path, lambda f: f.write(text.encode()))
        print(f"history written to {describe_path(path)}")


def _interrupted(args: argparse.Namespace, argv: list[str]) -> str:
    """One line after Ctrl-C: where the last checkpoint is and how to go on."""
    if args.checkpoint is None or not Path(args.checkpoint).is_file():
        return (
            "interrupted; no checkpoint was written (--checkpoint PATH saves one after "
            "every epoch, to resume from)"
        )
    command = "python -m lenet_utils.train " + shlex.join(argv)
    command = "the same torchrun command" if distributed.launched() else command
    where = describe_path(args.checkpoint)
    return f"interrupted; the last checkpoint is {where}: resume with {command}"


def main(argv: list[str] | None = None) -> History:
    """Parse ``argv`` and train; a bad input or a failure ends with one line (exit
    status 2), Ctrl-C with where to resume from (exit status 130)."""
    argv = sys.argv[1:] if argv is None else list(argv)
    args = build_parser().parse_args(argv)
    budget_before = os.environ.get(BUDGET_ENV)
    rank_zero = os.environ.get("RANK", "0").strip() in ("0", "")  # torchrun's rank
    history = None
    try:
        history = _train(args)
        return history
    except KeyboardInterrupt:
        if rank_zero:
            print(_interrupted(args, argv), file=sys.stderr)
        sys.exit(130)
    except (ValueError, OSError, RuntimeError, FloatingPointError) as err:
        # The same inputs reach every rank, so every rank stops here: none waits for ever.
        if rank_zero:
            ours = (ValueError, OSError, distributed.LaunchError, FloatingPointError)
            kind = "" if isinstance(err, ours) else f"{type(err).__name__}: "
            print(f"python -m lenet_utils.train: error: {kind}{err}", file=sys.stderr)
        sys.exit(2)
    finally:
        distributed.teardown(wait=history is not None)
        if budget_before is None:  # main() called from Python: leave no trace
            os.environ.pop(BUDGET_ENV, None)
        else:
            os.environ[BUDGET_ENV] = budget_before


if __name__ == "__main__":
    main()
