"""Every run-time setting of the course, in one place: environment variables, all optional.

* ``LENET_DATA_ROOT``: where datasets live (default ``~/.cache/lenet5-course/data``);
* ``LENET_BUDGET``: ``full`` (the default: the real runs) or ``smoke`` (what tests run);
* ``LENET_CACHE_DIR``: decoded datasets (default ``<data root>/cache`` if writable);
* ``LENET_RESULTS_DIR``: results records (default the checkout's ``results/``);
* ``LENET_CHECKPOINT_DIR``: checkpoints (default ``~/.cache/lenet5-course/checkpoints``);
* ``LENET_REPLACE_RECORDS``: ``1`` lets a full run replace an existing record;
* ``LENET_PROGRESS``: ``0``: one line per epoch (the book's outputs), not live bars."""

from __future__ import annotations

import contextlib
import os
import platform
import random
import sys
from pathlib import Path

import numpy as np
import torch

__all__ = [
    "BUDGETS", "BUDGET_ENV", "DEVICES", "DATA_ROOT_ENV", "REPLACE_ENV", "budget",
    "cache_dir", "checkpoint_dir", "data_root", "describe_path", "device_name",
    "get_device", "is_smoke", "progress_bars", "replace_records", "results_dir",
    "seed_everything", "setup", "sync",
]  # fmt: skip

DATA_ROOT_ENV = "LENET_DATA_ROOT"
BUDGET_ENV = "LENET_BUDGET"
REPLACE_ENV = "LENET_REPLACE_RECORDS"

HOME_CACHE = Path("~/.cache/lenet5-course")
REPO = Path(__file__).resolve().parents[1]
BUDGETS = ("full", "smoke")
DEVICES = ("cuda", "mps", "cpu")


def _env_path(name: str) -> Path | None:
    value = os.environ.get(name, "").strip()
    return Path(value).expanduser().resolve() if value else None


def data_root(root: str | os.PathLike | None = None) -> Path:
    """The data root: ``root`` if given, else ``$LENET_DATA_ROOT``, else the default;
    ``NotADirectoryError`` when the chosen path exists but is a file."""
    if root is not None:
        path, how = Path(root).expanduser().resolve(), "root"
    elif _env_path(DATA_ROOT_ENV) is not None:
        path, how = _env_path(DATA_ROOT_ENV), f"${DATA_ROOT_ENV}"
    else:
        path, how = (HOME_CACHE / "data").expanduser(), "the default data root"
    if path.exists() and not path.is_dir():
        raise NotADirectoryError(
            f"{how} is {path}, which is a file, not a folder: point {DATA_ROOT_ENV} at the "
            "folder that holds (or should hold) the datasets"
        )
    return path


def budget() -> str:
    """``"full"`` or ``"smoke"``, from ``$LENET_BUDGET`` (default ``full``)."""
    value = os.environ.get(BUDGET_ENV, "full").strip().lower() or "full"
    if value not in BUDGETS:
        raise ValueError(f"{BUDGET_ENV} must be one of {BUDGETS}, got {value!r}")
    return value


def is_smoke() -> bool:
    """True when running the fast check budget."""
    return budget() == "smoke"


def _switch(name: str, default: str, words: tuple[str, ...] = ()) -> bool:
    """An on/off variable: ``1``/``0`` (or ``words``: ``on``, ``true``, ...)."""
    value = os.environ.get(name, default).strip().lower()
    if value not in ("0", "1", "") + words:
        raise ValueError(f"{name} must be 1 or 0, got {value!r}")
    return value not in ("0", "off", "false", "") if value else default == "1"


def progress_bars() -> bool:
    """Whether training shows live progress bars (``$LENET_PROGRESS``, default on)."""
    return _switch("LENET_PROGRESS", "1", ("off", "on", "false", "true"))


def replace_records() -> bool:
    """Whether a full run may replace an existing record (``$LENET_REPLACE_RECORDS``)."""
    return _switch(REPLACE_ENV, "0")


def cache_dir() -> Path:
    """``$LENET_CACHE_DIR``, else ``<data root>/cache`` if writable, else under ``~/.cache``."""
    path = _env_path("LENET_CACHE_DIR")
    if path is None:
        path = data_root() / "cache"
        with contextlib.suppress(OSError):
            path.mkdir(parents=True, exist_ok=True)
        if not (path.is_dir() and os.access(path, os.W_OK)):
            path = (HOME_CACHE / "cache").expanduser()
    path.mkdir(parents=True, exist_ok=True)
    return path


def results_dir() -> Path:
    """``$LENET_RESULTS_DIR``, else ``results/`` of the course checkout, else ``./results``."""
    chosen, checkout = _env_path("LENET_RESULTS_DIR"), (REPO / "_toc.yml").exists()
    return chosen or (REPO / "results" if checkout else Path("results").resolve())


def checkpoint_dir() -> Path:
    """``$LENET_CHECKPOINT_DIR``, else ``~/.cache/lenet5-course/checkpoints`` (created)."""
    path = _env_path("LENET_CHECKPOINT_DIR") or HOME_CACHE.expanduser() / "checkpoints"
    path.mkdir(parents=True, exist_ok=True)
    return path


def describe_path(path: str | os.PathLike) -> str:
    """``path`` relative to the data root (``<data root>/...``), the course checkout or the
    home folder (``~/...``): never an absolute path of the machine that ran it."""
    path = Path(path).expanduser().resolve()
    for base, label in ((data_root(), "<data root>/"), (REPO, ""), (Path.home(), "~/")):
        if path.is_relative_to(base):
            rel = path.relative_to(base).as_posix()
            return (label + rel).rstrip("/.") or label.rstrip("/") or "."
    return ".../" + "/".join(path.parts[-2:])


def seed_everything(seed: int = 0) -> None:
    """Seed Python, NumPy and torch (all devices) for repeatable runs."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def _mps_available() -> bool:
    mps = getattr(torch.backends, "mps", None)
    return mps is not None and mps.is_available()


def get_device(prefer: str | torch.device | None = None) -> torch.device:
    """CUDA if available, then Apple's MPS, then the CPU; ``prefer`` asks for one (a
    device this machine lacks fails here, with the reason, rather than inside torch)."""
    if prefer is None:
        cuda, mps = torch.cuda.is_available(), _mps_available()
        return torch.device("cuda" if cuda else "mps" if mps else "cpu")
    try:
        device = torch.device(prefer)
    except (RuntimeError, TypeError) as err:
        raise ValueError(f"unknown device {prefer!r}: use one of {DEVICES}") from err
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise RuntimeError(
                "CUDA was asked for, but torch sees no CUDA GPU here "
                f"(torch {torch.__version__}, built for CUDA {torch.version.cuda}). "
                "Use prefer=None for the best device available; in Colab, choose a GPU "
                "under Runtime > Change runtime type."
            )
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise RuntimeError(
                f"{device} was asked for, but only {torch.cuda.device_count()} GPU(s) exist"
            )
    elif device.type == "mps" and not _mps_available():
        raise RuntimeError(
            "MPS (Apple's GPU backend) was asked for, but it is not available here: it needs a "
            f"Mac with Apple silicon and macOS 12.3 or newer (this is {platform.system()}). "
            "Use prefer=None for the best device available."
        )
    elif device.type not in DEVICES:
        raise ValueError(f"unsupported device {device}: use one of {DEVICES}")
    return device


def sync(device: torch.device | str) -> None:
    """Wait for the device's queued work, so that a host clock measures it (CUDA only)."""
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize(device)


def _cpu_name() -> str:
    with contextlib.suppress(OSError), open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()


def device_name(device: torch.device | None = None) -> str:
    """A short name for the hardware behind ``device``, e.g. ``NVIDIA H100 80GB HBM3``."""
    device = device or get_device()
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    if device.type == "mps":
        return f"Apple GPU via MPS ({platform.machine()})"
    return f"CPU {_cpu_name()} ({torch.get_num_threads()} threads)"


def versions_line() -> str:
    """One line with the versions a bug report needs: torch, torchvision and Python."""
    try:
        import torchvision

        vision = f", torchvision {torchvision.__version__}"
    except ImportError:  # the package works without it; only the readers need it
        vision = ""
    python = ".".join(map(str, sys.version_info[:3]))
    return f"Versions: torch {torch.__version__}{vision}, Python {python}"


def hardware_line(device: torch.device | None = None) -> str:
    """One line naming the hardware the outputs come from, and the budget."""
    device = device or get_device()
    what = device_name(device)
    if device.type == "cuda":
        memory = torch.cuda.get_device_properties(device).total_memory / 2**30
        what += f" ({memory:.0f} GiB, CUDA {torch.version.cuda})"
    elif device.type == "cpu":
        what += ", no GPU used"
    return f"Hardware: {what} | budget: {budget()}"


def setup(seed: int = 0, prefer: str | None = None) -> torch.device:
    """Seed everything, pick the device, print the hardware and versions; return the device."""
    seed_everything(seed)
    device = get_device(prefer)
    print(hardware_line(device))
    print(versions_line())
    return device
