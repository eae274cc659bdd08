"""The two caches of decoded datasets: a ``.pt`` file per split, or a memory-mapped file.

Decoding JPEGs and WebPs takes minutes, so :func:`cached` keeps a split's ``uint8`` tensors
in a ``.pt`` file. Full Imagenet32 (3.9 GB as ``uint8``; Imagenet64 15.7 GB) unpickled in
each DDP process would be held once per process: :func:`cached_memmap` maps it from one
raw file instead, whose pages all the processes of a machine share (the page cache)."""

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
    """``build()``'s result, kept in ``<cache_dir>/<name>__<hash of key>.pt`` until ``key``
    (e.g. the sources' sizes and times) changes; a cache that cannot be written warns."""
    if not cache:
        return build()
    path = cache_dir() / f"{_file_name(name, PT_VERSION, key)}.pt"
    if path.exists() and (data := _load_pt(path)) is not None:
        return data
    data = build()
    for stale in path.parent.glob(f"{name}__*.pt"):  # older versions of the sources
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
    ok = len(shape) == 4 and size == int(np.prod(shape)) and labels.shape == (shape[0],)
    return meta if ok else None


def _convert(batches: Batches, folder: Path) -> None:
    """Write the batches to ``folder`` through a temporary folder renamed at the end: an
    interrupted conversion leaves nothing that looks finished."""
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
    The first call (or a new ``key``) writes what ``batches()`` yields into the cache."""
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
    shape = tuple(meta["shape"])
    images = np.memmap(folder / "images.u8", dtype=np.uint8, mode="c", shape=shape)
    return torch.from_numpy(images), torch.from_numpy(np.load(folder / "labels.npy"))
