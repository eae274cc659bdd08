"""How chapters 6 and 7 chose their recipes: on a validation split, never the test set.

    python scripts/recipe_search.py DATASET CONFIGS.json LOG.jsonl

DATASET is ``cifar10`` (5,000 training images held out, 500 per class) or ``tiny-imagenet``
(10,000 held out, 50 per class); the split is ``lenet_utils.pipeline.hold_out`` with seed 0,
the one the chapters use. Each config (a JSON list of dicts: ``epochs``, ``lr``, ``wd``,
label smoothing ``ls``, ``padding``, ``flip``, ``batch``, ``seed``) trains the modern LeNet-5
with batch norm and scores the held-out images after every epoch. Every run appends one line
to LOG.jsonl. The test split is never loaded. Runs share the machine (``THREADS``), so their
seconds are no measurement.
"""

import json
import os
import sys

import torch

torch.set_num_threads(int(os.environ.get("THREADS", "2")))
os.environ.setdefault("LENET_PROGRESS", "0")

from lenet_utils.models import LeNet5, count_parameters  # noqa: E402
from lenet_utils.pipeline import hold_out, make_loaders  # noqa: E402
from lenet_utils.readers import load_tensors  # noqa: E402
from lenet_utils.training import fit, sgd_one_cycle  # noqa: E402

VAL_PER_CLASS = {"cifar10": 500, "tiny-imagenet": 50}


def run(dataset: str, cfg: dict) -> dict:
    """One config, trained on the training part and scored on the held-out part."""
    train, val = hold_out(
        load_tensors(dataset, "train"), per_class=VAL_PER_CLASS[dataset], seed=0
    )
    cpu = torch.device("cpu")
    loader, val_loader = make_loaders(
        train,
        val,
        cpu,
        batch_size=cfg.get("batch", 128),
        padding=cfg.get("padding", 4),
        flip=cfg.get("flip", True),
        mode="reflect",
        seed=cfg.get("seed", 0),
    )
    torch.manual_seed(cfg.get("seed", 0))
    model = LeNet5(
        "modern", in_channels=3, num_classes=len(train.classes), batchnorm=True
    )
    epochs = cfg["epochs"]
    opt, sched = sgd_one_cycle(
        model,
        lr=cfg["lr"],
        epochs=epochs,
        steps_per_epoch=len(loader),
        weight_decay=cfg.get("wd", 5e-4),
    )
    ls = cfg.get("ls", 0.0)

    def loss_fn(logits, labels, reduction="mean"):
        return torch.nn.functional.cross_entropy(
            logits, labels, label_smoothing=ls, reduction=reduction
        )

    history = fit(
        model,
        loader,
        val_loader,
        epochs=epochs,
        optimizer=opt,
        scheduler=sched,
        loss_fn=loss_fn,
        device=cpu,
        split="val",
    )
    frame = history.frame()
    out = dict(cfg, dataset=dataset, params=count_parameters(model))
    out["val_top1"] = [round(v, 2) for v in frame.val_top1.tolist()]
    if "val_top5" in frame:
        out["val_top5"] = [round(v, 2) for v in frame.val_top5.tolist()]
    return out


def main(argv: list[str]) -> int:
    dataset, configs, log = argv
    for cfg in json.load(open(configs)):
        result = run(dataset, cfg)
        with open(log, "a") as f:
            f.write(json.dumps(result) + "\n")
        print(json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
