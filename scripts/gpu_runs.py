"""Every GPU measurement of the course in one command, on one GPU (issue 23).

    python scripts/gpu_runs.py --data .gpu_data                    # every part
    python scripts/gpu_runs.py --data .gpu_data --only ladder,sweep
    python scripts/gpu_runs.py --data .gpu_data --plan             # the plan, no run

The parts, in order (:data:`PARTS`; ``--only`` picks some):

* ``ladder``: chapter 8's ladder, ``python -m lenet_utils.bench`` (6 rungs x 10 epochs);
* ``sweep``: chapter 8's batch-size sweep, ``python -m lenet_utils.bench --sweep``:
  the ladder's fastest eager pipeline at batch 64 to 4,096, 10 epochs each, the peak
  learning rate from ``lenet_utils.bench.lr_for_batch`` (the ladder's rule); a record
  per batch size;
* ``sprint``: chapter 8's sprint to 99%, ``python -m lenet_utils.bench --sprint``: the
  same pipeline at batch 512 with a 2-epoch schedule, 3 seeds, one record;
* ``mnist``, ``cifar10``, ``tiny-imagenet``: chapters 4, 6 and 7's main runs,
  ``python -m lenet_utils.train --recipe NAME``.

``--data DIR`` is the data root of every part (it replaces ``$LENET_DATA_ROOT``); a
part whose data is not there says so in one line and the others run; nothing is
downloaded. The plan, printed first, gives each part's estimate on one H100 (under 8
minutes in all; guesses from the step counts until a GPU run replaces them), then each
part prints its wall time as it ends.
Records go to ``results/`` (``$LENET_RESULTS_DIR``) at the full budget only, through
``record_result``: a GPU record's file name ends in ``--cuda.json``, so no CPU record is
touched, and an existing GPU record is kept unless ``--replace-records`` says otherwise.
``--archive FILE`` packs the records this run wrote into one ``.tar.gz``.
``LENET_BUDGET=smoke`` runs every part in seconds on tiny subsets and records nothing
(CI runs it on the CPU: tests/test_gpu_runs.py). At the full budget the script refuses
a device other than CUDA: its runs are the GPU's.

The GPU session, step by step (the device tool: 64 MiB carried per call, 15 minutes of
device time per session, 10 minutes per command, and a machine waits only about 30 s
for the next call, so make each call at once after the one before):

0. Here, in the repository root (``.gpu_data/`` is git-ignored; MNIST gzipped: 12 MB)::

       mkdir -p .gpu_data/MNIST/raw
       for f in ../shared/data/MNIST/raw/*-ubyte; do
           gzip -c "$f" > ".gpu_data/MNIST/raw/$(basename "$f").gz"; done
       cp ../shared/data/cifar10-jpg-*.zip .gpu_data/
       cp ../shared/data/tiny-imagenet-32-*.zip .gpu_data/
       python scripts/gpu_runs.py --data .gpu_data --plan     # every part: "data: ok"

1. ``run`` with timeout_s 420 and carry (29 MB; the four ``.gz`` files by name, so that
   the unpacked copies a ladder run here leaves beside them never travel)::

       [".gpu_data/MNIST/raw/train-images-idx3-ubyte.gz",
        ".gpu_data/MNIST/raw/train-labels-idx1-ubyte.gz",
        ".gpu_data/MNIST/raw/t10k-images-idx3-ubyte.gz",
        ".gpu_data/MNIST/raw/t10k-labels-idx1-ubyte.gz",
        ".gpu_data/cifar10-jpg-test.zip", ".gpu_data/tiny-imagenet-32-val.zip"]

   and this command, as one line (``python3`` there is the one with PyTorch)::

       set -o pipefail; export PYTHONUNBUFFERED=1; python3 scripts/gpu_runs.py
       --data .gpu_data --only ladder,sweep,sprint,mnist --archive $OUT/records-1.tar.gz
       2>&1 | tee $OUT/log-1.txt

   About 4 minutes; a fresh machine takes a minute or two more to start.
2. At once: carry ``[".gpu_data/cifar10-jpg-train.zip"]`` (53 MB; the test zip came
   in call 1 and stays while the machine is held), timeout_s 240, the command with
   ``--only cifar10``, ``records-2.tar.gz`` and ``log-2.txt``.
3. Tiny ImageNet only if ``status`` leaves budget_left_s >= 330: carry
   ``[".gpu_data/tiny-imagenet-32-train-1.zip"]`` (33 MB) with the command
   ``ls -l .gpu_data`` (a transfer only; val came in call 1), then at once
4. carry ``[".gpu_data/tiny-imagenet-32-train-2.zip"]`` (33 MB), timeout_s 300, the
   command with ``--only tiny-imagenet``, ``records-3.tar.gz``, ``log-3.txt``.
   Then ``give_back``.

If a reply says the machine went back (warm: false), the files of earlier calls are
gone: carry them again (alone, with the command ``true``) before the part needing them.
A call whose command stops at its limit still returns what ``$OUT`` holds.

Afterwards, here: ``tar -xzf FILES_AT/records-N.tar.gz -C results`` for each archive
(FILES_AT: the reply's files_at), ``git status --short results`` must show only new
``*--cuda.json`` files; commit them with the logs' timings quoted in the message (#23),
put the measured wall times into :data:`PARTS`' estimates, and tell the chapters'
owners: chapter 8 keeps its "pending on a GPU" box until these records are in.
"""

from __future__ import annotations

import argparse
import functools
import os
import sys
import tarfile
import time
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import torch

# Run as a file (python3 scripts/gpu_runs.py), where the package may not be installed:
# the checkout's own lenet_utils, whatever the current directory.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from lenet_utils import bench, train
from lenet_utils.config import DATA_ROOT_ENV, budget, device_name, get_device
from lenet_utils.config import results_dir
from lenet_utils.readers import load_tensors

SWEEP_BATCHES = (64, 128, 256, 512, 1024, 2048, 4096)
EPOCHS = 10  # the ladder's and the sweep's epochs, chapter 8's
# Under smoke: training and test images per class, and epochs (a check of the code
# paths, in seconds on a CPU; Tiny ImageNet has 200 classes, hence its own sizes).
SMOKE_PER_CLASS = {"mnist": (20, 10), "cifar10": (20, 10), "tiny-imagenet": (2, 1)}


@dataclass
class Context:
    """What every part is run with."""

    device: torch.device
    smoke: bool
    replace: bool


@dataclass
class Part:
    """One measurement: what it is, its estimate on one H100 and its data."""

    name: str
    what: str
    estimate_s: int
    data: tuple[str, ...]  # the datasets it reads, both splits
    run: Callable[[Context], None]


def run_ladder(ctx: Context) -> None:
    """Chapter 8's ladder, printed as ``python -m lenet_utils.bench`` prints it."""
    rungs = list(bench.RUNGS)
    if ctx.smoke and ctx.device.type != "cuda":  # compiling takes ~30 s on a CPU
        rungs.remove("compiled")
        print("smoke on a CPU: the compiled rung is left out", flush=True)
    per_class = SMOKE_PER_CLASS["mnist"][0] if ctx.smoke else None
    results = bench.run_ladder(
        ctx.device, epochs=1 if ctx.smoke else EPOCHS, per_class=per_class, rungs=rungs
    )
    print(bench.ladder_table(results).to_string(), flush=True)
    bench.record_ladder(results, ctx.device, replace=ctx.replace, per_class=per_class)


def run_sweep(ctx: Context) -> None:
    """Chapter 8's batch-size sweep (``python -m lenet_utils.bench --sweep``): one run,
    and one record, per batch size."""
    per_class = SMOKE_PER_CLASS["mnist"][0] if ctx.smoke else None
    epochs = 1 if ctx.smoke else EPOCHS
    for batch in SWEEP_BATCHES:
        try:
            results = bench.sweep(
                ctx.device, [batch], epochs=epochs, per_class=per_class
            )
        except FloatingPointError as err:  # one diverged run: the others still run
            print(f"batch {batch}: diverged, not recorded: {err}", flush=True)
            continue
        bench.record_sweep(results, ctx.device, ctx.replace, per_class=per_class)


def run_sprint(ctx: Context) -> None:
    """Chapter 8's sprint to 99% (``python -m lenet_utils.bench --sprint``): 3 seeds."""
    per_class = SMOKE_PER_CLASS["mnist"][0] if ctx.smoke else None
    results = bench.sprint(ctx.device, per_class=per_class)
    bench.record_sprint(results, ctx.device, ctx.replace, per_class=per_class)


def chapter_run(recipe: str) -> Callable[[Context], None]:
    """A chapter's main run, as ``python -m lenet_utils.train --recipe RECIPE``."""

    def run(ctx: Context) -> None:
        argv = ["--recipe", recipe, "--device", ctx.device.type, "--no-progress"]
        argv += ["--replace-record"] * ctx.replace
        if ctx.smoke:  # smaller than the recipe's own smoke sizes: seconds in CI
            n, n_test = SMOKE_PER_CLASS[recipe]
            argv += ["--epochs", "1", f"--per-class={n}", f"--test-per-class={n_test}"]
        try:
            train.main(argv)
        except SystemExit as err:  # train.main ends a failed run with exit status 2
            if err.code:
                raise RuntimeError(f"lenet_utils.train exited with {err.code}") from err

    return run


#: Every part, in the order they run. Estimates: seconds on one H100 at the full budget.
PARTS: tuple[Part, ...] = (
    Part("ladder", "chapter 8's ladder, 6 rungs x 10 epochs", 150, ("mnist",),
         run_ladder),
    Part("sweep", "chapter 8's batch sweep, 64 to 4,096", 60, ("mnist",), run_sweep),
    Part("sprint", "chapter 8's sprint to 99%, 3 seeds", 20, ("mnist",), run_sprint),
    Part("mnist", "chapter 4's run", 30, ("mnist",), chapter_run("mnist")),
    Part("cifar10", "chapter 6's run", 60, ("cifar10",), chapter_run("cifar10")),
    Part("tiny-imagenet", "chapter 7's run", 150, ("tiny-imagenet",),
         chapter_run("tiny-imagenet")),
)  # fmt: skip


@functools.cache
def missing_data(dataset: str) -> str | None:
    """Why ``dataset`` cannot be read from the data root, in one line; else None."""
    for split in ("train", "test"):
        try:  # one image per class: cheap, and the readers' own search
            load_tensors(dataset, split, per_class=1, download=False, cache=False)
        except (OSError, ValueError) as err:  # missing, or corrupt
            return " ".join(str(err).split("\n")[:2]).replace("  ", " ")
    return None


def print_plan(parts: list[Part], ctx: Context, data: Path) -> dict[str, str | None]:
    """The plan: each part, its estimate and whether its data is there."""
    print(f"device: {device_name(ctx.device)} | torch {torch.__version__} | budget "
          f"{budget()} | data: {data}", flush=True)  # fmt: skip
    missing_data.cache_clear()  # a new data root: look again
    missing = {
        p.name: next(filter(None, map(missing_data, p.data)), None) for p in parts
    }
    for p in parts:
        status = f"data missing: {missing[p.name]}" if missing[p.name] else "data: ok"
        print(f"  {p.name:<14}~{p.estimate_s:>4} s  {p.what:<42}{status}", flush=True)
    total = sum(p.estimate_s for p in parts if not missing[p.name])
    print(f"  estimated {total} s ({total / 60:.1f} min) on one H100, full budget",
          flush=True)  # fmt: skip
    return missing


def run_parts(parts: list[Part], ctx: Context, missing: dict) -> dict[str, str]:
    """Run each part whose data is there; each part's outcome, by name."""
    outcome = {}
    for p in parts:
        if missing[p.name]:
            print(f"== {p.name}: skipped, data missing: {missing[p.name]}", flush=True)
            outcome[p.name] = "data missing"
            continue
        print(f"== {p.name}: {p.what} (estimate {p.estimate_s} s)", flush=True)
        start = time.perf_counter()
        try:
            p.run(ctx)
            outcome[p.name] = "ran"
        except Exception:  # noqa: BLE001 - one part's failure must not stop the others
            traceback.print_exc()
            outcome[p.name] = "FAILED"
        wall = time.perf_counter() - start
        print(f"== {p.name}: {outcome[p.name]} in {wall:.1f} s "
              f"(estimate {p.estimate_s} s)", flush=True)  # fmt: skip
    return outcome


def snapshot() -> dict[str, int]:
    """The records in the results folder, with their modification times."""
    folder = results_dir()
    return {p.name: p.stat().st_mtime_ns for p in folder.glob("*.json")}


def parse(argv: list[str] | None) -> argparse.Namespace:
    """The command line."""
    names = [p.name for p in PARTS]
    parser = argparse.ArgumentParser(
        prog="python scripts/gpu_runs.py",
        description="Every GPU measurement of the course in one command (see the "
        "module's docstring for a GPU session, step by step).",
    )
    add = parser.add_argument
    add("--data", type=Path, required=True, help="the data root for every part")
    add("--only", help=f"comma-separated parts, in any order, of: {', '.join(names)}")
    add("--device", help="cuda (the default where there is one), or cpu under smoke")
    add("--replace-records", action="store_true", help="replace existing GPU records")
    add("--archive", type=Path, help="pack the records written into this .tar.gz")
    add("--plan", action="store_true", help="print the plan and the data check, only")
    args = parser.parse_args(argv)
    chosen = names if args.only is None else [n.strip() for n in args.only.split(",")]
    unknown = [n for n in chosen if n not in names]
    if unknown or not chosen:
        parser.error(f"unknown part(s) {unknown}: choose from {', '.join(names)}")
    args.parts = [p for p in PARTS if p.name in chosen]
    if not args.data.is_dir():
        parser.error(f"--data {args.data} is not a folder")
    return args


def main(argv: list[str] | None = None) -> int:
    """Print the plan, run the parts, archive the records; 1 if a part failed."""
    args = parse(argv)
    os.environ[DATA_ROOT_ENV] = str(args.data.resolve())  # what every reader looks in
    device = get_device(args.device)
    ctx = Context(device, budget() == "smoke", args.replace_records)
    if not ctx.smoke and device.type != "cuda" and not args.plan:
        sys.exit(f"gpu_runs: the full budget records GPU runs, and {device} is no GPU; "
                 "check the script there with LENET_BUDGET=smoke")  # fmt: skip
    missing = print_plan(args.parts, ctx, args.data)
    if args.plan:
        return 0
    before = snapshot()
    outcome = run_parts(args.parts, ctx, missing)
    written = sorted(n for n, t in snapshot().items() if before.get(n) != t)
    print("outcome: " + ", ".join(f"{n} {o}" for n, o in outcome.items()))
    print(f"records written: {', '.join(written) or 'none'}", flush=True)
    if args.archive is not None and written:
        with tarfile.open(args.archive, "w:gz") as tar:
            for name in written:
                tar.add(results_dir() / name, arcname=name)
        print(f"records packed into {args.archive}")
    return 1 if "FAILED" in outcome.values() else 0


if __name__ == "__main__":
    sys.exit(main())
