"""Small datasets written in the real on-disk formats, for the tests.

The unit tests write tiny random ones; :func:`build_standins` writes a stand-in for every
dataset the notebooks read (MNIST IDX, CIFAR-10 pickles, the official Tiny ImageNet zip,
Imagenet32 batches), large enough for their smoke budget and learnable (each class is its own
pattern), so the notebooks run end to end on a machine with no data and no network.
"""

from __future__ import annotations

import io
import pickle
import zipfile
from pathlib import Path

import numpy as np
from PIL import Image

CIFAR10_CLASSES = (
    "airplane", "automobile", "bird", "cat", "deer",
    "dog", "frog", "horse", "ship", "truck",
)  # fmt: skip


def idx_bytes(array: np.ndarray) -> bytes:
    """An IDX file as MNIST ships it: magic 0x0000 0x08 ndim, big-endian dims, bytes."""
    dims = b"".join(d.to_bytes(4, "big") for d in array.shape)
    return bytes([0, 0, 8, array.ndim]) + dims + array.astype(np.uint8).tobytes()


def encode(array: np.ndarray, fmt: str = "PNG", **kw) -> bytes:
    """One image encoded in memory (PNG is lossless, so decoded pixels compare exactly)."""
    buf = io.BytesIO()
    Image.fromarray(array).save(buf, format=fmt, **kw)
    return buf.getvalue()


def write_zip(path: Path, members: dict[str, bytes], compression=zipfile.ZIP_STORED):
    with zipfile.ZipFile(path, "w", compression) as zf:
        for name, payload in members.items():
            zf.writestr(name, payload)
    return path


def write_mnist(root: Path, images: dict, labels: dict, gz: bool = False) -> Path:
    """``images``/``labels`` keyed by ``train`` and ``t10k``, as MNIST/raw/ IDX files."""
    import gzip

    raw = root / "MNIST" / "raw"
    raw.mkdir(parents=True, exist_ok=True)
    for stem in ("train", "t10k"):
        for kind, array in (
            ("images-idx3", images[stem]),
            ("labels-idx1", labels[stem]),
        ):
            payload = idx_bytes(array)
            path = raw / f"{stem}-{kind}-ubyte"
            if gz:
                Path(f"{path}.gz").write_bytes(gzip.compress(payload))
            else:
                path.write_bytes(payload)
    return raw


def write_cifar_pickles(
    root: Path, batches: dict[str, tuple[np.ndarray, list]]
) -> Path:
    """``cifar-10-batches-py/``: ``data_batch_1..5`` and ``test_batch`` as torchvision has
    them (``data`` N x 3072 uint8 rows, R then G then B planes; ``labels`` a list)."""
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True, exist_ok=True)
    for name, (x, y) in batches.items():
        with open(folder / name, "wb") as f:
            pickle.dump(
                {"batch_label": name, "data": x, "labels": list(y)}, f, protocol=2
            )
    with open(folder / "batches.meta", "wb") as f:
        pickle.dump(
            {"label_names": list(CIFAR10_CLASSES), "num_vis": 3072}, f, protocol=2
        )
    return folder


def write_imagenet_batch(path: Path, x: np.ndarray, y: list[int]) -> Path:
    """One Imagenet32/64 batch: ``data`` N x 3*res*res uint8 rows, 1-based ``labels``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as f:
        pickle.dump({"data": x, "labels": list(y), "mean": x.mean(0)}, f)
    return path


def write_tiny_official(
    root: Path, wnids: list[str], words: str, train: dict, val: list, fmt: str = "PNG"
) -> Path:
    """The official ``tiny-imagenet-200.zip`` layout: ``train/<wnid>/images/*.JPEG``,
    ``val/images/*.JPEG`` labelled by ``val/val_annotations.txt``, ``wnids.txt`` (unsorted,
    as shipped) and ``words.txt``. ``train`` maps wnid -> images; ``val`` is (wnid, image)."""
    top = "tiny-imagenet-200"
    members = {
        f"{top}/wnids.txt": "\n".join(wnids).encode(),
        f"{top}/words.txt": words.encode(),
    }
    for w, images in train.items():
        members[f"{top}/train/{w}/{w}_boxes.txt"] = b"boxes"
        for i, img in enumerate(images):
            members[f"{top}/train/{w}/images/{w}_{i}.JPEG"] = encode(img, fmt)
    notes = []
    for i, (w, img) in enumerate(val):
        members[f"{top}/val/images/val_{i}.JPEG"] = encode(img, fmt)
        notes.append(f"val_{i}.JPEG\t{w}\t0\t0\t63\t63")
    members[f"{top}/val/val_annotations.txt"] = "\n".join(notes).encode()
    blank = np.zeros((64, 64, 3), np.uint8)
    members[f"{top}/test/images/test_0.JPEG"] = encode(blank, fmt)
    return write_zip(root / f"{top}.zip", members, zipfile.ZIP_DEFLATED)


# ---- Stand-ins for the notebooks: learnable, in every format they read ----


def _patterns(n_classes: int, size: int, channels: int, rng) -> np.ndarray:
    """One random pattern of 4x4 blocks per class, each block ink (255) or background
    (0): (classes, size, size, channels)."""
    coarse = 255.0 * rng.integers(0, 2, (n_classes, 4, 4, channels))  # ink or not
    up = np.repeat(np.repeat(coarse, -(-size // 4), 1), -(-size // 4), 2)
    return up[:, :size, :size]


def _samples(
    patterns: np.ndarray, labels: np.ndarray, rng, noise: float = 40
) -> np.ndarray:
    """Each sample its class's pattern, shifted by up to 2 px, plus noise, as uint8."""
    out = np.empty((len(labels), *patterns.shape[1:]), np.uint8)
    for i, c in enumerate(labels):
        dy, dx = rng.integers(-2, 3, 2)
        img = np.roll(patterns[c], (dy, dx), axis=(0, 1))
        out[i] = np.clip(img + rng.normal(0, noise, img.shape), 0, 255)
    return out


def build_standins(root: Path, seed: int = 0) -> Path:
    """Write a stand-in for every dataset the notebooks read into ``root``; return it.

    MNIST (IDX): 120 training and 60 test digits per class; CIFAR-10 (pickles): 100 and 50
    per class; Tiny ImageNet (the official 64x64 zip): 200 classes of 10 and 5 images;
    Imagenet32 (batches): 1,000 classes of 2 and 1 images.
    """
    rng = np.random.default_rng(seed)
    root.mkdir(parents=True, exist_ok=True)

    def split(n_classes: int, per_class: int) -> np.ndarray:
        return rng.permutation(np.repeat(np.arange(n_classes), per_class))

    digits = _patterns(10, 28, 1, rng)[..., 0]
    labels = {"train": split(10, 120), "t10k": split(10, 60)}
    images = {k: _samples(digits[..., None], y, rng)[..., 0] for k, y in labels.items()}
    write_mnist(root, images, {k: y.astype(np.uint8) for k, y in labels.items()})

    colours = _patterns(10, 32, 3, rng)
    batches = {}
    train_y, test_y = split(10, 100), split(10, 50)
    for name, y in [(f"data_batch_{i + 1}", part) for i, part in
                    enumerate(np.array_split(train_y, 5))] + [("test_batch", test_y)]:  # fmt: skip
        x = _samples(colours, y, rng).transpose(0, 3, 1, 2).reshape(len(y), -1)
        batches[name] = (x, y.tolist())
    write_cifar_pickles(root, batches)

    wnids = [f"n{i:08d}" for i in rng.permutation(200) + 1000]  # shipped unsorted
    words = "".join(
        f"{w}\tclass {i}, a stand-in\n" for i, w in enumerate(sorted(wnids))
    )
    tiny = _patterns(200, 64, 3, rng)
    train = {
        w: _samples(tiny, np.full(10, c), rng) for c, w in enumerate(sorted(wnids))
    }
    val_y = split(200, 5)
    val = list(zip([sorted(wnids)[c] for c in val_y], _samples(tiny, val_y, rng)))
    write_tiny_official(root, wnids, words, train, val, fmt="JPEG")

    small = _patterns(1000, 32, 3, rng)
    folder = root / "Imagenet32_train"
    for i, part in enumerate(np.array_split(split(1000, 2), 10)):
        x = _samples(small, part, rng).transpose(0, 3, 1, 2).reshape(len(part), -1)
        write_imagenet_batch(
            folder / f"train_data_batch_{i + 1}", x, (part + 1).tolist()
        )
    val_y = split(1000, 1)
    x = _samples(small, val_y, rng).transpose(0, 3, 1, 2).reshape(len(val_y), -1)
    write_imagenet_batch(root / "Imagenet32_val" / "val_data", x, (val_y + 1).tolist())
    (root / "STAND-INS.txt").write_text(
        "Generated stand-in datasets for the tests (tests/fakedata.py), not real data.\n"
    )
    return root


def learnable(
    n: int,
    classes: int = 10,
    size: int = 28,
    channels: int = 1,
    seed: int = 0,
    noise: float = 40,
) -> tuple[np.ndarray, np.ndarray]:
    """``n`` uint8 images (n, size, size, channels) that a small network can learn, and
    their labels (cycling through the classes): each class one smooth random pattern, each
    image its class's pattern shifted by up to 2 px, plus noise. The one maker of learnable
    toy data for the tests, as for the notebooks' stand-ins."""
    rng = np.random.default_rng(seed)
    labels = np.arange(n) % classes
    return _samples(_patterns(classes, size, channels, rng), labels, rng, noise), labels


def write_learnable_mnist(root: Path, n_train: int = 500, n_test: int = 100) -> Path:
    """A tiny learnable MNIST in ``root/MNIST/raw``: ``n_train`` + ``n_test`` digits of
    :func:`learnable`, the test digits drawn after the training ones."""
    images, labels = learnable(n_train + n_test, noise=10)  # learnt in a few epochs
    split = {"train": slice(0, n_train), "t10k": slice(n_train, None)}
    return write_mnist(
        root,
        {k: images[s, ..., 0] for k, s in split.items()},
        {k: labels[s].astype(np.uint8) for k, s in split.items()},
    )
