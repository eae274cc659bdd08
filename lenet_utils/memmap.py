"""Imagenet32/64 as memory-mapped ``uint8`` arrays: converted once, shared by every process.

Full Imagenet32 is 1.28 million training images: 3.9 GB as ``uint8`` (Imagenet64: 15.7 GB).
Unpickling its ten batches in every process of a DDP run would hold it once per process.
:func:`load_memmap` converts the batches once, batch after batch, into one raw ``uint8``
file in the cache (``<cache>/imagenet32-train-all__<key>/images.u8``, beside
``labels.npy`` and ``meta.json``), then maps it into each process with ``np.memmap``. A
batch reads only its own rows, and the pages come from the operating system's page cache,
which all the processes of a machine share: the dataset is in memory once per machine at
most, never once per process.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from pathlib import Path

import numpy as np
import torch

from .config import cache_dir, describe_path
from .readers import STATS, _imagenet_sources, _iter_batches
from .storage import TensorData, _stamp

__all__ = ["load_memmap"]

_VERSION = 1


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


def _convert(paths: list[Path], res: int, per_class: int | None, folder: Path) -> None:
    """Write the batches to ``folder`` through a temporary folder renamed at the end, so
    that an interrupted conversion leaves nothing that looks finished."""
    tmp = folder.with_name(f".{folder.name}.{os.getpid()}.tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    try:
        labels, count = [], 0
        with open(tmp / "images.u8", "wb") as f:
            for x, y in _iter_batches(paths, (3, res, res), 1000, 1, per_class):
                f.write(np.ascontiguousarray(x.numpy()).tobytes())
                labels.append(y.numpy())
                count += len(y)
        np.save(tmp / "labels.npy", np.concatenate(labels))
        meta = {"shape": [count, 3, res, res], "version": _VERSION}
        (tmp / "meta.json").write_text(json.dumps(meta))
        try:
            os.replace(tmp, folder)
        except OSError:  # another process finished the same conversion first
            if _complete(folder) is None:
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def load_memmap(
    res: int, root: Path, split: str, per_class: int | None = None
) -> TensorData:
    """Imagenet``res``'s ``split`` with memory-mapped images (labels in memory).

    Called through ``load_tensors("imagenet32", split, mmap=True)``. The first call
    converts the batches (a few minutes for the full train split); later calls, in any
    process, map the converted file at once. Changed source files are converted again.
    """
    paths, classes = _imagenet_sources(res, root, split)
    key = [_VERSION, res, split, per_class, [_stamp(p) for p in paths]]
    digest = hashlib.sha1(repr(key).encode()).hexdigest()[:12]
    name = f"imagenet{res}-{split}-{per_class or 'all'}"
    folder = cache_dir() / f"{name}__{digest}"
    meta = _complete(folder)
    if meta is None:
        for stale in folder.parent.glob(f"{name}__*"):  # other versions of the sources
            shutil.rmtree(stale, ignore_errors=True)
        _convert(paths, res, per_class, folder)
        meta = _complete(folder)
        if meta is None:
            raise RuntimeError(f"converting Imagenet{res} into {folder} failed")
    # mode "c" (copy-on-write) maps the file read-only in effect, but gives torch a
    # writable array, so it does not warn; nothing ever writes to it.
    images = np.memmap(
        folder / "images.u8", dtype=np.uint8, mode="c", shape=tuple(meta["shape"])
    )
    labels = np.load(folder / "labels.npy")
    return TensorData(
        torch.from_numpy(images), torch.from_numpy(labels), classes,
        f"imagenet{res}", f"Imagenet{res}",
        f"{describe_path(paths[0].parent)}, memory-mapped from the cache",
        *STATS[f"imagenet{res}"],
    )  # fmt: skip
