"""Dataset readers, one per format: :func:`load_tensors` reads MNIST, CIFAR-10, Tiny
ImageNet (at 32x32) and Imagenet32/64 out of their files and zips as ``uint8`` tensors;
your own data, named as itself: :func:`load_idx` any pair of IDX files in MNIST's format,
:func:`load_imagefolder` any ``<root>/<class>/<image>`` tree; decoding is done once."""

from __future__ import annotations

import gzip
import hashlib
import os
import zlib
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import torch
from torchvision import datasets

from .config import data_root, describe_path
from .cache import cached, cached_memmap
from .files import atomic_write
from .pipeline import box_downscale
from .storage import IMAGE_EXTENSIONS, Files, TensorData, corrupt, missing, stamp
from .storage import decode_all, decode_folder, download_file, download_torchvision
from .storage import first_indices, iter_batches, keep_first, read_batches

__all__ = [
    "DATASETS", "load_idx", "load_imagefolder", "load_tensors", "torchvision_mnist",
]  # fmt: skip

DATASETS = ("mnist", "cifar10", "tiny-imagenet", "imagenet32", "imagenet64")
SPLITS = ("train", "test")
CIFAR10_CLASSES = (
    "airplane", "automobile", "bird", "cat", "deer",
    "dog", "frog", "horse", "ship", "truck",
)  # fmt: skip
TINY_IMAGENET_URL = "http://cs231n.stanford.edu/tiny-imagenet-200.zip"
TINY_IMAGENET_MD5 = "90528d7ca1a48142e341f4ef8d21d0de"  # the published zip's checksum
IMAGENET_URL = "https://image-net.org/download-images"

# Per-channel (mean, std) of x = load_tensors(name, "train").images.double() / 255 over
# (N, H, W). CIFAR-10 from its JPEG copy (the pickled original gives 0.4914, 0.4822,
# 0.4465 / 0.2470, 0.2435, 0.2616); Tiny ImageNet from its 32x32 copy. Imagenet32/64
# reuse Tiny ImageNet's values (the same kind of photographs; not measured on them).
STATS: dict[str, tuple[tuple[float, ...], tuple[float, ...]]] = {
    "mnist": ((0.1307,), (0.3081,)),
    "cifar10": ((0.4913, 0.4821, 0.4465), (0.2452, 0.2428, 0.2606)),
    "tiny-imagenet": ((0.4825, 0.4504, 0.3998), (0.2597, 0.2527, 0.2662)),
}
STATS["imagenet32"] = STATS["imagenet64"] = STATS["tiny-imagenet"]


def read_idx(path: Path) -> np.ndarray:
    """An IDX file of unsigned bytes (MNIST's format, ``.gz`` or not) as a numpy array."""
    try:
        raw = path.read_bytes()
        raw = gzip.decompress(raw) if path.suffix == ".gz" else raw
    except (OSError, EOFError, zlib.error) as err:
        raise corrupt(path, f"cannot read it: {err}") from err
    if len(raw) < 4 or raw[:3] != b"\x00\x00\x08":
        magic = raw[:4].hex() or "missing"
        raise corrupt(path, f"not an IDX file of unsigned bytes (magic number {magic})")
    ndim, header = raw[3], 4 + 4 * raw[3]
    dims = tuple(int.from_bytes(raw[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
    expected = header + int(np.prod(dims))
    if len(raw) != expected:
        raise corrupt(path, f"{len(raw):,} bytes where shape {dims} needs {expected:,}")
    return np.frombuffer(bytearray(raw), dtype=np.uint8, offset=header).reshape(dims)


def _mnist_files(root: Path, split: str, download: bool) -> tuple[Path, Path]:
    """MNIST's two IDX files for ``split`` (plain or ``.gz``), downloaded if need be."""
    raw = root / "MNIST" / "raw"
    stem = "train" if split == "train" else "t10k"
    wanted = (f"{stem}-images-idx3-ubyte", f"{stem}-labels-idx1-ubyte")

    def find() -> list[Path | None]:
        options = [(raw / n, raw / f"{n}.gz") for n in wanted]
        return [next((p for p in pair if p.is_file()), None) for pair in options]

    if None in find():
        if not download:
            raise missing("MNIST", raw, wanted, "call with download=True when online")
        made = [root, root / "MNIST", raw]
        made += [raw / f"{s}-{k}" for s in ("train", "t10k") for k in (
            "images-idx3-ubyte", "labels-idx1-ubyte")]  # fmt: skip
        made += [p.with_name(p.name + ".gz") for p in made[3:]]
        download_torchvision(
            lambda: datasets.MNIST(root, train=split == "train", download=True),
            "MNIST", raw, wanted, made,
        )  # fmt: skip
    found = find()
    if None in found:
        raise missing("MNIST", raw, wanted, "download the four IDX files by hand")
    return found[0], found[1]


def _load_mnist(
    root: Path, split: str, per_class: int | None, download: bool
) -> TensorData:
    images_path, labels_path = _mnist_files(root, split, download)
    images, labels = read_idx(images_path), read_idx(labels_path).astype(np.int64)
    if images.ndim != 3 or labels.shape != (len(images),) or labels.max(initial=0) > 9:
        shapes = f"images {images.shape} and labels {labels.shape}"
        raise corrupt(images_path, f"{shapes} in {labels_path.name} are not MNIST")
    keep = first_indices(labels, per_class)
    return TensorData(
        torch.from_numpy(images[keep]).unsqueeze(1),
        torch.from_numpy(labels[keep]), [str(d) for d in range(10)], "mnist", "MNIST",
        describe_path(images_path.parent), *STATS["mnist"],
    )  # fmt: skip


def torchvision_mnist(
    train: bool = True,
    root: str | os.PathLike | None = None,
    transform: Callable | None = None,
    download: bool = True,
) -> datasets.MNIST:
    """MNIST as torchvision's dataset of PIL images, from the data root (downloaded once)."""
    root = data_root(root)
    for split in SPLITS:  # torchvision wants all four files, uncompressed
        for path in _mnist_files(root, split, download):
            if path.suffix == ".gz" and not path.with_suffix("").exists():
                plain = gzip.decompress(path.read_bytes())
                atomic_write(path.with_suffix(""), lambda f, b=plain: f.write(b))
    return datasets.MNIST(root, train=train, transform=transform, download=False)


def _load_cifar10(
    root: Path, split: str, per_class: int | None, download: bool, cache: bool
) -> TensorData:
    folder = root / "cifar-10-batches-py"
    names = [f"data_batch_{i}" for i in range(1, 6)] if split == "train" else []
    paths = [folder / n for n in names or ["test_batch"]]
    jpeg_zip = root / f"cifar10-jpg-{split}.zip"
    looked_for = [f"{folder.name}/{p.name}" for p in paths] + [jpeg_zip.name]
    have_pickles = all(p.is_file() for p in paths)
    if not have_pickles and jpeg_zip.is_file():

        def build() -> TensorData:
            with Files([jpeg_zip]) as files:
                images, labels, classes = decode_folder(files, None, per_class)
            if tuple(classes) != CIFAR10_CLASSES:
                raise corrupt(jpeg_zip, f"class folders {classes} are not CIFAR-10's")
            return TensorData(
                images, labels, classes, "cifar10", "CIFAR-10 (JPEG copy)",
                describe_path(jpeg_zip), *STATS["cifar10"],
            )  # fmt: skip

        key = ["cifar10", split, per_class, stamp(jpeg_zip)]
        return cached(f"cifar10-jpg-{split}-{per_class or 'all'}", key, build, cache)
    if not have_pickles:
        if not download:
            raise missing(
                "CIFAR-10", root, looked_for, "call with download=True when online"
            )
        download_torchvision(
            lambda: datasets.CIFAR10(root, train=split == "train", download=True),
            "CIFAR-10", root, looked_for,
            [root, root / "cifar-10-python.tar.gz", folder],
        )  # fmt: skip
    images, labels = read_batches(paths, (3, 32, 32), 10, 0, per_class)
    return TensorData(
        images, labels, list(CIFAR10_CLASSES), "cifar10", "CIFAR-10",
        describe_path(folder), *STATS["cifar10"],
    )  # fmt: skip


def _imagenet_sources(res: int, root: Path, split: str) -> tuple[list[Path], list[str]]:
    """The batch files of Imagenet{res}'s ``split`` and its class names."""
    names = [f"train_data_batch_{i}" for i in range(1, 11)] if split == "train" else []
    names = names or ["val_data"]
    kinds = ("train", "val", "train_part1", "train_part2")
    folders = [root / f"Imagenet{res}_{s}" for s in kinds]
    folders += [root / f"Imagenet{res}", root / f"imagenet{res}", root]
    paths = []
    for name in names:
        candidates = [d / f for d in folders for f in (name, name + ".npz")]
        found = next((p for p in candidates if p.is_file()), None)
        if found is None:
            looked = [name, *(f"{d.name}/" for d in folders[:-1])]
            raise missing(
                f"Imagenet{res}", root, looked,
                f"it needs an image-net.org login, so it is never downloaded for you: "
                f"sign in at {IMAGENET_URL}, get the downsampled Imagenet{res}x{res} train "
                f"and val zips and unzip them into {root}",
            )  # fmt: skip
        paths.append(found)
    classes = [f"class {i}" for i in range(1000)]
    maps = [d / "map_clsloc.txt" for d in folders]
    mapping = next((m for m in maps if m.is_file()), None)
    if mapping is not None:  # "n02119789 1 kit_fox": wnid, 1-based label, name
        for line in mapping.read_text().splitlines():
            parts = line.split()
            if len(parts) >= 3 and parts[1].isdigit() and 1 <= int(parts[1]) <= 1000:
                classes[int(parts[1]) - 1] = parts[2].replace("_", " ")
    return paths, classes


def _load_imagenet(
    res: int, root: Path, split: str, per_class: int | None, mmap: bool
) -> TensorData:
    paths, classes = _imagenet_sources(res, root, split)
    args = (paths, (3, res, res), 1000, 1, per_class)  # 1000 classes, labels from 1
    where = describe_path(paths[0].parent)
    if mmap:  # written once to a uint8 file in the cache, shared by every process
        key = [res, split, per_class, [stamp(p) for p in paths]]
        name = f"imagenet{res}-{split}-{per_class or 'all'}"
        images, labels = cached_memmap(name, key, lambda: iter_batches(*args))
        where += ", memory-mapped from the cache"
    else:
        images, labels = read_batches(*args)
    return TensorData(
        images, labels, classes, f"imagenet{res}", f"Imagenet{res}", where,
        *STATS[f"imagenet{res}"],
    )  # fmt: skip


def _tiny_entries(files: Files, top: str, split: str) -> tuple[list, list[str], bool]:
    """(name, label), class names and whether the images are the official 64x64 ones."""
    official = top == "tiny-imagenet-200"
    wnids = sorted(files.text(f"{top}/wnids.txt").split())
    lines = files.text(f"{top}/words.txt").splitlines()
    words = dict(line.split("\t", 1) for line in lines if "\t" in line)
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
        if official and sub == "val":
            wnid = wnid_of.get(parts[-1])
        else:  # official train: <top>/train/<wnid>/images/x; course: <top>/<sub>/<wnid>/x
            wnid = parts[2] if len(parts) == (5 if official else 4) else None
        if wnid is not None:
            if wnid not in label:
                where = files.where[name][0]
                raise corrupt(where, f"{name} belongs to {wnid}, not in wnids.txt")
            entries.append((name, label[wnid]))
    classes = [words.get(w, w).split(",")[0].strip() for w in wnids]
    return entries, classes, official


def _load_tiny(
    root: Path, split: str, per_class: int | None, download: bool, cache: bool
) -> TensorData:
    parts = ["train-1", "train-2"] if split == "train" else ["val"]
    course = [root / f"tiny-imagenet-32-{part}.zip" for part in parts]
    official = root / "tiny-imagenet-200.zip"
    candidates = [course, [root / "tiny-imagenet-32"], [official]]
    candidates.append([root / "tiny-imagenet-200"])
    looked_for = [" + ".join(p.name for p in course), "tiny-imagenet-32/"]
    looked_for += [official.name, "tiny-imagenet-200/"]
    paths = next((c for c in candidates if all(p.exists() for p in c)), None)
    if paths is None:
        if not download:
            raise missing(
                "Tiny ImageNet", root, looked_for,
                f"call with download=True, or download {TINY_IMAGENET_URL} by hand and "
                f"save it as {official}",
            )  # fmt: skip
        download_file(
            TINY_IMAGENET_URL, official, TINY_IMAGENET_MD5, "Tiny ImageNet", looked_for
        )
        paths = [official]
    big = paths[0].name.startswith("tiny-imagenet-200")
    top = "tiny-imagenet-200" if big else "tiny-imagenet-32"
    how = "official 64x64 images, 2x2 box-averaged" if big else "course's 32x32 copy"

    def build() -> TensorData:
        with Files(paths) as files:
            entries, classes, official_images = _tiny_entries(files, top, split)
            if not entries:
                raise missing(
                    "Tiny ImageNet", root, [f"{top}/{split}/"],
                    f"{files.label} holds no {split} images; download it again",
                )  # fmt: skip
            entries = keep_first(entries, per_class)
            shrink = box_downscale if official_images else None  # 64x64 to 32x32
            images = decode_all(files, [n for n, _ in entries], shrink=shrink)
        return TensorData(
            images, torch.tensor([y for _, y in entries], dtype=torch.int64), classes,
            "tiny-imagenet", "Tiny ImageNet-200 at 32x32",
            f"{how}: {' + '.join(describe_path(p) for p in paths)}",
            *STATS["tiny-imagenet"],
        )  # fmt: skip

    key = ["tiny-imagenet", split, per_class, [stamp(p) for p in paths]]
    return cached(f"tiny-imagenet-{split}-{per_class or 'all'}", key, build, cache)


def _check_per_class(per_class: int | None) -> None:
    if per_class is not None and (
        not isinstance(per_class, (int, np.integer)) or per_class < 1
    ):
        raise ValueError(f"per_class must be a positive int or None, got {per_class!r}")


def load_tensors(
    dataset: str,
    split: str,
    root: str | os.PathLike | None = None,
    *,
    per_class: int | None = None,
    download: bool = True,
    cache: bool = True,
    mmap: bool = False,
) -> TensorData:
    """One split of a dataset as uint8 tensors; ``split="test"`` is ImageNet's val split.
    Looks in ``root`` (default: the data root) for, in this order:

    * ``mnist``: ``MNIST/raw/*-ubyte`` (or ``.gz``), else torchvision's download;
    * ``cifar10``: the ``cifar-10-batches-py/`` pickles, else the JPEG copy
      ``cifar10-jpg-{split}.zip``, else torchvision's download;
    * ``tiny-imagenet``: the course's 32x32 zips (``tiny-imagenet-32-*.zip``) or their
      extracted ``tiny-imagenet-32/``, else the official ``tiny-imagenet-200.zip`` or
      ``tiny-imagenet-200/`` (64x64, box-averaged to 32x32), else a download from Stanford;
    * ``imagenet32`` / ``imagenet64``: ``train_data_batch_1..10`` and ``val_data`` (pickle
      or npz) in ``Imagenet32_train/``, ``Imagenet32_val/``, ``Imagenet32/`` or the root;
      never downloaded (image-net.org needs a login).

    ``per_class`` keeps the first images of each class and decodes only those. With
    ``mmap`` (Imagenet32/64), the images are memory-mapped from a file in the cache."""
    if dataset not in DATASETS:
        raise ValueError(
            f"unknown dataset {dataset!r}; choose one of {', '.join(DATASETS)}"
        )
    if split not in SPLITS:
        raise ValueError(
            f"unknown split {split!r}; choose one of {', '.join(SPLITS)} "
            "('test' is the validation split of the ImageNet sets)"
        )
    _check_per_class(per_class)
    if mmap and not dataset.startswith("imagenet"):
        raise ValueError(f"mmap=True is for imagenet32 and imagenet64, not {dataset!r}")
    root = data_root(root)
    if dataset == "mnist":
        return _load_mnist(root, split, per_class, download)
    if dataset == "cifar10":
        return _load_cifar10(root, split, per_class, download, cache)
    if dataset == "tiny-imagenet":
        return _load_tiny(root, split, per_class, download, cache)
    return _load_imagenet(int(dataset[-2:]), root, split, per_class, mmap)


def measured_stats(images: torch.Tensor) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Per-channel mean and std of ``uint8`` images (N, C, H, W), on the 0..1 scale."""
    x = images.double() / 255
    mean, std = x.mean((0, 2, 3)).tolist(), x.std((0, 2, 3)).tolist()
    return tuple(round(v, 4) for v in mean), tuple(round(v, 4) for v in std)


def load_idx(
    images: str | os.PathLike,
    labels: str | os.PathLike,
    *,
    name: str,
    classes: Sequence[str] | None = None,
    per_class: int | None = None,
    stats: tuple[Sequence[float], Sequence[float]] | None = None,
) -> TensorData:
    """A dataset in MNIST's IDX format (Fashion-MNIST, KMNIST, EMNIST, ...) named as
    itself: ``classes`` name the labels 0, 1, ... (default: their numbers); its mean and
    std are measured on these images unless ``stats`` = (mean, std) gives them."""
    _check_per_class(per_class)
    paths = [Path(p).expanduser() for p in (images, labels)]
    for path in paths:
        if not path.is_file():
            raise missing(
                name, path.parent, [path.name], "give the paths of its two IDX files"
            )
    x, y = read_idx(paths[0]), read_idx(paths[1]).astype(np.int64)
    if x.ndim != 3 or y.shape != (len(x),):
        raise corrupt(
            paths[0], f"images {x.shape} and labels {y.shape} do not pair up as (N, H, W) "
            f"and (N,): is {paths[1].name} its labels file?",
        )  # fmt: skip
    count = int(y.max(initial=0)) + 1
    classes = [str(c) for c in range(count)] if classes is None else list(classes)
    if len(classes) < count:
        raise ValueError(
            f"{name}: its labels run from 0 to {count - 1}, but {len(classes)} class "
            f"names were given; give one name per label, {count} in all"
        )
    keep = first_indices(y, per_class)
    tensor = torch.from_numpy(x[keep]).unsqueeze(1)
    mean, std = stats if stats is not None else measured_stats(tensor)
    return TensorData(
        tensor, torch.from_numpy(y[keep]), classes, name.lower().replace(" ", "-"),
        name, describe_path(paths[0].parent), tuple(mean), tuple(std),
    )  # fmt: skip


def load_imagefolder(
    path: str | os.PathLike,
    *,
    size: int | None = None,
    per_class: int | None = None,
    cache: bool = True,
    name: str | None = None,
) -> TensorData:
    """An ImageFolder-layout directory or zip (``<root>/<class>/<image>``) as RGB
    tensors, titled ``name`` (default: the folder's name): classes are the sorted folder
    names, images sorted by name within a class and box-resized to ``size`` x ``size``
    if given (else all must share one size); mean and std are measured on them."""
    _check_per_class(per_class)
    path = Path(path).expanduser().resolve()
    if not path.exists():
        raise missing(
            "The image folder", path.parent, [path.name],
            f"{path} does not exist: give the path of an ImageFolder directory "
            "(<root>/<class>/<image>) or of a .zip holding one",
        )  # fmt: skip

    def build() -> TensorData:
        with Files([path]) as files:
            root = path.name if path.is_dir() else None
            images, labels, classes = decode_folder(files, root, per_class, size)
        return TensorData(
            images, labels, classes, "imagefolder", name or path.stem,
            describe_path(path), *measured_stats(images),
        )  # fmt: skip

    where = hashlib.sha1(str(path).encode()).hexdigest()[:8]  # same stem, other folder
    tag = f"{path.stem}-{where}-{size or 'orig'}-{per_class or 'all'}"
    key = ["imagefolder", size, per_class, stamp(path), name]
    return cached(f"imagefolder-{tag}", key, build, cache)
