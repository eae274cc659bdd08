"""Dataset storage, under the readers: files in folders and zips, decoding, downloads,
and errors that say which files were looked for where, and how to get them."""

from __future__ import annotations

import contextlib
import io
import os
import pickle
import posixpath
import re
import shutil
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator, Sequence

import numpy as np
import PIL
import torch
from PIL import Image, features
from torchvision.datasets.utils import calculate_md5, download_url

from .config import DATA_ROOT_ENV

__all__ = [
    "IMAGE_EXTENSIONS", "Files", "TensorData", "corrupt", "missing", "decode_all",
    "decode_folder", "download_file", "download_torchvision", "first_indices",
    "iter_batches", "keep_first", "read_batches", "stamp",
]  # fmt: skip

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".webp", ".bmp", ".gif", ".ppm", ".tif")


class _ShortError(Exception):
    """An error that Jupyter (which calls this method) shows as its message alone."""

    def _render_traceback_(self) -> list[str]:
        return [f"\x1b[31m{type(self).__name__}\x1b[0m: {self}"]


class DatasetMissingError(_ShortError, FileNotFoundError):
    """A dataset is not in the data root and could not be downloaded."""


class CorruptDatasetError(_ShortError, ValueError):
    """A dataset file is there but unreadable: truncated, corrupt or the wrong format."""


class MissingCodecError(_ShortError, RuntimeError):
    """This Pillow installation cannot decode the dataset's image format."""


def missing(
    name: str, where: Path, files: Sequence[str], how: str
) -> DatasetMissingError:
    return DatasetMissingError(
        f"{name} is not in {where}\n  looked for: {', '.join(files)}\n  to fix: {how}\n"
        f"  or set {DATA_ROOT_ENV} to a folder that already holds it"
    )


def corrupt(path: Path, detail: str) -> CorruptDatasetError:
    return CorruptDatasetError(
        f"{path} is corrupt or truncated ({detail}); delete it and download or copy it again"
    )


@dataclass
class TensorData:
    """A whole split: ``images`` uint8 (N, C, H, W), ``labels`` int64 (N,), its key, how
    readers see it, where it was read from and the per-channel ``mean`` and ``std``."""

    images: torch.Tensor
    labels: torch.Tensor
    classes: list[str]
    name: str
    title: str
    source: str
    mean: tuple[float, ...]
    std: tuple[float, ...]

    def __len__(self) -> int:
        return len(self.labels)

    def __repr__(self) -> str:
        shape = "x".join(map(str, self.images.shape))
        return (
            f"TensorData({self.title}: {shape} {str(self.images.dtype)[6:]}, "
            f"{len(self.classes)} classes, from {self.source})"
        )


class Files(contextlib.ExitStack):
    """Files of folders and zips, named relative to the container's parent folder (the
    same name zipped or extracted); closing it closes the zips."""

    def __init__(self, paths: Sequence[Path]) -> None:
        super().__init__()
        self.label = " + ".join(p.name for p in paths)
        self.where: dict[str, tuple[Path, zipfile.ZipFile | None]] = {}
        for path in paths:
            if path.is_dir():
                for folder, _, names in os.walk(path):
                    rel = Path(folder).relative_to(path.parent).as_posix()
                    for name in names:
                        self.where[f"{rel}/{name}"] = (Path(folder, name), None)
                continue
            try:
                zf = self.enter_context(zipfile.ZipFile(path))
            except (zipfile.BadZipFile, OSError, EOFError) as err:
                self.close()
                raise corrupt(path, f"not a readable zip archive: {err}") from err
            for info in zf.infolist():
                if not info.is_dir():
                    self.where[info.filename] = (path, zf)

    def names(self) -> list[str]:
        """All names, without hidden files and macOS ``__MACOSX`` debris."""
        return [n for n in self.where if not re.search(r"(^|/)(\.|__MACOSX)", n)]

    def read(self, name: str) -> bytes:
        if name not in self.where:
            raise corrupt(Path(self.label), f"{name} is missing from it")
        path, zf = self.where[name]
        try:
            return zf.read(name) if zf is not None else path.read_bytes()
        except (zipfile.BadZipFile, zlib.error, EOFError, OSError) as err:
            raise corrupt(path, f"cannot read {name}: {err}") from err

    def text(self, name: str) -> str:
        return self.read(name).decode("utf-8")


_CODECS = {".webp": "webp", ".jpg": "jpg", ".jpeg": "jpg", ".png": "zlib"}
DECODE_ERRORS = (OSError, ValueError, SyntaxError, Image.DecompressionBombError)


def check_codec(name: str) -> None:
    """Raise :class:`MissingCodecError` when this Pillow lacks the codec ``name`` needs."""
    codec = _CODECS.get(posixpath.splitext(name)[1].lower())
    if codec is not None and not features.check(codec):
        raise MissingCodecError(
            f"{name} is a {codec.upper()} image, but this Pillow ({PIL.__version__}) was "
            f"built without {codec.upper()} support, so it cannot decode it (the file is "
            "fine). Install Pillow's wheel from PyPI, which includes it: "
            "pip install --force-reinstall --only-binary :all: pillow"
        )


def decode_image(data: bytes, size: int | None = None) -> np.ndarray:
    """One encoded image as an RGB uint8 array (H, W, 3), box-resized to size x size."""
    with Image.open(io.BytesIO(data)) as im:
        im = im.convert("RGB")
    if size is not None and im.size != (size, size):
        im = im.resize((size, size), Image.BOX)
    return np.asarray(im)


def decode_all(
    files: Files,
    names: Sequence[str],
    size: int | None = None,
    shrink: Callable[[torch.Tensor], torch.Tensor] | None = None,
) -> torch.Tensor:
    """Decode ``names`` into one uint8 (N, 3, H, W) tensor, 1024 images at a time, each
    chunk passed through ``shrink`` (so that large images never sit in memory whole)."""
    if names:
        check_codec(names[0])
    chunks, shape = [], None
    for start in range(0, len(names), 1024):
        arrays = []
        for name in names[start : start + 1024]:
            try:
                array = decode_image(files.read(name), size)
            except DECODE_ERRORS as err:
                check_codec(name)
                raise corrupt(
                    files.where[name][0], f"{name} does not decode: {err}"
                ) from err
            shape = shape or array.shape
            if array.shape != shape:
                raise ValueError(
                    f"{name} is {array.shape[1]}x{array.shape[0]} but earlier images are "
                    f"{shape[1]}x{shape[0]}; pass size= to resize them all"
                )
            arrays.append(array)
        batch = torch.from_numpy(np.stack(arrays)).permute(0, 3, 1, 2)
        chunks.append(shrink(batch) if shrink is not None else batch.contiguous())
    return torch.cat(chunks)


def natural_key(name: str) -> list:
    """Sort key putting ``img_2`` before ``img_10``."""
    return [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", name)]


def first_indices(labels: Sequence[int], quota: np.ndarray | int | None) -> np.ndarray:
    """Indices, in order, of the first ``quota[c]`` samples of each class ``c`` (or the first
    ``quota`` of every class; ``None`` keeps all)."""
    labels = np.asarray(labels, dtype=np.int64)
    if quota is None:
        return np.arange(len(labels))
    if np.isscalar(quota):
        quota = np.full(int(labels.max(initial=0)) + 1, quota)
    order = np.argsort(labels, kind="stable")
    ranked = labels[order]
    rank = np.arange(len(labels)) - np.searchsorted(ranked, ranked)
    return np.sort(order[rank < np.asarray(quota)[ranked]])


def keep_first(entries: list[tuple[str, int]], per_class: int | None) -> list:
    """(name, label) sorted by label then name, the first ``per_class`` of each label."""
    entries = sorted(entries, key=lambda e: (e[1], natural_key(e[0])))
    return [entries[i] for i in first_indices([y for _, y in entries], per_class)]


def decode_folder(
    files: Files, root: str | None, per_class: int | None, size: int | None = None
) -> tuple[torch.Tensor, torch.Tensor, list[str]]:
    """Images, labels and classes of the ImageFolder tree ``root/<class>/`` (``None``
    finds the root), decoding only the kept images."""
    images = [n for n in files.names() if n.lower().endswith(IMAGE_EXTENSIONS)]
    if root is None:
        roots = {posixpath.dirname(posixpath.dirname(n)) for n in images}
        if len(roots) != 1:
            raise ValueError(
                f"{files.label} is not in ImageFolder layout <root>/<class>/<image>: "
                f"its images lie under {len(roots)} different roots"
            )
        root = roots.pop()
    prefix = f"{root}/" if root else ""
    below = [(n, n[len(prefix) :]) for n in images if n.startswith(prefix)]
    pairs = [(n, rest.split("/", 1)[0]) for n, rest in below if "/" in rest]
    classes = sorted({c for _, c in pairs})
    index = {c: i for i, c in enumerate(classes)}
    entries = [(n, index[c]) for n, c in pairs]
    if not entries:
        raise DatasetMissingError(
            f"{files.label} holds no images ({', '.join(IMAGE_EXTENSIONS)}) "
            "in <class>/ folders"
        )
    entries = keep_first(entries, per_class)
    labels = torch.tensor([y for _, y in entries], dtype=torch.int64)
    return decode_all(files, [n for n, _ in entries], size), labels, classes


def stamp(path: Path) -> list:
    """What identifies a source's content cheaply: size and mtime (summed over a folder)."""
    if path.is_file():
        st = path.stat()
        return [str(path), st.st_size, st.st_mtime_ns]
    stats = [Path(d, n).stat() for d, _, names in os.walk(path) for n in names]
    mtime = max((st.st_mtime_ns for st in stats), default=0)
    return [str(path), len(stats), sum(st.st_size for st in stats), mtime]


def unpickle(path: Path) -> dict:
    try:
        if path.suffix == ".npz":
            with np.load(path) as npz:
                return dict(npz)
        with open(path, "rb") as f:
            return pickle.load(f, encoding="latin1")
    except MemoryError:
        raise
    except Exception as err:  # UnpicklingError, EOFError, ValueError: all a bad file
        detail = f"it does not load as a pickle/npz: {type(err).__name__}: {err}"
        raise corrupt(path, detail) from err


def read_batches(*args) -> tuple[torch.Tensor, torch.Tensor]:
    """The batches of :func:`iter_batches` (same arguments), in one pair of tensors."""
    images, labels = zip(*iter_batches(*args))
    return torch.cat(images), torch.cat(labels)


def iter_batches(
    paths: Sequence[Path],
    shape: tuple[int, ...],
    n_classes: int,
    first_label: int,
    per_class: int | None,
) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """(images, labels) of each pickled batch in turn, until ``per_class`` is met."""
    counts = np.zeros(n_classes, dtype=np.int64)
    for path in paths:
        batch = unpickle(path)
        try:
            x = np.asarray(batch["data"], dtype=np.uint8).reshape(-1, *shape)
            y = np.asarray(batch["labels"], dtype=np.int64) - first_label
        except (KeyError, ValueError, TypeError) as err:
            raise corrupt(path, f"not a batch of {shape} images: {err}") from err
        if len(x) != len(y) or y.min(initial=0) < 0 or y.max(initial=0) >= n_classes:
            raise corrupt(
                path, f"{len(x)} images, {len(y)} labels, not all in 0..{n_classes - 1}"
            )
        if per_class is not None:
            keep = first_indices(y, per_class - counts)
            x, y = x[keep], y[keep]
            counts += np.bincount(y, minlength=n_classes)
        yield torch.from_numpy(x), torch.from_numpy(y)
        if per_class is not None and counts.min() >= per_class:
            break


def download_torchvision(fetch: Callable[[], object], name: str, where: Path,
                          files: Sequence[str], made: Sequence[Path]) -> None:  # fmt: skip
    """Run a torchvision download (it checks MD5s); on failure remove what it made."""
    existed = {p for p in made if p.exists()}
    try:
        fetch()
    except Exception as err:  # offline: RuntimeError, URLError, OSError...
        for p in reversed(made):  # innermost first, so emptied folders can go too
            if p not in existed and p.exists():
                shutil.rmtree(p) if p.is_dir() else p.unlink()
        raise missing(
            name, where, files,
            f"downloading it failed ({type(err).__name__}: {err}); connect to the "
            "internet and run again, or copy the files there by hand",
        ) from err  # fmt: skip


def download_file(
    url: str, dest: Path, md5: str, name: str, files: Sequence[str]
) -> None:
    """Download ``url`` to ``dest.part``, check its MD5, then rename it to ``dest``."""
    part = dest.with_name(dest.name + ".part")
    try:
        dest.parent.mkdir(parents=True, exist_ok=True)
        download_url(url, str(dest.parent), part.name)
        got = calculate_md5(str(part)) if part.exists() else "none"
        if got != md5:
            raise ValueError(
                f"checksum mismatch: MD5 {got}, the published one is {md5}"
            )
        os.replace(part, dest)
    except Exception as err:
        part.unlink(missing_ok=True)
        raise missing(
            name, dest.parent, files,
            f"downloading {url} failed ({type(err).__name__}: {err}); download it by hand "
            f"and save it as {dest}",
        ) from err  # fmt: skip
