"""Datasets from one data root (``$LENET_DATA_ROOT``) as uint8 tensors, with clear errors.

:func:`load_tensors` reads MNIST, CIFAR-10, Tiny ImageNet (at 32x32) and Imagenet32/64 in the
formats readers actually have (see its docstring), straight out of the files and zips, and
returns a :class:`TensorData`. :class:`TensorLoader`, :func:`normalize` and
:func:`random_crop_flip` then batch, scale and augment those tensors on any device.

Errors say which file, where it was looked for and how to get it: :class:`DatasetMissingError`
when it is absent, :class:`CorruptDatasetError` when it is there but unreadable.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import pickle
import posixpath
import re
import shutil
import tempfile
import urllib.request
import warnings
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator, Sequence

import numpy as np
import torch
from PIL import Image
from torchvision import datasets

from .config import DATA_ROOT_ENV, data_root

__all__ = [
    "CACHE_DIR_ENV",
    "CIFAR10_CLASSES",
    "DATASETS",
    "MNIST_FILES",
    "SPLITS",
    "STATS",
    "CorruptDatasetError",
    "DatasetMissingError",
    "TensorData",
    "TensorLoader",
    "box_downscale",
    "cache_dir",
    "load_imagefolder",
    "load_tensors",
    "mnist",
    "normalize",
    "first_indices",
    "random_affine",
    "random_crop_flip",
    "read_idx",
    "tensor_loaders",
]

DATASETS = ("mnist", "cifar10", "tiny-imagenet", "imagenet32", "imagenet64")
SPLITS = ("train", "test")
CACHE_DIR_ENV = "LENET_CACHE_DIR"
MNIST_FILES = (
    "train-images-idx3-ubyte",
    "train-labels-idx1-ubyte",
    "t10k-images-idx3-ubyte",
    "t10k-labels-idx1-ubyte",
)
CIFAR10_CLASSES = (
    "airplane",
    "automobile",
    "bird",
    "cat",
    "deer",
    "dog",
    "frog",
    "horse",
    "ship",
    "truck",
)
TINY_IMAGENET_URL = "http://cs231n.stanford.edu/tiny-imagenet-200.zip"
IMAGE_EXTENSIONS = (
    ".jpg",
    ".jpeg",
    ".png",
    ".webp",
    ".bmp",
    ".gif",
    ".ppm",
    ".tif",
    ".tiff",
)
_CACHE_VERSION = 1

# Per-channel (mean, std) in [0, 1] units over every pixel of the train split, computed once from
# the copies in /work/shared/data: x = load_tensors(name, "train").images.double() / 255, then the
# mean and std of each channel over (N, H, W). CIFAR-10 is the JPEG copy (the pickled original
# gives 0.4914, 0.4822, 0.4465 / 0.2470, 0.2435, 0.2616); Tiny ImageNet the course's 32x32 copy.
# Imagenet32/64 reuse Tiny ImageNet's values (same kind of photos; not measured on them).
STATS: dict[str, tuple[tuple[float, ...], tuple[float, ...]]] = {
    "mnist": ((0.1307,), (0.3081,)),
    "cifar10": ((0.4913, 0.4821, 0.4465), (0.2452, 0.2428, 0.2606)),
    "tiny-imagenet": ((0.4825, 0.4504, 0.3998), (0.2597, 0.2527, 0.2662)),
}
STATS["imagenet32"] = STATS["imagenet64"] = STATS["tiny-imagenet"]


class DatasetMissingError(FileNotFoundError):
    """A dataset is not in the data root and could not be downloaded."""


class CorruptDatasetError(ValueError):
    """A dataset file is there but unreadable: truncated, corrupt or not the expected format."""


def _missing(
    name: str, where: Path, files: Sequence[str], how: str
) -> DatasetMissingError:
    return DatasetMissingError(
        f"{name} is not in {where} (looked for {', '.join(files)}). {how} "
        f"Or set {DATA_ROOT_ENV} to a folder that already holds it."
    )


def _corrupt(path: Path, detail: str) -> CorruptDatasetError:
    return CorruptDatasetError(
        f"{path} is corrupt or truncated ({detail}). Delete it and download or copy it again."
    )


@dataclass
class TensorData:
    """A whole split in memory: ``images`` uint8 (N, C, H, W), ``labels`` int64 (N,)."""

    images: torch.Tensor
    labels: torch.Tensor
    classes: list[str]
    source: str

    def __len__(self) -> int:
        return len(self.labels)

    def __repr__(self) -> str:
        return (
            f"TensorData(images={tuple(self.images.shape)} {self.images.dtype}, "
            f"{len(self.classes)} classes, source={self.source!r})"
        )


# ---- Files: directories and zips read in place, images decoded with PIL ----


class _Files:
    """Files of directories and zips by name relative to the container's parent folder, so
    ``tiny-imagenet-32/train/...`` names the same file zipped or extracted."""

    def __init__(self, paths: Sequence[Path]) -> None:
        self.label = " + ".join(str(p) for p in paths)
        self.where: dict[str, tuple[Path, zipfile.ZipFile | None]] = {}
        self._zips: list[zipfile.ZipFile] = []
        for path in paths:
            if path.is_dir():
                for folder, _, names in os.walk(path):
                    rel = Path(folder).relative_to(path.parent).as_posix()
                    for name in names:
                        self.where[f"{rel}/{name}"] = (Path(folder, name), None)
                continue
            try:
                zf = zipfile.ZipFile(path)
            except (zipfile.BadZipFile, OSError, EOFError) as err:
                self.close()
                raise _corrupt(path, f"not a readable zip archive: {err}") from err
            self._zips.append(zf)
            for info in zf.infolist():
                if not info.is_dir():
                    self.where[info.filename] = (path, zf)

    def names(self) -> list[str]:
        """All names, without hidden files and macOS ``__MACOSX`` debris."""
        return [
            n
            for n in self.where
            if not any(p.startswith((".", "__MACOSX")) for p in n.split("/"))
        ]

    def read(self, name: str) -> bytes:
        if name not in self.where:
            raise _corrupt(Path(self.label), f"{name} is missing from it")
        path, zf = self.where[name]
        try:
            return zf.read(name) if zf is not None else path.read_bytes()
        except (zipfile.BadZipFile, zlib.error, EOFError, OSError) as err:
            raise _corrupt(path, f"cannot read {name}: {err}") from err

    def text(self, name: str) -> str:
        return self.read(name).decode("utf-8")

    def close(self) -> None:
        for zf in self._zips:
            zf.close()

    def __enter__(self) -> "_Files":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _decode_image(data: bytes, size: int | None = None) -> np.ndarray:
    """One encoded image as an RGB uint8 array (H, W, 3), box-resized to size x size if given."""
    with Image.open(io.BytesIO(data)) as im:
        im = im.convert("RGB")
    if size is not None and im.size != (size, size):
        im = im.resize((size, size), Image.BOX)
    return np.asarray(im)


def box_downscale(images: torch.Tensor, factor: int = 2) -> torch.Tensor:
    """Shrink uint8 images (..., H, W) by ``factor``, the Imagenet32 way: each output pixel is the
    exact mean of a factor x factor block, rounded half up (as PIL's ``Image.reduce``)."""
    *lead, h, w = images.shape
    if h % factor or w % factor:
        raise ValueError(
            f"box_downscale: {h}x{w} images do not split into {factor}x{factor} blocks"
        )
    blocks = images.reshape(*lead, h // factor, factor, w // factor, factor).to(
        torch.int32
    )
    area = factor * factor
    return ((blocks.sum(dim=(-3, -1)) + area // 2) // area).to(torch.uint8)


def _decode_all(
    files: _Files, names: Sequence[str], size: int | None = None, factor: int = 1
) -> torch.Tensor:
    """Decode ``names`` into one uint8 (N, 3, H, W) tensor, box-downscaling 1024 at a time."""
    chunks, shape = [], None
    for start in range(0, len(names), 1024):
        arrays = []
        for name in names[start : start + 1024]:
            try:
                array = _decode_image(files.read(name), size)
            except (
                OSError,
                ValueError,
                SyntaxError,
                Image.DecompressionBombError,
            ) as err:
                raise _corrupt(
                    files.where[name][0], f"image {name} does not decode: {err}"
                ) from err
            if shape is None:
                shape = array.shape
            if array.shape != shape:
                raise ValueError(
                    f"{name} is {array.shape[1]}x{array.shape[0]} but earlier images are "
                    f"{shape[1]}x{shape[0]}; pass size= to resize them all"
                )
            arrays.append(array)
        batch = torch.from_numpy(np.stack(arrays)).permute(0, 3, 1, 2)
        chunks.append(
            box_downscale(batch, factor) if factor > 1 else batch.contiguous()
        )
    return torch.cat(chunks)


def _natural(name: str) -> list:
    """Sort key putting ``img_2`` before ``img_10``."""
    return [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", name)]


def _first_per_class(
    entries: list[tuple[str, int]], per_class: int | None
) -> list[tuple[str, int]]:
    """(name, label) sorted by label then name, keeping the first ``per_class`` of each label."""
    entries = sorted(entries, key=lambda e: (e[1], _natural(e[0])))
    if per_class is None:
        return entries
    counts: dict[int, int] = {}
    kept = []
    for name, label in entries:
        counts[label] = counts.get(label, 0) + 1
        if counts[label] <= per_class:
            kept.append((name, label))
    return kept


def first_indices(labels: np.ndarray, quota: np.ndarray | int) -> np.ndarray:
    """Indices (in file order) of the first ``quota[c]`` samples of each class ``c`` (or ``quota`` of each)."""
    labels = np.asarray(labels)
    if np.isscalar(quota):
        quota = np.full(int(labels.max(initial=0)) + 1, quota)
    order = np.argsort(labels, kind="stable")
    ranked = labels[order]
    rank = np.arange(len(labels)) - np.searchsorted(ranked, ranked)
    return np.sort(order[rank < quota[ranked]])


def _imagefolder_entries(
    files: _Files, root: str | None
) -> tuple[list[tuple[str, int]], list[str]]:
    """(name, label) of every image under ``root/<class>/``; ``None`` finds the root in a zip."""
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
    pairs = [
        (n, n[len(prefix) :].split("/", 1)[0])
        for n in images
        if n.startswith(prefix) and "/" in n[len(prefix) :]
    ]
    classes = sorted({c for _, c in pairs})
    index = {c: i for i, c in enumerate(classes)}
    return [(n, index[c]) for n, c in pairs], classes


def _decode_folder(
    files: _Files, root: str | None, per_class: int | None, size: int | None = None
) -> tuple[torch.Tensor, torch.Tensor, list[str]]:
    """Images, labels and classes of an ImageFolder tree, decoding only the kept images."""
    entries, classes = _imagefolder_entries(files, root)
    if not entries:
        raise DatasetMissingError(
            f"{files.label} holds no images ({', '.join(IMAGE_EXTENSIONS)}) "
            "in <class>/ folders"
        )
    entries = _first_per_class(entries, per_class)
    labels = torch.tensor([y for _, y in entries], dtype=torch.int64)
    return _decode_all(files, [n for n, _ in entries], size), labels, classes


# ---- Cache: one .pt file per (dataset, split, per_class), keyed by the sources' sizes and mtimes ----


def cache_dir() -> Path:
    """``$LENET_CACHE_DIR``, else ``<data root>/cache`` if writable, else ``~/.cache/lenet5-course/cache``."""
    chosen = os.environ.get(CACHE_DIR_ENV)
    if chosen:
        path = Path(chosen).expanduser()
        path.mkdir(parents=True, exist_ok=True)
        return path
    path = data_root() / "cache"
    try:
        path.mkdir(parents=True, exist_ok=True)
        if os.access(path, os.W_OK):
            return path
    except OSError:
        pass
    path = Path("~/.cache/lenet5-course/cache").expanduser()
    path.mkdir(parents=True, exist_ok=True)
    return path


def _stamp(path: Path) -> list:
    """What identifies a source's content cheaply: size and mtime (summed over a directory)."""
    if path.is_file():
        st = path.stat()
        return [str(path), st.st_size, st.st_mtime_ns]
    sizes = mtimes = count = 0
    for folder, _, names in os.walk(path):
        for name in names:
            st = os.stat(os.path.join(folder, name))
            count, sizes, mtimes = (
                count + 1,
                sizes + st.st_size,
                max(mtimes, st.st_mtime_ns),
            )
    return [str(path), count, sizes, mtimes]


def _cached(
    name: str, key: list, build: Callable[[], TensorData], cache: bool
) -> TensorData:
    """``build()``'s result, stored once as ``<cache_dir>/<name>__<hash of key>.pt``."""
    if not cache:
        return build()
    digest = hashlib.sha1(json.dumps([_CACHE_VERSION, key]).encode()).hexdigest()[:12]
    folder = cache_dir()
    path = folder / f"{name}__{digest}.pt"
    if path.exists():
        try:
            saved = torch.load(path, weights_only=True)
            data = TensorData(
                saved["images"],
                saved["labels"],
                list(saved["classes"]),
                saved["source"],
            )
            if (
                data.images.dtype == torch.uint8
                and data.images.dim() == 4
                and len(data.images) == len(data.labels)
            ):
                return data
            raise ValueError("unexpected contents")
        except Exception as err:
            warnings.warn(
                f"Cache file {path} is unreadable ({err}); deleting it and decoding again."
            )
            path.unlink(missing_ok=True)
    data = build()
    for stale in folder.glob(f"{name}__*.pt"):  # older versions of the same sources
        stale.unlink(missing_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=folder)
    try:
        with os.fdopen(fd, "wb") as f:
            torch.save(
                {
                    "images": data.images,
                    "labels": data.labels,
                    "classes": data.classes,
                    "source": data.source,
                },
                f,
            )
        os.chmod(
            tmp, 0o644
        )  # mkstemp makes it private; a cache is shared like the data
        os.replace(tmp, path)  # atomic: an interrupted run leaves no half-written cache
    except OSError as err:
        warnings.warn(
            f"Could not write the cache file {path} ({err}); the data is not cached."
        )
    finally:
        Path(tmp).unlink(missing_ok=True)
    return data


# ---- Downloads ----


def _download_torchvision(
    fetch: Callable[[], object],
    name: str,
    where: Path,
    files: Sequence[str],
    leftovers: Sequence[Path],
) -> None:
    """Run a torchvision download; on failure remove what it left half-written and explain."""
    existed = {p for p in leftovers if p.exists()}
    try:
        fetch()
    except Exception as err:  # offline: RuntimeError, URLError, OSError...
        for p in leftovers:
            if p not in existed and p.exists():
                shutil.rmtree(p) if p.is_dir() else p.unlink()
        raise _missing(
            name,
            where,
            files,
            f"The download failed ({type(err).__name__}: {err}); "
            "check the internet connection and try again.",
        ) from err


def _download_file(url: str, dest: Path, name: str, files: Sequence[str]) -> None:
    """Download ``url`` to ``dest.part``, check it is a whole zip, then rename it to ``dest``."""
    part = dest.with_name(dest.name + ".part")
    try:
        dest.parent.mkdir(parents=True, exist_ok=True)
        urllib.request.urlretrieve(url, part)
        with zipfile.ZipFile(part):  # a cut-off download has no central directory
            pass
        os.replace(part, dest)
    except Exception as err:
        part.unlink(missing_ok=True)
        raise _missing(
            name,
            dest.parent,
            files,
            f"Downloading {url} failed ({type(err).__name__}: {err}); "
            f"download it by hand and save it as {dest}.",
        ) from err


# ---- The formats ----


def read_idx(path: Path) -> np.ndarray:
    """An IDX file of unsigned bytes (MNIST's format, ``.gz`` or not) as a numpy array."""
    path = Path(path)
    try:
        raw = (
            gzip.decompress(path.read_bytes())
            if path.suffix == ".gz"
            else path.read_bytes()
        )
    except (OSError, EOFError, zlib.error) as err:
        raise _corrupt(path, f"cannot read it: {err}") from err
    if len(raw) < 4 or raw[:3] != b"\x00\x00\x08":
        raise _corrupt(
            path,
            f"not an IDX file of unsigned bytes (magic number {raw[:4].hex() or 'missing'})",
        )
    ndim = raw[3]
    header = 4 + 4 * ndim
    dims = tuple(int.from_bytes(raw[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
    expected = header + int(np.prod(dims))
    if len(raw) != expected:
        raise _corrupt(
            path,
            f"{len(raw):,} bytes where an IDX array of shape {dims} needs {expected:,}",
        )
    return np.frombuffer(bytearray(raw), dtype=np.uint8, offset=header).reshape(dims)


def _load_mnist(
    root: Path, split: str, per_class: int | None, download: bool
) -> TensorData:
    raw = root / "MNIST" / "raw"
    stem = "train" if split == "train" else "t10k"
    wanted = (f"{stem}-images-idx3-ubyte", f"{stem}-labels-idx1-ubyte")

    def find() -> list[Path | None]:
        return [
            next((raw / f for f in (n, n + ".gz") if (raw / f).is_file()), None)
            for n in wanted
        ]

    if None in find():
        if not download:
            raise _missing(
                "MNIST",
                raw,
                wanted,
                "Call with download=True on a machine with internet access.",
            )
        leftovers = [raw / f for n in MNIST_FILES for f in (n, n + ".gz")]
        _download_torchvision(
            lambda: datasets.MNIST(root, train=split == "train", download=True),
            "MNIST",
            raw,
            wanted,
            leftovers,
        )
    images_path, labels_path = find()
    if images_path is None or labels_path is None:
        raise _missing(
            "MNIST",
            raw,
            wanted,
            "torchvision's download did not produce them; download them by hand.",
        )
    images, labels = read_idx(images_path), read_idx(labels_path).astype(np.int64)
    if (
        images.ndim != 3
        or labels.ndim != 1
        or len(images) != len(labels)
        or labels.max(initial=0) > 9
    ):
        raise _corrupt(
            images_path,
            f"images {images.shape} and labels {labels.shape} (up to "
            f"{labels.max(initial=0)}) in {labels_path.name} are not MNIST",
        )
    keep = (
        np.arange(len(labels))
        if per_class is None
        else first_indices(labels, np.full(10, per_class))
    )
    return TensorData(
        torch.from_numpy(images[keep]).unsqueeze(1),
        torch.from_numpy(labels[keep]),
        [str(d) for d in range(10)],
        str(images_path.parent),
    )


def _unpickle(path: Path) -> dict:
    try:
        if path.suffix == ".npz":
            with np.load(path) as npz:
                return dict(npz)
        with open(path, "rb") as f:
            return pickle.load(f, encoding="latin1")
    except MemoryError:
        raise
    except (
        Exception
    ) as err:  # UnpicklingError, EOFError, ValueError... all mean a bad file
        raise _corrupt(
            path, f"it does not load as a pickle/npz: {type(err).__name__}: {err}"
        ) from err


def _read_batches(
    paths: Sequence[Path],
    shape: tuple[int, ...],
    n_classes: int,
    first_label: int,
    per_class: int | None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Pickled batches of flat uint8 rows; with ``per_class``, stop once every class is full."""
    counts = np.zeros(n_classes, dtype=np.int64)
    images, labels = [], []
    for path in paths:
        batch = _unpickle(path)
        try:
            x = np.asarray(batch["data"], dtype=np.uint8).reshape(-1, *shape)
            y = np.asarray(batch["labels"], dtype=np.int64) - first_label
        except (KeyError, ValueError, TypeError) as err:
            raise _corrupt(
                path, f"not a batch of {shape} images with labels: {err}"
            ) from err
        if len(x) != len(y) or y.min(initial=0) < 0 or y.max(initial=0) >= n_classes:
            raise _corrupt(
                path,
                f"{len(x)} images, {len(y)} labels, labels outside 0..{n_classes - 1}",
            )
        if per_class is not None:
            keep = first_indices(y, per_class - counts)
            x, y = x[keep], y[keep]
            counts += np.bincount(y, minlength=n_classes)
        images.append(torch.from_numpy(x))
        labels.append(torch.from_numpy(y))
        if per_class is not None and counts.min() >= per_class:
            break
    return torch.cat(images), torch.cat(labels)


def _load_cifar10(
    root: Path, split: str, per_class: int | None, download: bool, cache: bool
) -> TensorData:
    folder = root / "cifar-10-batches-py"
    batches = (
        [f"data_batch_{i}" for i in range(1, 6)] if split == "train" else ["test_batch"]
    )
    jpeg_zip = root / f"cifar10-jpg-{split}.zip"
    looked_for = [f"{folder.name}/{b}" for b in batches] + [jpeg_zip.name]
    if not all((folder / b).is_file() for b in batches) and jpeg_zip.is_file():

        def build() -> TensorData:
            with _Files([jpeg_zip]) as files:
                images, labels, classes = _decode_folder(files, None, per_class)
            if tuple(classes) != CIFAR10_CLASSES:
                raise _corrupt(
                    jpeg_zip,
                    f"class folders {classes} are not CIFAR-10's {list(CIFAR10_CLASSES)}",
                )
            return TensorData(
                images, labels, classes, f"JPEG copy of CIFAR-10: {jpeg_zip}"
            )

        key = ["cifar10", split, per_class, _stamp(jpeg_zip)]
        return _cached(f"cifar10-jpg-{split}-{per_class or 'all'}", key, build, cache)
    if not all((folder / b).is_file() for b in batches):
        if not download:
            raise _missing(
                "CIFAR-10",
                root,
                looked_for,
                "Call with download=True on a machine with internet access.",
            )
        _download_torchvision(
            lambda: datasets.CIFAR10(root, train=split == "train", download=True),
            "CIFAR-10",
            root,
            looked_for,
            [root / "cifar-10-python.tar.gz", folder],
        )
    images, labels = _read_batches(
        [folder / b for b in batches], (3, 32, 32), 10, 0, per_class
    )
    return TensorData(images, labels, list(CIFAR10_CLASSES), str(folder))


def _tiny_entries(
    files: _Files, top: str, split: str
) -> tuple[list[tuple[str, int]], list[str], bool]:
    """(name, label), class names and whether the images are the official 64x64 ones."""
    official = top == "tiny-imagenet-200"
    wnids = sorted(files.text(f"{top}/wnids.txt").split())
    words = dict(
        line.split("\t", 1)
        for line in files.text(f"{top}/words.txt").splitlines()
        if "\t" in line
    )
    label = {w: i for i, w in enumerate(wnids)}
    sub = "train" if split == "train" else "val"
    entries, wnid_of = [], {}
    if official and sub == "val":
        notes = files.text(f"{top}/val/val_annotations.txt").splitlines()
        wnid_of = dict(line.split("\t")[:2] for line in notes if line.strip())
    for name in files.names():
        parts = name.split("/")
        if parts[:2] != [top, sub] or not name.lower().endswith(IMAGE_EXTENSIONS):
            continue
        if official:
            wnid = (
                wnid_of.get(parts[-1])
                if sub == "val"
                else (parts[2] if len(parts) == 5 else None)
            )
        else:
            wnid = parts[2] if len(parts) == 4 else None
        if wnid is not None:
            if wnid not in label:
                raise _corrupt(
                    files.where[name][0],
                    f"{name} belongs to {wnid}, which is not in wnids.txt",
                )
            entries.append((name, label[wnid]))
    classes = [words.get(w, w).split(",")[0].strip() for w in wnids]
    return entries, classes, official


def _load_tiny(
    root: Path, split: str, per_class: int | None, download: bool, cache: bool
) -> TensorData:
    course = (
        [root / "tiny-imagenet-32-train-1.zip", root / "tiny-imagenet-32-train-2.zip"]
        if split == "train"
        else [root / "tiny-imagenet-32-val.zip"]
    )
    official = root / "tiny-imagenet-200.zip"
    candidates = [
        course,
        [root / "tiny-imagenet-32"],
        [official],
        [root / "tiny-imagenet-200"],
    ]
    looked_for = [
        " + ".join(p.name for p in course),
        "tiny-imagenet-32/",
        official.name,
        "tiny-imagenet-200/",
    ]
    paths = next((c for c in candidates if all(p.exists() for p in c)), None)
    if paths is None:
        if not download:
            raise _missing(
                "Tiny ImageNet",
                root,
                looked_for,
                f"Call with download=True, or download "
                f"{TINY_IMAGENET_URL} by hand and save it as {official}.",
            )
        _download_file(TINY_IMAGENET_URL, official, "Tiny ImageNet", looked_for)
        paths = [official]
    top = (
        "tiny-imagenet-200"
        if paths[0].name.startswith("tiny-imagenet-200")
        else "tiny-imagenet-32"
    )

    def build() -> TensorData:
        with _Files(paths) as files:
            entries, classes, big = _tiny_entries(files, top, split)
            if not entries:
                raise _missing(
                    "Tiny ImageNet",
                    root,
                    [f"{top}/{'train' if split == 'train' else 'val'}/"],
                    f"{files.label} holds no {split} images; download it again.",
                )
            entries = _first_per_class(entries, per_class)
            images = _decode_all(files, [n for n, _ in entries], factor=2 if big else 1)
        how = (
            "official 64x64 JPEGs, 2x2 box-averaged to 32x32"
            if big
            else "course 32x32 WebP copy"
        )
        return TensorData(
            images,
            torch.tensor([y for _, y in entries], dtype=torch.int64),
            classes,
            f"Tiny ImageNet ({how}): {files.label}",
        )

    key = ["tiny-imagenet", split, per_class, [_stamp(p) for p in paths]]
    return _cached(f"tiny-imagenet-{split}-{per_class or 'all'}", key, build, cache)


def _load_imagenet(
    res: int, root: Path, split: str, per_class: int | None
) -> TensorData:
    names = (
        [f"train_data_batch_{i}" for i in range(1, 11)]
        if split == "train"
        else ["val_data"]
    )
    folders = [
        root / f"Imagenet{res}_{s}"
        for s in ("train", "val", "train_part1", "train_part2")
    ]
    folders += [root / f"Imagenet{res}", root / f"imagenet{res}", root]
    paths = []
    for name in names:
        found = next(
            (
                d / f
                for d in folders
                for f in (name, name + ".npz")
                if (d / f).is_file()
            ),
            None,
        )
        if found is None:
            raise _missing(
                f"Imagenet{res}",
                root,
                [name, *(str(d) for d in folders[:-1])],
                f"It needs an image-net.org login, so it is never downloaded automatically: sign in at "
                f"https://image-net.org/download-images, get the downsampled Imagenet{res}x{res} train "
                f"and val zips and unzip them into {root} (e.g. {folders[0] / names[0]}).",
            )
        paths.append(found)
    images, labels = _read_batches(paths, (3, res, res), 1000, 1, per_class)
    mapping = next(
        (d / "map_clsloc.txt" for d in folders if (d / "map_clsloc.txt").is_file()),
        None,
    )
    classes = [f"class {i}" for i in range(1000)]
    if mapping is not None:  # "n02119789 1 kit_fox": wnid, 1-based label, name
        for line in mapping.read_text().splitlines():
            parts = line.split()
            if len(parts) >= 3 and parts[1].isdigit() and 1 <= int(parts[1]) <= 1000:
                classes[int(parts[1]) - 1] = parts[2].replace("_", " ")
    return TensorData(images, labels, classes, str(paths[0].parent))


def _check_per_class(per_class: int | None) -> None:
    if per_class is not None and (not isinstance(per_class, int) or per_class < 1):
        raise ValueError(f"per_class must be a positive int or None, got {per_class!r}")


def load_tensors(
    dataset: str,
    split: str,
    root: str | os.PathLike | None = None,
    *,
    per_class: int | None = None,
    download: bool = True,
    cache: bool = True,
) -> TensorData:
    """One split of a dataset as uint8 tensors; ``split="test"`` is the val split for ImageNet sets.

    Looks in ``root`` (default: the data root) for, in this order:

    * ``mnist``: ``MNIST/raw/*-ubyte`` (or ``.gz``), else torchvision's download;
    * ``cifar10``: ``cifar-10-batches-py/`` pickles, else the JPEG copy ``cifar10-jpg-{split}.zip``,
      else torchvision's download;
    * ``tiny-imagenet``: the course's 32x32 zips (``tiny-imagenet-32-*.zip``) or their extracted
      ``tiny-imagenet-32/``, else the official ``tiny-imagenet-200.zip`` or ``tiny-imagenet-200/``
      (64x64, box-averaged to 32x32), else the official zip is downloaded from Stanford;
    * ``imagenet32`` / ``imagenet64``: ``train_data_batch_1..10`` and ``val_data`` (pickle or npz)
      in ``Imagenet32_train/``, ``Imagenet32_val/``, ``Imagenet32/`` or the root; never downloaded.

    ``per_class`` keeps the first images of each class and decodes only those. Images read from
    JPEG/WebP files are decoded once and cached (``cache_dir()``); the IDX and pickle formats are
    already raw arrays, read directly as fast as a cache would be.
    """
    if dataset not in DATASETS:
        raise ValueError(
            f"unknown dataset {dataset!r}; choose one of {', '.join(DATASETS)}"
        )
    if split not in SPLITS:
        raise ValueError(
            f"unknown split {split!r}; choose one of {', '.join(SPLITS)} ('test' is val for ImageNet)"
        )
    _check_per_class(per_class)
    root = data_root(root)
    if dataset == "mnist":
        return _load_mnist(root, split, per_class, download)
    if dataset == "cifar10":
        return _load_cifar10(root, split, per_class, download, cache)
    if dataset == "tiny-imagenet":
        return _load_tiny(root, split, per_class, download, cache)
    return _load_imagenet(int(dataset[-2:]), root, split, per_class)


def load_imagefolder(
    path: str | os.PathLike,
    *,
    size: int | None = None,
    per_class: int | None = None,
    cache: bool = True,
) -> TensorData:
    """An ImageFolder-layout directory or zip (``<root>/<class>/<image>``) as RGB uint8 tensors.

    Classes are the sorted folder names; images are sorted by name within a class and box-resized
    to ``size`` x ``size`` when given (they must all share one size otherwise).
    """
    _check_per_class(per_class)
    path = Path(path).expanduser().resolve()
    if not path.exists():
        raise DatasetMissingError(
            f"{path} does not exist: expected an ImageFolder directory "
            "(<root>/<class>/<image>) or a .zip holding one."
        )

    def build() -> TensorData:
        with _Files([path]) as files:
            images, labels, classes = _decode_folder(
                files, path.name if path.is_dir() else None, per_class, size
            )
        return TensorData(images, labels, classes, str(path))

    tag = hashlib.sha1(str(path).encode()).hexdigest()[:8]
    key = ["imagefolder", size, per_class, _stamp(path)]
    return _cached(
        f"imagefolder-{path.stem}-{tag}-{size or 'orig'}-{per_class or 'all'}",
        key,
        build,
        cache,
    )


# ---- On-device tensors: normalisation, augmentation, batching ----


def normalize(
    images_uint8: torch.Tensor, mean: Sequence[float], std: Sequence[float]
) -> torch.Tensor:
    """``(x / 255 - mean) / std`` per channel, as float32 on the images' device ((N,)C,H,W)."""
    channels = images_uint8.shape[-3]
    if len(mean) != channels or len(std) != channels:
        raise ValueError(
            f"normalize: {channels} channel(s) but {len(mean)} means and {len(std)} stds"
        )
    kw = dict(dtype=torch.float32, device=images_uint8.device)
    m, s = (
        torch.tensor(mean, **kw).view(-1, 1, 1),
        torch.tensor(std, **kw).view(-1, 1, 1),
    )
    return (images_uint8.to(torch.float32) / 255 - m) / s


def random_crop_flip(
    x: torch.Tensor,
    padding: int = 4,
    flip: bool = True,
    generator: torch.Generator | None = None,
    *,
    mode: str = "zeros",
) -> torch.Tensor:
    """Per image, shift by up to ``padding`` px each way (pad with zeros or ``mode="reflect"``,
    then crop back) and, if ``flip``, mirror left-right with probability 1/2. One batched gather
    on any device; ``generator`` (any device) makes it repeatable."""
    if x.dim() != 4:
        raise ValueError(
            f"random_crop_flip expects a batch (N, C, H, W), got shape {tuple(x.shape)}"
        )
    if mode not in ("zeros", "reflect"):
        raise ValueError(f"mode must be 'zeros' or 'reflect', got {mode!r}")
    n, c, h, w = x.shape
    if mode == "reflect" and padding >= min(h, w):
        raise ValueError(
            f"reflect padding {padding} needs images larger than {padding}x{padding}"
        )
    dev = generator.device if generator is not None else x.device
    shift = torch.randint(
        -padding, padding + 1, (2, n, 1), generator=generator, device=dev
    ).to(x.device)
    flips = (
        torch.randint(0, 2, (n, 1), generator=generator, device=dev).to(x.device).bool()
        & flip
    )
    rows = (
        torch.arange(h, device=x.device) + shift[0]
    )  # (N, H): source row of each output row
    cols = torch.arange(w, device=x.device)
    cols = torch.where(flips, cols.flip(0), cols) + shift[1]  # (N, W)
    if mode == "reflect":
        rows, cols = rows.abs(), cols.abs()
        rows, cols = (
            torch.where(rows >= h, 2 * (h - 1) - rows, rows),
            torch.where(cols >= w, 2 * (w - 1) - cols, cols),
        )
    inside = ((rows >= 0) & (rows < h))[:, None, :, None] & ((cols >= 0) & (cols < w))[
        :, None, None, :
    ]
    out = x.gather(2, rows.clamp(0, h - 1)[:, None, :, None].expand(n, c, h, w))
    out = out.gather(3, cols.clamp(0, w - 1)[:, None, None, :].expand(n, c, h, w))
    return out.masked_fill(~inside, 0)


def random_affine(
    x: torch.Tensor,
    *,
    shift: float = 2.0,
    scale: float = 0.1,
    squeeze: float = 0.1,
    shear: float = 0.15,
    fill: float = 0.0,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """The paper's distortions, per image: translation by up to ``shift`` px each way, scaling by
    up to ``1 +- scale``, squeezing (horizontal compression with vertical elongation, or the
    reverse) by up to ``1 +- squeeze``, and horizontal shearing by up to ``shear``. One batched
    ``affine_grid``/``grid_sample`` on any device; pixels from outside are ``fill``."""
    if x.dim() != 4:
        raise ValueError(
            f"random_affine expects a batch (N, C, H, W), got shape {tuple(x.shape)}"
        )
    n, _, h, w = x.shape
    dev = generator.device if generator is not None else x.device
    u = (
        torch.rand(5, n, generator=generator, device=dev).to(x.device) * 2 - 1
    )  # uniform in [-1, 1]
    s, q = 1 + scale * u[0], 1 + squeeze * u[1]
    sx, sy = s * q, s / q
    theta = torch.zeros(n, 2, 3, device=x.device, dtype=torch.float32)
    theta[:, 0, 0], theta[:, 0, 1], theta[:, 1, 1] = (
        1 / sx,
        shear * u[2],
        1 / sy,
    )  # output -> input coordinates
    theta[:, 0, 2], theta[:, 1, 2] = shift * u[3] * 2 / w, shift * u[4] * 2 / h
    grid = torch.nn.functional.affine_grid(theta, list(x.shape), align_corners=False)
    out = torch.nn.functional.grid_sample(
        x.float() - fill, grid, align_corners=False, padding_mode="zeros"
    )
    return (
        (out + fill).to(x.dtype)
        if x.is_floating_point()
        else (out + fill).round().clamp(0, 255).to(x.dtype)
    )


class TensorLoader:
    """Mini-batches ``(x, y)`` sliced from tensors already on a device (no workers, no copies to
    the GPU); shuffled with ``torch.randperm`` on that device each epoch, ``transform`` per batch."""

    def __init__(
        self,
        images: torch.Tensor,
        labels: torch.Tensor,
        batch_size: int,
        *,
        shuffle: bool = False,
        drop_last: bool = False,
        transform: Callable[[torch.Tensor], torch.Tensor] | None = None,
        seed: int = 0,
    ) -> None:
        if len(images) != len(labels):
            raise ValueError(
                f"TensorLoader: {len(images)} images but {len(labels)} labels"
            )
        if images.device != labels.device:
            raise ValueError(
                f"TensorLoader: images on {images.device} but labels on {labels.device}"
            )
        if batch_size < 1:
            raise ValueError(
                f"TensorLoader: batch_size must be at least 1, got {batch_size}"
            )
        self.images, self.labels, self.batch_size = images, labels, batch_size
        self.shuffle, self.drop_last, self.transform = shuffle, drop_last, transform
        self.generator = torch.Generator(device=images.device)
        self.generator.manual_seed(seed)

    def __len__(self) -> int:
        n = len(self.labels)
        return n // self.batch_size if self.drop_last else -(-n // self.batch_size)

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        n, bs = len(self.labels), self.batch_size
        order = (
            torch.randperm(n, generator=self.generator, device=self.images.device)
            if self.shuffle
            else None
        )
        for i in range(len(self)):
            if order is None:
                x, y = (
                    self.images[i * bs : (i + 1) * bs],
                    self.labels[i * bs : (i + 1) * bs],
                )
            else:
                idx = order[i * bs : (i + 1) * bs]
                x, y = self.images[idx], self.labels[idx]
            yield (self.transform(x) if self.transform is not None else x), y


def tensor_loaders(
    train: TensorData,
    test: TensorData,
    stats: tuple[Sequence[float], Sequence[float]],
    device: torch.device | str,
    *,
    batch_size: int = 128,
    padding: int = 0,
    flip: bool = False,
    mode: str = "zeros",
    eval_batch_size: int = 1000,
    seed: int = 0,
) -> tuple[TensorLoader, TensorLoader]:
    """The training chapters' pipeline: ``uint8`` tensors moved to ``device`` once, then per batch
    normalised with ``stats`` (and, for training, shifted by up to ``padding`` px and flipped)."""
    mean, std = stats

    def train_tf(x: torch.Tensor) -> torch.Tensor:
        if (
            padding or flip
        ):  # on the uint8 images, so that zero padding is black, as in torchvision
            x = random_crop_flip(x, padding, flip, mode=mode)
        return normalize(x, mean, std)

    train_loader = TensorLoader(
        train.images.to(device),
        train.labels.to(device),
        batch_size,
        shuffle=True,
        transform=train_tf,
        seed=seed,
    )
    test_loader = TensorLoader(
        test.images.to(device),
        test.labels.to(device),
        eval_batch_size,
        transform=lambda x: normalize(x, mean, std),
    )
    return train_loader, test_loader


# ---- The torchvision dataset, for code written against it ----


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
            raise _missing(
                "MNIST",
                raw,
                MNIST_FILES,
                "Call mnist(download=True) on a machine with internet access.",
            ) from err
    try:
        return datasets.MNIST(root, train=train, transform=transform, download=True)
    except (
        Exception
    ) as err:  # torchvision raises RuntimeError/URLError/OSError when offline
        raise _missing(
            "MNIST",
            raw,
            MNIST_FILES,
            f"The download failed ({type(err).__name__}: {err}); "
            "check the internet connection and try again.",
        ) from err
