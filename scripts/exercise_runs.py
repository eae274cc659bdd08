"""The training runs behind the exercises' solutions, recorded like the chapters' own runs.

    python scripts/exercise_runs.py                 # every exercise
    python scripts/exercise_runs.py ex-mnist-lr     # some of them, by label

Each run uses the chapter's own recipe with the one change its exercise asks for, at the
full budget, and writes a record of ``kind: "exercise"`` to ``results/``: the book's results
page lists them, and each solution quotes its figures from there. The runs are the same code a
student would write with the course's public API; nothing here is used by the chapters.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
from typing import Callable

import torch
from torch import nn
from torch.optim.lr_scheduler import OneCycleLR

os.environ.setdefault("LENET_BUDGET", "full")
os.environ.setdefault("LENET_PROGRESS", "0")

from lenet_utils import count_parameters, setup  # noqa: E402
from lenet_utils.lenet1998 import LeNet1998, input_1998, rbf_map_loss  # noqa: E402
from lenet_utils.models import LeNet5  # noqa: E402
from lenet_utils.pipeline import (  # noqa: E402
    TensorLoader,
    hold_out,
    make_loaders,
)
from lenet_utils.readers import load_tensors  # noqa: E402
from lenet_utils.records import record_result  # noqa: E402
from lenet_utils.training import History, fit, sgd_one_cycle  # noqa: E402

DEVICE = torch.device("cpu")  # set by main()


def record(
    chapter: str,
    label: str,
    dataset: str,
    setting: str,
    model,
    history: History,
    epochs: int,
    extra: dict | None = None,
    seed: int = 0,
) -> None:
    """One exercise run's record: the chapter's fields, plus the exercise's label."""
    last = history.last
    record_result(
        chapter=chapter,
        dataset=dataset,
        model=setting,
        params=count_parameters(model),
        epochs=epochs,
        top1=last["test_top1"] if "test_top1" in last else last["val_top1"],
        top5=last.get("test_top5"),
        train_seconds=history.train_seconds,
        device=DEVICE,
        epoch_seconds=[row["seconds"] for row in history.epochs],
        seed=seed,
        extra={
            "exercise": label,
            "train_top1": round(float(last["train_top1"]), 2),
            **(extra or {}),
        },
        kind="exercise",
    )


def _train(
    model,
    loader,
    test_loader,
    epochs: int,
    lr: float,
    *,
    weight_decay: float = 5e-4,
    one_cycle: bool = True,
    loss_fn=nn.functional.cross_entropy,
    amp: bool = True,
    split: str = "test",
) -> History:
    """The course's recipe: SGD with Nesterov momentum and a one-cycle schedule, ``fit``."""
    model.to(DEVICE)
    opt, sched = sgd_one_cycle(
        model,
        lr=lr,
        epochs=epochs,
        steps_per_epoch=len(loader),
        weight_decay=weight_decay,
        one_cycle=one_cycle,
    )
    return fit(
        model,
        loader,
        test_loader,
        epochs=epochs,
        optimizer=opt,
        scheduler=sched,
        loss_fn=loss_fn,
        device=DEVICE,
        amp=amp,
        split=split,
    )


# ------------------------------------------------------------------------------------------
# Chapter 4: MNIST (15 epochs, batch 128, one-cycle to 0.1, 2-pixel shifts)
# ------------------------------------------------------------------------------------------


def _mnist(per_class: int | None = None, *, shift: bool = True, repeat: int = 1):
    """MNIST loaders with chapter 4's recipe; ``repeat`` lists a small training set that
    many times per epoch, so that an epoch has about as many steps as a full one."""
    train = load_tensors("mnist", "train", per_class=per_class)
    test = load_tensors("mnist", "test")
    listed = dataclasses.replace(
        train,
        images=train.images.repeat(repeat, 1, 1, 1),
        labels=train.labels.repeat(repeat),
    )
    loader, test_loader = make_loaders(
        listed, test, DEVICE, batch_size=128, padding=2 if shift else 0
    )
    return train, loader, test_loader


def _mnist_run(
    loader, test_loader, epochs: int, *, lr: float = 0.1, one_cycle: bool = True
):
    torch.manual_seed(0)
    model = LeNet5("modern", input_size=28)
    history = _train(model, loader, test_loader, epochs, lr, one_cycle=one_cycle)
    return model, history


def ex_mnist_noaug() -> None:
    train, loader, test_loader = _mnist(shift=False)
    model, history = _mnist_run(loader, test_loader, 15)
    record(
        "MNIST",
        "ex-mnist-noaug",
        train.title,
        "modern LeNet-5, no augmentation",
        model,
        history,
        15,
    )


def ex_mnist_lr() -> None:
    """Constant rates 0.1 and 0.01 (momentum 0.9) against the one-cycle to 0.1 with its
    momentum held at 0.9 too, so that only the learning rate differs; a choice, so it is
    scored on chapter 4's validation split, not the test set."""
    train, val = hold_out(load_tensors("mnist", "train"), per_class=500, seed=0)
    loader, val_loader = make_loaders(train, val, DEVICE, batch_size=128, padding=2)
    runs = {"constant learning rate 0.1": 0.1, "constant learning rate 0.01": 0.01}
    runs["one-cycle to 0.1, momentum held at 0.9"] = None
    for setting, lr in runs.items():
        torch.manual_seed(0)
        model = LeNet5("modern", input_size=28).to(DEVICE)
        opt, _ = sgd_one_cycle(model, lr=lr or 0.1, epochs=15, steps_per_epoch=1,
                               one_cycle=False)  # fmt: skip
        held = None
        if lr is None:  # built only here: OneCycleLR sets the optimiser's rate at once
            steps = 15 * len(loader)
            held = OneCycleLR(opt, 0.1, total_steps=steps, cycle_momentum=False)
        history = fit(model, loader, val_loader, epochs=15, optimizer=opt,
                      scheduler=held, device=DEVICE, split="val")  # fmt: skip
        tops = history.frame().val_top1
        first_99 = tops.index[tops >= 99]
        record("MNIST", "ex-mnist-lr", train.title, f"modern LeNet-5, {setting}",
               model, history, 15, {
                   "split": "validation (5,000 training digits)",
                   "best_top1": round(float(tops.max()), 2),
                   "last5_range": round(float(tops.tail(5).max() - tops.tail(5).min()), 2),
                   "first_epoch_99": int(first_99[0]) if len(first_99) else None,
                   "val_top1_by_epoch": [round(float(t), 2) for t in tops],
               })  # fmt: skip


def ex_mnist_small() -> None:
    for n in (10, 100, 1000):
        # The same number of steps as the full run (15 epochs of 60,000 digits), with only
        # 15 evaluations: each epoch lists the small set 6,000 / n times.
        train, loader, test_loader = _mnist(per_class=n, repeat=6000 // n)
        model, history = _mnist_run(loader, test_loader, 15)
        record(
            "MNIST",
            "ex-mnist-small",
            train.title,
            f"modern LeNet-5, {n:,} training digits per class",
            model,
            history,
            15,
            {"per_class": n, "passes_per_epoch": 6000 // n},
        )


# ------------------------------------------------------------------------------------------
# Chapter 5: LeNet-5 (1998) (20 epochs, batch 64, one-cycle to 0.005, no weight decay)
# ------------------------------------------------------------------------------------------


def _mnist_1998(seed: int = 0):
    train = load_tensors("mnist", "train")
    test = load_tensors("mnist", "test")
    loader = TensorLoader(
        input_1998(train.images).to(DEVICE),
        train.labels.to(DEVICE),
        64,
        shuffle=True,
        seed=seed,
    )
    test_loader = TensorLoader(
        input_1998(test.images).to(DEVICE), test.labels.to(DEVICE), 1000
    )
    return train, loader, test_loader


def _criterion(scores, labels, reduction="mean"):
    return rbf_map_loss(scores, labels, j=1.0, reduction=reduction)


def ex_1998_softmax() -> None:
    train, loader, test_loader = _mnist_1998()
    torch.manual_seed(0)
    model = LeNet1998()
    model.classifier.output = nn.Linear(84, 10)
    history = _train(model, loader, test_loader, 20, 0.05, weight_decay=0.0)
    record(
        "The 1998 LeNet-5, faithfully",
        "ex-1998-softmax",
        "MNIST",
        "LeNet-5 (1998), softmax output",
        model,
        history,
        20,
    )


# ------------------------------------------------------------------------------------------
# Chapter 6: CIFAR-10 (30 epochs, batch 128; crops, flips, label smoothing, batch norm)
# ------------------------------------------------------------------------------------------


def _smoothed(logits, labels, reduction="mean"):
    return nn.functional.cross_entropy(
        logits, labels, label_smoothing=0.1, reduction=reduction
    )


def _cifar_run(
    *,
    padding=4,
    flip=True,
    smoothing=True,
    batchnorm=True,
    widen: bool = False,
    validate: bool = False,
):
    """Chapter 6's recipe with one change; ``validate`` trains on the chapter's 45,000
    images and scores the 5,000 it holds out, instead of the test split."""
    train = load_tensors("cifar10", "train")
    test = load_tensors("cifar10", "test")
    if validate:
        train, test = hold_out(train, per_class=500, seed=0)
    loader, test_loader = make_loaders(
        train, test, DEVICE, batch_size=128, padding=padding, flip=flip, mode="reflect"
    )
    torch.manual_seed(0)
    model = LeNet5("modern", in_channels=3, batchnorm=batchnorm)
    if widen:  # 16 maps in C1 and 32 in C3, C5 kept at 120 maps
        f = model.features
        f.C1, f.bn1 = nn.Conv2d(3, 16, 5), nn.BatchNorm2d(16)
        f.C3, f.bn3 = nn.Conv2d(16, 32, 5), nn.BatchNorm2d(32)
        f.C5 = nn.Conv2d(32, 120, 5)
    loss = _smoothed if smoothing else nn.functional.cross_entropy
    history = _train(
        model,
        loader,
        test_loader,
        30,
        0.1,
        loss_fn=loss,
        split="val" if validate else "test",
    )
    return train, model, history, test_loader


def ex_cifar_ablation() -> None:
    """The recipe with one change removed, and with both augmentations removed, each
    scored on the chapter's validation split (its three seeds give the full recipe)."""
    changes = {
        "no crops": {"padding": 0},
        "no flips": {"flip": False},
        "no crops, no flips": {"padding": 0, "flip": False},
        "no label smoothing": {"smoothing": False},
        "no batch norm": {"batchnorm": False},
    }
    for name, change in changes.items():
        train, model, history, _ = _cifar_run(**change, validate=True)
        record(
            "CIFAR-10",
            "ex-cifar-ablation",
            train.title,
            f"modern LeNet-5 + batch norm recipe, {name}",
            model,
            history,
            30,
            {"split": "validation (5,000 training images)"},
        )


def ex_cifar_wider() -> None:
    train, model, history, test_loader = _cifar_run(widen=True)
    record(
        "CIFAR-10",
        "ex-cifar-wider",
        train.title,
        "modern LeNet-5 + batch norm, 16 and 32 maps in C1 and C3",
        model,
        history,
        30,
        {"seconds_per_epoch": round(history.train_seconds / 30, 1)},
    )


# ------------------------------------------------------------------------------------------
# Chapter 8: batch sizes for the "data on device" pipeline (10 epochs, fp32)
# ------------------------------------------------------------------------------------------


EXERCISES: dict[str, Callable[[], None]] = {
    "ex-mnist-noaug": ex_mnist_noaug,
    "ex-mnist-lr": ex_mnist_lr,
    "ex-mnist-small": ex_mnist_small,
    "ex-1998-softmax": ex_1998_softmax,
    "ex-cifar-ablation": ex_cifar_ablation,
    "ex-cifar-wider": ex_cifar_wider,
}


def main(argv: list[str] | None = None) -> int:
    global DEVICE
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("labels", nargs="*", help=f"some of: {', '.join(EXERCISES)}")
    parser.add_argument(
        "--replace",
        action="store_true",
        help="replace the runs' existing records (by default an existing record is kept)",
    )
    args = parser.parse_args(argv)
    if (
        args.replace
    ):  # record_result reads it: replacing is on purpose, never by accident
        os.environ["LENET_REPLACE_RECORDS"] = "1"
    unknown = [x for x in args.labels if x not in EXERCISES]
    if unknown:
        parser.error(f"unknown exercise(s) {unknown}: use some of {list(EXERCISES)}")
    DEVICE = setup()
    for label in args.labels or EXERCISES:
        print(f"== {label}", flush=True)
        EXERCISES[label]()
    return 0


if __name__ == "__main__":
    sys.exit(main())
