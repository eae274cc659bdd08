"""The two caches of decoded datasets: a ``.pt`` file per split, or a memory-mapped file.

Decoding JPEGs and WebPs takes minutes, so :func:`cached` keeps a split's ``uint8`` tensors
as ``<cache>/<name>__<key>.pt`` and rebuilds them when the sources change. Full
Imagenet32 is 1.28 million images (3.9 GB as ``uint8``; Imagenet64 15.7 GB): unpickling it
in every process of a DDP run would hold it once per process. :func:`cached_memmap` writes
such a split once, batch after batch, into one raw ``uint8`` file
(``<cache>/<name>__<key>/images.u8``, beside ``labels.npy`` and ``meta.json``) and maps it
into each process with ``np.memmap``. A batch reads only its own rows, and the pages come
from the operating system's page cache, which all the processes of a machine share: the
dataset is in memory once per machine at most, never once per process.

The readers (:mod:`lenet_utils.readers`) decide what to cache and feed the batches.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import warnings
from pathlib import Path
from typing import Callable, Iterable

import numpy as np
import torch

from .config import cache_dir
from .files import atomic_write
from .storage import TensorData

__all__ = ["cached", "cached_memmap"]

# Bump when what a cache file holds changes: older files are then rebuilt.
PT_VERSION = 2
MEMMAP_VERSION = 1

Batches = Iterable[tuple[torch.Tensor, torch.Tensor]]


def _file_name(name: str, version: int, key: list) -> str:
    digest = hashlib.sha1(repr([version, key]).encode()).hexdigest()[:12]
    return f"{name}__{digest}"


def _load_pt(path: Path) -> TensorData | None:
    """The cached split at ``path``, or None (and the file deleted) if it is unreadable."""
    try:
        data = TensorData(**torch.load(path, weights_only=True))
        if data.images.dtype == torch.uint8 and len(data.images) == len(data.labels):
            return data
        raise ValueError("unexpected contents")
    except Exception as err:  # anything unreadable is rebuilt, never trusted
        warnings.warn(
            f"Cache file {path} is unreadable ({err}); deleting it and decoding again.",
            stacklevel=4,
        )
        path.unlink(missing_ok=True)
        return None


def cached(
    name: str, key: list, build: Callable[[], TensorData], cache: bool = True
) -> TensorData:
    """``build()``'s result, stored once as ``<cache_dir>/<name>__<hash of key>.pt``.

    ``key`` names the sources (e.g. their sizes and times): when it changes, the split is
    decoded again and the older file removed. A cache that cannot be written (a full or
    read-only disk) only warns: the data is returned all the same.
    """
    if not cache:
        return build()
    folder = cache_dir()
    path = folder / f"{_file_name(name, PT_VERSION, key)}.pt"
    if path.exists():
        data = _load_pt(path)
        if data is not None:
            return data
    data = build()
    for stale in folder.glob(f"{name}__*.pt"):  # older versions of the same sources
        stale.unlink(missing_ok=True)
    try:
        atomic_write(path, lambda f: torch.save(vars(data), f))
    except OSError as err:
        warnings.warn(f"Could not write the cache file: {err}", stacklevel=3)
    return data


def _complete(folder: Path) -> dict | None:
    """The folder's metadata if its conversion finished and its sizes agree, else None."""
    try:
        meta = json.loads((folder / "meta.json").read_text())
        size = (folder / "images.u8").stat().st_size
        labels = np.load(folder / "labels.npy", mmap_mode="r")
    except (OSError, ValueError):
        return None
    shape = meta.get("shape", [])
    if len(shape) != 4 or size != int(np.prod(shape)) or labels.shape != (shape[0],):
        return None
    return meta


def _convert(batches: Batches, folder: Path) -> None:
    """Write the batches to ``folder`` through a temporary folder renamed at the end, so
    that an interrupted conversion leaves nothing that looks finished."""
    tmp = folder.with_name(f".{folder.name}.{os.getpid()}.tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    try:
        labels, shape = [], None
        with open(tmp / "images.u8", "wb") as f:
            for x, y in batches:
                f.write(np.ascontiguousarray(x.numpy()).tobytes())
                labels.append(y.numpy())
                shape = shape or list(x.shape[1:])
        labels = np.concatenate(labels)
        np.save(tmp / "labels.npy", labels)
        meta = {"shape": [len(labels), *shape], "version": MEMMAP_VERSION}
        (tmp / "meta.json").write_text(json.dumps(meta))
        try:
            os.replace(tmp, folder)
        except OSError:  # another process finished the same conversion first
            if _complete(folder) is None:
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def cached_memmap(
    name: str, key: list, batches: Callable[[], Batches]
) -> tuple[torch.Tensor, torch.Tensor]:
    """``(images, labels)``: the images memory-mapped from the cache, the labels in memory.

    The first call writes what ``batches()`` yields (``uint8`` images, labels) into the
    cache; later calls, in any process, map the written file at once. A new ``key`` (the
    sources changed) writes it again.
    """
    folder = cache_dir() / _file_name(name, MEMMAP_VERSION, key)
    meta = _complete(folder)
    if meta is None:
        for stale in folder.parent.glob(f"{name}__*"):  # other versions of the sources
            shutil.rmtree(stale, ignore_errors=True)
        _convert(batches(), folder)
        meta = _complete(folder)
        if meta is None:
            raise RuntimeError(f"writing {name} into {folder} failed")
    # mode "c" (copy-on-write) maps the file read-only in effect, but gives torch a
    # writable array, so it does not warn; nothing ever writes to it.
    images = np.memmap(
        folder / "images.u8", dtype=np.uint8, mode="c", shape=tuple(meta["shape"])
    )
    labels = np.load(folder / "labels.npy")
    return torch.from_numpy(images), torch.from_numpy(labels)
