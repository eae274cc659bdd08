"""Run-time settings shared by every chapter: data root, budget, seeding and the device.

Two environment variables steer a notebook without editing it:

* ``LENET_DATA_ROOT``: where datasets live (default ``~/.cache/lenet5-course/data``);
* ``LENET_BUDGET``: ``full`` (the default, the real run) or ``smoke`` (a fast CI check on
  small real subsets).
"""

from __future__ import annotations

import os
import platform
import random
from pathlib import Path

import numpy as np
import torch

__all__ = [
    "DATA_ROOT_ENV",
    "BUDGET_ENV",
    "DEFAULT_DATA_ROOT",
    "data_root",
    "budget",
    "is_smoke",
    "seed_everything",
    "get_device",
    "device_name",
    "hardware_line",
    "setup",
]

DATA_ROOT_ENV = "LENET_DATA_ROOT"
BUDGET_ENV = "LENET_BUDGET"
DEFAULT_DATA_ROOT = Path("~/.cache/lenet5-course/data")
BUDGETS = ("full", "smoke")


def data_root(root: str | os.PathLike | None = None) -> Path:
    """The data root: ``root`` if given, else ``$LENET_DATA_ROOT``, else the default."""
    chosen = (
        root if root is not None else os.environ.get(DATA_ROOT_ENV) or DEFAULT_DATA_ROOT
    )
    return Path(chosen).expanduser().resolve()


def budget() -> str:
    """``"full"`` or ``"smoke"``, from ``$LENET_BUDGET`` (default ``full``)."""
    value = os.environ.get(BUDGET_ENV, "full").strip().lower() or "full"
    if value not in BUDGETS:
        raise ValueError(f"{BUDGET_ENV} must be one of {BUDGETS}, got {value!r}")
    return value


def is_smoke() -> bool:
    """True when running the fast CI budget."""
    return budget() == "smoke"


def seed_everything(seed: int = 0) -> None:
    """Seed Python, NumPy and torch (all devices) for repeatable runs."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def get_device(prefer: str | None = None) -> torch.device:
    """CUDA if available, then Apple's MPS, then the CPU; ``prefer`` forces one."""
    if prefer is not None:
        return torch.device(prefer)
    if torch.cuda.is_available():
        return torch.device("cuda")
    mps = getattr(torch.backends, "mps", None)
    if mps is not None and mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


def _cpu_name() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def device_name(device: torch.device | None = None) -> str:
    """A short name for the hardware behind ``device``, e.g. ``NVIDIA H100 80GB HBM3``."""
    device = device or get_device()
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    if device.type == "mps":
        return f"Apple GPU via MPS ({platform.machine()})"
    return f"CPU {_cpu_name()} ({torch.get_num_threads()} threads)"


def hardware_line(device: torch.device | None = None) -> str:
    """One line naming the hardware the notebook runs on, e.g. for the book's readers."""
    device = device or get_device()
    what = device_name(device)
    if device.type == "cuda":
        idx = device.index if device.index is not None else torch.cuda.current_device()
        what += f" ({torch.cuda.get_device_properties(idx).total_memory / 2**30:.0f} GiB, CUDA {torch.version.cuda})"
    elif device.type == "cpu":
        what += ", no GPU used"
    return f"Hardware: {what} | torch {torch.__version__} | budget: {budget()}"


def setup(seed: int = 0, prefer: str | None = None) -> torch.device:
    """Seed everything, pick the device, print the hardware line and return the device."""
    seed_everything(seed)
    device = get_device(prefer)
    print(hardware_line(device))
    return device
