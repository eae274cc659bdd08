"""Datasets from one data root (``$LENET_DATA_ROOT``), with clear errors when they are missing.

The readers' path is the usual one: torchvision downloads MNIST into the data root. Offline
machines (CI, a laptop on a train) point the data root at a folder that already holds the
files, laid out as torchvision lays them out (``MNIST/raw/train-images-idx3-ubyte`` ...).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Callable

from torchvision import datasets

from .config import DATA_ROOT_ENV, data_root

__all__ = ["DatasetMissingError", "MNIST_FILES", "mnist"]

MNIST_FILES = (
    "train-images-idx3-ubyte",
    "train-labels-idx1-ubyte",
    "t10k-images-idx3-ubyte",
    "t10k-labels-idx1-ubyte",
)


class DatasetMissingError(FileNotFoundError):
    """A dataset is not in the data root and could not be downloaded."""


def _missing(name: str, where: Path, files: tuple[str, ...], how: str) -> DatasetMissingError:
    listing = ", ".join(files)
    return DatasetMissingError(
        f"{name} is not in {where} (looked for {listing}). {how} "
        f"Or set {DATA_ROOT_ENV} to a folder that already holds it."
    )


def mnist(
    train: bool = True,
    root: str | os.PathLike | None = None,
    transform: Callable | None = None,
    download: bool = True,
) -> datasets.MNIST:
    """The MNIST train (60,000) or test (10,000) split as a torchvision dataset.

    Reads ``<root>/MNIST/raw`` when the files are there; otherwise downloads them (if
    ``download``), and raises :class:`DatasetMissingError` saying where it looked and
    how to get the files when that is impossible (offline, or ``download=False``).
    """
    root = data_root(root)
    raw = root / "MNIST" / "raw"
    try:
        return datasets.MNIST(root, train=train, transform=transform, download=False)
    except RuntimeError as err:
        if not download:
            raise _missing("MNIST", raw, MNIST_FILES, "Call mnist(download=True) on a machine with internet access.") from err
    try:
        return datasets.MNIST(root, train=train, transform=transform, download=True)
    except Exception as err:  # torchvision raises RuntimeError/URLError/OSError when offline
        raise _missing(
            "MNIST",
            raw,
            MNIST_FILES,
            f"The download failed ({type(err).__name__}: {err}); check the internet connection and try again.",
        ) from err
