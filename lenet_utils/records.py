"""Results records: one JSON file per full run, one schema (:data:`FIELDS`), one
writer (:func:`record_result`), under :func:`lenet_utils.config.results_dir`; the book's
results page (``book/_ext/results_table.py``) renders them.
"""

from __future__ import annotations

import datetime as _dt
import json
import re
import subprocess
from pathlib import Path
from typing import Sequence

import torch

from .config import REPLACE_ENV, budget, describe_path, device_name, replace_records
from .config import results_dir
from .files import atomic_write

__all__ = ["CHAPTERS", "KINDS", "record_result"]

#: The chapters that record runs, in the book's order (their names in the course plan).
CHAPTERS: tuple[str, ...] = (
    "The paper's arithmetic",
    "Building blocks by hand",
    "LeNet-5 in PyTorch",
    "MNIST",
    "The 1998 LeNet-5, faithfully",
    "CIFAR-10",
    "Downscaled ImageNet",
    "Fast training on the GPU",
    "Beyond one GPU",
)

#: What a record can be: a chapter's training run, the speed ladder, or a run behind an
#: exercise's solution (``scripts/exercise_runs.py``).
KINDS: tuple[str, ...] = ("train", "bench", "exercise")

#: Every record's fields, in the order they are written.
FIELDS: tuple[str, ...] = (
    "kind",  # one of KINDS
    "chapter",  # one of CHAPTERS
    "dataset",  # as shown to readers, e.g. "CIFAR-10 (JPEG copy)"
    "model",  # e.g. "modern LeNet-5 + batch norm"
    "params",  # trainable parameters
    "epochs",
    "top1",  # percent, on the test (or validation) split
    "top5",  # percent, or null with 10 classes or fewer
    "train_seconds",  # training only, evaluations excluded
    "device",  # the hardware's name, as torch reports it
    "torch",  # torch version
    "commit",  # the course checkout's commit
    "date",
)


def slug(*parts: str) -> str:
    """A file-name part of ``[a-z0-9-]`` only: ``"CIFAR-10 (JPEG copy)"`` -> ``cifar-10-jpeg-copy``."""
    words = [re.sub(r"[^a-z0-9]+", "-", p.lower()).strip("-") for p in parts]
    return "--".join(w for w in words if w)


def git_commit() -> str:
    """The checkout's short commit hash, or ``unknown`` outside a git checkout."""
    cmd, here = ["git", "rev-parse", "--short=12", "HEAD"], Path(__file__).parent
    try:
        out = subprocess.run(cmd, capture_output=True, text=True, cwd=here, timeout=10)
        return out.stdout.strip() or "unknown"
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def _check(
    kind: str, chapter: str, params: int, epochs: int, top1: float, top5
) -> None:
    if kind not in KINDS:
        raise ValueError(f"unknown kind {kind!r}; use one of {KINDS}")
    if chapter not in CHAPTERS:
        raise ValueError(f"unknown chapter {chapter!r}; use one of {CHAPTERS}")
    if int(params) < 1 or int(epochs) < 1:
        raise ValueError(f"params and epochs must be positive, got {params}, {epochs}")
    for name, value in (("top1", top1), ("top5", top5)):
        if value is not None and not 0 <= float(value) <= 100:
            raise ValueError(f"{name} is a percentage in [0, 100], got {value}")


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
    kind: str = "train",
    differs: dict | None = None,
    replace: bool = False,
    seed: int = 0,
    epoch_seconds: Sequence[float] | None = None,
) -> Path | None:
    """Write a full run's record as ``results/<chapter>--<dataset>--<model>--<device>.json``.

    Its fields are :data:`FIELDS`, then ``extra`` (e.g. a benchmark's rungs); smoke runs
    are not recorded. ``differs`` names each setting that differs from the chapter's
    recipe (``{"epochs": 1}``): it goes into the record and its file name, so a variant
    never takes the recipe's record. An existing record is replaced only on purpose:
    ``replace=True``, or ``$LENET_REPLACE_RECORDS=1`` (``scripts/record_chapter.py``).
    A ``seed`` other than 0 is one more run of the recipe, kept beside the others
    (:func:`record_name` ends its model with ``seed-N``). ``epoch_seconds`` (each epoch's
    training time) adds the first epoch's time and the median of the others, the figure a
    busy epoch cannot skew.
    """
    _check(kind, chapter, params, epochs, top1, top5)
    if budget() != "full":
        print("smoke budget: result not recorded")
        return None
    record = {
        "kind": kind, "chapter": chapter, "dataset": dataset, "model": model,
        "params": int(params), "epochs": int(epochs), "top1": round(float(top1), 2),
        "top5": None if top5 is None else round(float(top5), 2),
        "train_seconds": round(float(train_seconds), 1), "device": device_name(device),
        "torch": torch.__version__, "commit": git_commit(),
        "date": _dt.date.today().isoformat(), **_epoch_times(epoch_seconds),
        "seed": int(seed), **(extra or {}),
        **({"differs": dict(differs)} if differs else {}),
    }  # fmt: skip
    path = results_dir() / record_name(chapter, dataset, model, device, differs, seed)
    return _write(path, record, replace)


def _write(path: Path, record: dict, replace: bool) -> Path | None:
    """Write ``record`` to ``path`` at once, unless a record there is to be kept."""
    top5_text = "" if record["top5"] is None else f", top-5 {record['top5']}%"
    result = f"top-1 {record['top1']}%{top5_text}"
    if path.exists() and not (replace or replace_records()):
        print(
            f"not recorded ({result}): {describe_path(path)} exists and is kept; "
            f"to replace it on purpose, set {REPLACE_ENV}=1 or re-record the chapter "
            "with scripts/record_chapter.py"
        )
        return None
    text = json.dumps(record, indent=2, ensure_ascii=False) + "\n"
    atomic_write(path, lambda f: f.write(text.encode()))
    print(f"recorded {describe_path(path)}: {result}")
    return path


def _epoch_times(seconds: Sequence[float] | None) -> dict:
    """The first epoch's seconds (warm-up, caches) and the median of the others."""
    if not seconds:
        return {}
    rest = sorted(seconds[1:] or seconds)
    middle = len(rest) // 2
    median = rest[middle] if len(rest) % 2 else (rest[middle - 1] + rest[middle]) / 2
    return {"first_epoch_s": round(seconds[0], 2), "median_epoch_s": round(median, 2)}


def record_name(
    chapter: str,
    dataset: str,
    model: str,
    device: torch.device,
    differs: dict | None,
    seed: int = 0,
) -> str:
    """``NN--dataset--model[-seed-N]--device[--setting-value...].json`` for a record."""
    number = CHAPTERS.index(chapter) + 1
    model = model if seed == 0 else f"{model} seed {seed}"
    variant = [f"{key}-{value}" for key, value in sorted((differs or {}).items())]
    return f"{number:02d}--{slug(dataset, model, torch.device(device).type, *variant)}.json"
