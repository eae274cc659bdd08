"""Test-wide settings, for the unit tests and for the notebooks that nbval executes.

* Notebooks run the fast ``smoke`` budget (``LENET_BUDGET=full`` runs the real ones) and
  print one line per epoch instead of live progress bars.
* Everything the tests write goes to one temporary folder: the dataset cache, checkpoints,
  results records, matplotlib's and IPython's folders, never the home folder.
* ``slow`` marks the tests that build the book, drive the browser, execute a notebook or
  launch processes: ``python -m pytest -m "not slow"`` runs the rest in under a minute.
* Data: when ``LENET_DATA_ROOT`` holds the real datasets (CI points it at them), the
  notebooks read them. Otherwise the session writes small stand-ins in every official
  format (``tests/fakedata.py``) and the notebooks run on those: no download, no network.
  The test report's header says which.
"""

import os
import shutil
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent

# What the notebooks read: each entry is satisfied by any one of its alternatives.
NOTEBOOK_DATA = {
    "MNIST": [
        ("MNIST/raw/train-images-idx3-ubyte", "MNIST/raw/t10k-images-idx3-ubyte")
    ],
    "CIFAR-10": [
        ("cifar-10-batches-py/data_batch_1", "cifar-10-batches-py/test_batch"),
        ("cifar10-jpg-train.zip", "cifar10-jpg-test.zip"),
    ],
    "Tiny ImageNet": [
        ("tiny-imagenet-32-train-1.zip", "tiny-imagenet-32-val.zip"),
        ("tiny-imagenet-200.zip",),
    ],
}


def has_real_data(root: Path) -> bool:
    """Whether ``root`` holds every dataset the notebooks read (and is not stand-ins)."""
    if (root / "STAND-INS.txt").exists():
        return False
    return all(
        any(all((root / f).exists() for f in files) for files in options)
        for options in NOTEBOOK_DATA.values()
    )


def pytest_configure(config):
    os.environ.setdefault("LENET_BUDGET", "smoke")
    os.environ.setdefault("LENET_PROGRESS", "0")
    os.environ.setdefault("MPLBACKEND", "Agg")
    scratch = Path(tempfile.mkdtemp(prefix="lenet-tests-"))
    config._lenet_scratch = scratch
    for name, sub in (
        ("IPYTHONDIR", "ipython"),  # the kernels nbval starts: no ~/.ipython
        ("JUPYTER_RUNTIME_DIR", "jupyter-runtime"),
        ("LENET_CACHE_DIR", "cache"),
        ("LENET_CHECKPOINT_DIR", "checkpoints"),
        ("LENET_RESULTS_DIR", "results"),
        ("MPLCONFIGDIR", "matplotlib"),
    ):
        os.environ.setdefault(name, str(scratch / sub))
    root = os.environ.get("LENET_DATA_ROOT", "").strip()
    if root and has_real_data(Path(root).expanduser()):
        config._lenet_data = f"the real datasets in LENET_DATA_ROOT={root}"
        return
    sys.path.insert(0, str(ROOT / "tests"))
    from fakedata import build_standins

    standins = build_standins(scratch / "data")
    os.environ["LENET_DATA_ROOT"] = str(standins)
    why = f"LENET_DATA_ROOT={root} lacks some" if root else "LENET_DATA_ROOT is not set"
    config._lenet_data = (
        f"generated stand-in datasets ({why}; see tests/fakedata.py and the README)"
    )


# Tests that build the book, drive the browser, run a notebook or launch processes: CI
# runs them; `python -m pytest -m "not slow"` is the quick loop.
SLOW_FIXTURES = {"built_book", "book_html", "book_server", "browser"}
SLOW_FILES = {"test_student.py"}


def pytest_collection_modifyitems(config, items):
    import pytest

    for item in items:
        path = Path(str(item.fspath))
        if (
            path.suffix == ".ipynb"
            or path.name in SLOW_FILES
            or SLOW_FIXTURES & set(getattr(item, "fixturenames", ()))
        ):
            item.add_marker(pytest.mark.slow)


def pytest_report_header(config):
    return f"notebooks run on: {config._lenet_data}"


def pytest_unconfigure(config):
    scratch = getattr(config, "_lenet_scratch", None)
    if scratch is not None:
        shutil.rmtree(scratch, ignore_errors=True)
