"""The dataset readers and storage: every on-disk format, the cache, downloads, errors.

All datasets here are tiny fakes written to ``tmp_path`` in the real formats (see
``fakedata.py``); nothing touches the network. ``test_real_copies`` reads the real copies
when ``LENET_DATA_ROOT`` holds them.
"""

from __future__ import annotations

import io
import os
import pickle
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
from fakedata import (
    encode,
    write_cifar_pickles,
    write_imagenet_batch,
    write_mnist,
    write_tiny_official,
    write_zip,
)
from PIL import Image

from lenet_utils import cache, config, readers, storage
from lenet_utils.config import cache_dir
from lenet_utils.readers import CIFAR10_CLASSES, load_imagefolder, load_tensors
from lenet_utils.storage import (
    CorruptDatasetError,
    DatasetMissingError,
    MissingCodecError,
)
from lenet_utils.pipeline import box_downscale

REAL_ROOT = os.environ.get(
    "LENET_DATA_ROOT"
)  # read before the fixture below replaces it
RNG = np.random.default_rng(0)


@pytest.fixture(autouse=True)
def _isolated(tmp_path, monkeypatch):
    """Each test gets its own cache folder and never sees the real data root by accident."""
    monkeypatch.setenv("LENET_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("LENET_DATA_ROOT", str(tmp_path / "no-data-root"))


def png(array: np.ndarray) -> bytes:
    """Lossless, so decoded pixels compare exactly (PIL reads by content, so these bytes
    work under a .jpg or .JPEG name too)."""
    return encode(array, "PNG")


def webp(array: np.ndarray) -> bytes:
    return encode(array, "WEBP", lossless=True)


def rand_images(n: int, size: int) -> np.ndarray:
    return RNG.integers(0, 256, (n, size, size, 3), dtype=np.uint8)


# ----------------------------------------------------------------------------------------
# MNIST (IDX)
# ----------------------------------------------------------------------------------------


def make_mnist(root: Path, n: int = 30, gz: bool = False) -> dict[str, tuple]:
    """Random digits with labels 0, 7, 4, 1, ... in every split; returns what was written."""
    images = {
        s: RNG.integers(0, 256, (n, 28, 28), dtype=np.uint8) for s in ("train", "t10k")
    }
    labels = {s: (np.arange(n) * 7 % 10).astype(np.uint8) for s in ("train", "t10k")}
    write_mnist(root, images, labels, gz=gz)
    return {s: (images[s], labels[s]) for s in images}


@pytest.mark.parametrize("gz", [False, True])
def test_mnist_idx_round_trip(tmp_path, gz):
    made = make_mnist(tmp_path, gz=gz)
    for split, stem in (("train", "train"), ("test", "t10k")):
        d = load_tensors("mnist", split, tmp_path, download=False)
        images, labels = made[stem]
        assert d.images.shape == (30, 1, 28, 28) and d.images.dtype == torch.uint8
        assert d.labels.dtype == torch.int64
        assert torch.equal(d.images[:, 0], torch.from_numpy(images))
        assert torch.equal(d.labels, torch.from_numpy(labels.astype(np.int64)))
        assert d.classes == [str(i) for i in range(10)]
        assert "MNIST" in d.source


def test_mnist_per_class_keeps_first_of_each_class_in_file_order(tmp_path):
    images, labels = make_mnist(tmp_path)["train"]
    d = load_tensors("mnist", "train", tmp_path, per_class=2)
    expected = [i for i in range(30) if list(labels[:i]).count(labels[i]) < 2]
    assert len(d.labels) == 20 and torch.bincount(d.labels).tolist() == [2] * 10
    assert torch.equal(d.images[:, 0], torch.from_numpy(images[expected]))


def test_truncated_idx_names_the_file(tmp_path):
    make_mnist(tmp_path)
    path = tmp_path / "MNIST" / "raw" / "t10k-images-idx3-ubyte"
    path.write_bytes(path.read_bytes()[:-100])
    with pytest.raises(CorruptDatasetError, match="t10k-images-idx3-ubyte.*needs"):
        load_tensors("mnist", "test", tmp_path)
    path.write_bytes(b"GARBAGE!" * 10)
    with pytest.raises(CorruptDatasetError, match="magic number"):
        load_tensors("mnist", "test", tmp_path)


def test_mnist_missing_offline_leaves_nothing_behind(tmp_path, monkeypatch):
    raw = tmp_path / "MNIST" / "raw"

    def offline_download(root, train=True, download=False, **kw):
        raw.mkdir(parents=True, exist_ok=True)
        (raw / "train-images-idx3-ubyte.gz").write_bytes(b"\x1f\x8b partial")  # half
        raise RuntimeError("Error downloading train-images-idx3-ubyte.gz")

    monkeypatch.setattr(readers.datasets, "MNIST", offline_download)
    with pytest.raises(DatasetMissingError) as err:
        load_tensors("mnist", "train", tmp_path)
    message = str(err.value)
    assert "train-images-idx3-ubyte" in message and str(raw) in message
    assert "downloading it failed" in message and "LENET_DATA_ROOT" in message
    assert not (tmp_path / "MNIST").exists()  # not even the empty folders it made

    calls = []
    monkeypatch.setattr(readers.datasets, "MNIST", lambda *a, **k: calls.append(1))
    with pytest.raises(DatasetMissingError, match="download=True"):
        load_tensors("mnist", "test", tmp_path, download=False)
    assert not calls


def test_torchvision_mnist_reads_the_same_files(tmp_path):
    made = make_mnist(tmp_path, gz=True)  # only .gz: torchvision needs them unpacked
    dataset = readers.torchvision_mnist(train=False, root=tmp_path, download=False)
    image, label = dataset[3]
    assert np.array_equal(np.asarray(image), made["t10k"][0][3]) and label == 1
    assert (tmp_path / "MNIST" / "raw" / "t10k-images-idx3-ubyte").is_file()
    with pytest.raises(DatasetMissingError, match="MNIST"):
        readers.torchvision_mnist(root=tmp_path / "empty", download=False)


# ----------------------------------------------------------------------------------------
# CIFAR-10: pickles and the JPEG copy
# ----------------------------------------------------------------------------------------


def make_cifar_pickles(root: Path, per_batch: int = 12) -> dict[str, tuple]:
    names = [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]
    made = {}
    for name in names:
        x = RNG.integers(0, 256, (per_batch, 3072), dtype=np.uint8)
        made[name] = (x, RNG.permutation(np.arange(per_batch) % 10))
    write_cifar_pickles(root, {n: (x, y.tolist()) for n, (x, y) in made.items()})
    return made


def test_cifar_pickles(tmp_path):
    made = make_cifar_pickles(tmp_path)
    d = load_tensors("cifar10", "train", tmp_path, download=False)
    x = np.concatenate([made[f"data_batch_{i}"][0] for i in range(1, 6)])
    y = np.concatenate([made[f"data_batch_{i}"][1] for i in range(1, 6)])
    assert d.images.shape == (60, 3, 32, 32) and d.images.dtype == torch.uint8
    assert torch.equal(d.images, torch.from_numpy(x.reshape(-1, 3, 32, 32)))  # R, G, B
    assert torch.equal(d.labels, torch.from_numpy(y))
    assert d.classes == list(CIFAR10_CLASSES) and d.title == "CIFAR-10"
    assert d.name == "cifar10" and d.mean == readers.STATS["cifar10"][0]
    test = load_tensors("cifar10", "test", tmp_path)
    assert torch.equal(test.labels, torch.from_numpy(made["test_batch"][1]))


def test_cifar_per_class_reads_only_the_batches_it_needs(tmp_path):
    make_cifar_pickles(tmp_path)
    for i in range(2, 6):  # only batch 1 is needed for one image per class
        (tmp_path / "cifar-10-batches-py" / f"data_batch_{i}").write_bytes(b"no pickle")
    d = load_tensors("cifar10", "train", tmp_path, per_class=1)
    assert sorted(d.labels.tolist()) == list(range(10))
    with pytest.raises(CorruptDatasetError, match="data_batch_2.*pickle"):
        load_tensors("cifar10", "train", tmp_path)


def make_cifar_jpg(root: Path, split: str = "test", per_class: int = 3) -> dict:
    """The course's JPEG copy layout (PNG bytes under .jpg names: lossless)."""
    made = {
        f"{c}/{i}": rand_images(1, 32)[0]
        for c in CIFAR10_CLASSES
        for i in range(per_class)
    }
    members = {
        f"cifar10-jpg/{split}/{k[:-2]}/{int(k[-1]):04d}.jpg": png(v)
        for k, v in made.items()
    }
    write_zip(root / f"cifar10-jpg-{split}.zip", members)
    return made


def test_cifar_jpeg_copy(tmp_path):
    made = make_cifar_jpg(tmp_path)
    d = load_tensors("cifar10", "test", tmp_path, download=False)
    assert d.images.shape == (30, 3, 32, 32) and d.labels.tolist() == [
        c for c in range(10) for _ in range(3)
    ]
    assert d.title == "CIFAR-10 (JPEG copy)" and d.source.endswith(
        "cifar10-jpg-test.zip"
    )
    assert torch.equal(
        d.images[4], torch.from_numpy(made["automobile/1"]).permute(2, 0, 1)
    )
    small = load_tensors("cifar10", "test", tmp_path, per_class=1)
    assert small.labels.tolist() == list(range(10))
    assert torch.equal(small.images, d.images[::3])


def test_cifar_missing_offline(tmp_path, monkeypatch):
    root = (
        tmp_path / "fresh"
    )  # not there yet: a failed download must not leave it behind

    def offline(root, train=True, download=False, **kw):
        Path(root).mkdir(parents=True, exist_ok=True)
        Path(root, "cifar-10-python.tar.gz").write_bytes(b"partial")
        raise OSError("Network is unreachable")

    monkeypatch.setattr(readers.datasets, "CIFAR10", offline)
    with pytest.raises(DatasetMissingError) as err:
        load_tensors("cifar10", "train", root)
    message = str(err.value)
    assert "data_batch_1" in message and "cifar10-jpg-train.zip" in message
    assert str(root) in message and not root.exists()


# ----------------------------------------------------------------------------------------
# Imagenet32 / Imagenet64 batches
# ----------------------------------------------------------------------------------------


def write_batch(path: Path, n: int, res: int) -> tuple[np.ndarray, list[int]]:
    x = RNG.integers(0, 256, (n, 3 * res * res), dtype=np.uint8)
    y = [1, 1000] + list(RNG.integers(1, 1001, n - 2))
    write_imagenet_batch(path, x, y)
    return x, y


def test_imagenet32_batches(tmp_path):
    made = [
        write_batch(tmp_path / "Imagenet32_train" / f"train_data_batch_{i}", 4, 32)
        for i in range(1, 11)
    ]
    vx, vy = write_batch(tmp_path / "Imagenet32_val" / "val_data", 5, 32)
    (tmp_path / "Imagenet32_train" / "map_clsloc.txt").write_text(
        "n01440764 1 tench\nn15075141 1000 toilet_tissue\n"
    )
    d = load_tensors("imagenet32", "train", tmp_path)
    assert d.images.shape == (40, 3, 32, 32) and d.labels.dtype == torch.int64
    expected = np.concatenate([x for x, _ in made]).reshape(-1, 3, 32, 32)
    assert torch.equal(d.images, torch.from_numpy(expected))
    assert d.labels.tolist() == [v - 1 for _, y in made for v in y]
    assert len(d.classes) == 1000 and d.classes[0] == "tench"
    assert d.classes[999] == "toilet tissue" and d.title == "Imagenet32"
    val = load_tensors("imagenet32", "test", tmp_path)
    red = torch.from_numpy(vx[:, :1024].reshape(-1, 32, 32))
    assert torch.equal(val.images[:, 0], red)
    assert val.labels[:2].tolist() == [0, 999]


def test_imagenet64_val_and_missing(tmp_path):
    vx, vy = write_batch(tmp_path / "val_data", 3, 64)
    d = load_tensors("imagenet64", "test", tmp_path)
    assert d.images.shape == (3, 3, 64, 64)
    assert torch.equal(d.images.flatten(1), torch.from_numpy(vx))
    with pytest.raises(
        DatasetMissingError, match="(?s)train_data_batch_1.*image-net.org"
    ):
        load_tensors("imagenet64", "train", tmp_path)
    (tmp_path / "val_data").write_bytes(pickle.dumps({"data": vx})[:50])
    with pytest.raises(CorruptDatasetError, match="val_data"):
        load_tensors("imagenet64", "test", tmp_path)


# ----------------------------------------------------------------------------------------
# Tiny ImageNet: the official 64x64 zip and the course's 32x32 copy
# ----------------------------------------------------------------------------------------

WNIDS = ["n03000000", "n01000000", "n02000000"]  # official wnids.txt is not sorted
WORDS = (
    "n01000000\tgoldfish, Carassius auratus\nn02000000\tbullfrog\n"
    "n03000000\tcat, house cat\nn09999999\tentity\n"
)


def make_tiny_official(root: Path, per_class: int = 3, n_val: int = 6) -> dict:
    made = {}
    train = {}
    for w in WNIDS:
        train[w] = []
        for i in range(per_class):
            made[f"{w}_{i}"] = img = rand_images(1, 64)[0]
            train[w].append(img)
    val = []
    for i in range(n_val):
        made[f"val_{i}"] = img = rand_images(1, 64)[0]
        val.append((WNIDS[i % 3], img))
    write_tiny_official(root, WNIDS, WORDS, train, val)
    return made


def test_tiny_official_zip_downscaled_exactly(tmp_path):
    made = make_tiny_official(tmp_path)
    d = load_tensors("tiny-imagenet", "train", tmp_path, download=False)
    assert d.images.shape == (9, 3, 32, 32) and d.images.dtype == torch.uint8
    assert d.classes == ["goldfish", "bullfrog", "cat"]  # sorted wnids, first name
    sorted_wnids = sorted(WNIDS)
    assert d.labels.tolist() == [0, 0, 0, 1, 1, 1, 2, 2, 2]
    for k, (w, i) in enumerate((w, i) for w in sorted_wnids for i in range(3)):
        expected = np.asarray(Image.fromarray(made[f"{w}_{i}"]).reduce(2))
        assert np.array_equal(d.images[k].permute(1, 2, 0).numpy(), expected)
    assert "official 64x64" in d.source and d.title == "Tiny ImageNet-200 at 32x32"
    zipfile.ZipFile(tmp_path / "tiny-imagenet-200.zip").extractall(tmp_path / "x")
    extracted = load_tensors("tiny-imagenet", "train", tmp_path / "x", download=False)
    assert torch.equal(extracted.images, d.images) and extracted.classes == d.classes
    val = load_tensors("tiny-imagenet", "test", tmp_path)
    assert len(val.labels) == 6 and sorted(val.labels.tolist()) == [0, 0, 1, 1, 2, 2]
    assert val.labels[0] == 0  # label order: val_1 and val_4 are n01000000
    first = box_downscale(torch.from_numpy(made["val_1"]).permute(2, 0, 1))
    assert torch.equal(val.images[0], first)


def make_tiny_course(root: Path, per_class: int = 3) -> dict[str, np.ndarray]:
    """The course's three 32x32 WebP zips: two train halves and val, one tree."""
    wnids = sorted(WNIDS)
    top = "tiny-imagenet-32"
    texts = {
        f"{top}/wnids.txt": "\n".join(wnids).encode(),
        f"{top}/words.txt": WORDS.encode(),
    }
    made = {}
    parts = {"train-1": wnids[:2], "train-2": wnids[2:], "val": wnids}
    for part, classes in parts.items():
        split = "val" if part == "val" else "train"
        count = per_class if split == "train" else 2
        names = {f"{split}/{w}/{i}": f"{w}_{i}" for w in classes for i in range(count)}
        images = {key: rand_images(1, 32)[0] for key in names}
        made.update(images)
        members = {
            f"{top}/{split}/{k.split('/')[1]}/{names[k]}.webp": webp(v)
            for k, v in images.items()
        }
        write_zip(root / f"tiny-imagenet-32-{part}.zip", {**texts, **members})
    return made


def test_tiny_course_zips_and_extracted_dir(tmp_path):
    made = make_tiny_course(tmp_path)
    d = load_tensors("tiny-imagenet", "train", tmp_path, download=False)
    assert d.images.shape == (9, 3, 32, 32)
    assert d.labels.tolist() == [0, 0, 0, 1, 1, 1, 2, 2, 2]
    assert d.classes == ["goldfish", "bullfrog", "cat"] and "32x32 copy" in d.source
    expected = torch.from_numpy(made["train/n03000000/1"]).permute(2, 0, 1)
    assert torch.equal(d.images[7], expected)
    val = load_tensors("tiny-imagenet", "test", tmp_path)
    assert val.labels.tolist() == [0, 0, 1, 1, 2, 2]
    extracted = tmp_path / "extracted"
    for part in ("train-1", "train-2", "val"):
        zipfile.ZipFile(tmp_path / f"tiny-imagenet-32-{part}.zip").extractall(extracted)
    again = load_tensors("tiny-imagenet", "train", extracted)
    assert torch.equal(again.images, d.images) and torch.equal(again.labels, d.labels)


def test_tiny_per_class_decodes_only_what_it_keeps(tmp_path, monkeypatch):
    make_tiny_course(tmp_path)
    calls = []
    real = storage.decode_image
    monkeypatch.setattr(storage, "decode_image", lambda *a: calls.append(1) or real(*a))
    d = load_tensors("tiny-imagenet", "train", tmp_path, per_class=2, cache=False)
    assert d.labels.tolist() == [0, 0, 1, 1, 2, 2] and len(calls) == 6


def fake_server(body: bytes | None, seen: list):
    """Stands in for torchvision's ``download_url``: writes ``body`` (None: fails halfway)."""

    def download(url, root, filename=None, md5=None):
        seen.append(url)
        path = Path(root, filename)
        if body is None:
            path.write_bytes(b"PK\x03\x04 half")
            raise ConnectionResetError("connection reset")
        path.write_bytes(body)

    return download


def test_tiny_download_is_checked_and_never_left_half_made(tmp_path, monkeypatch):
    seen = []
    monkeypatch.setattr(storage, "download_url", fake_server(None, seen))
    with pytest.raises(DatasetMissingError) as err:
        load_tensors("tiny-imagenet", "train", tmp_path)
    assert seen == [readers.TINY_IMAGENET_URL]
    assert "tiny-imagenet-200.zip" in str(err.value) and str(tmp_path) in str(err.value)
    assert not list(tmp_path.glob("*.part"))
    assert not (tmp_path / "tiny-imagenet-200.zip").exists()

    source = tmp_path / "server"
    source.mkdir()
    make_tiny_official(source)
    good = (source / "tiny-imagenet-200.zip").read_bytes()
    monkeypatch.setattr(storage, "download_url", fake_server(good, seen))
    with pytest.raises(
        DatasetMissingError, match="(?s)checksum mismatch.*download it by"
    ):
        load_tensors("tiny-imagenet", "test", tmp_path)  # not the published file
    assert not list(tmp_path.glob("*.part"))
    assert not (tmp_path / "tiny-imagenet-200.zip").exists()

    md5 = __import__("hashlib").md5(good).hexdigest()
    monkeypatch.setattr(readers, "TINY_IMAGENET_MD5", md5)  # as if it were published
    assert len(load_tensors("tiny-imagenet", "test", tmp_path).labels) == 6
    assert (tmp_path / "tiny-imagenet-200.zip").exists()
    assert not list(tmp_path.glob("*.part"))


def test_tiny_missing_without_download(tmp_path):
    with pytest.raises(DatasetMissingError) as err:
        load_tensors("tiny-imagenet", "test", tmp_path, download=False)
    zips = ("tiny-imagenet-32-val.zip", "tiny-imagenet-200.zip")
    for name in (*zips, str(tmp_path), readers.TINY_IMAGENET_URL):
        assert name in str(err.value)


def test_missing_data_shows_as_one_short_message_in_jupyter(tmp_path):
    """IPython renders ``_render_traceback_`` instead of the traceback: a few lines that
    name the dataset, the folder, the files and the fix."""
    with pytest.raises(DatasetMissingError) as err:
        load_tensors("mnist", "test", tmp_path, download=False)
    lines = "\n".join(err.value._render_traceback_()).splitlines()
    assert len(lines) <= 6, lines
    text = "\n".join(lines)
    assert "DatasetMissingError" in lines[0] and "MNIST" in lines[0]
    for part in (
        str(tmp_path / "MNIST" / "raw"),
        "t10k-images-idx3-ubyte",
        "LENET_DATA_ROOT",
    ):
        assert part in text


def test_missing_webp_codec_is_named_not_blamed_on_the_data(tmp_path, monkeypatch):
    make_tiny_course(tmp_path)
    real = storage.features.check
    monkeypatch.setattr(storage.features, "check", lambda f: f != "webp" and real(f))
    with pytest.raises(MissingCodecError) as err:
        load_tensors("tiny-imagenet", "test", tmp_path, cache=False)
    message = str(err.value)
    assert "WEBP" in message and "Pillow" in message and "pip install" in message
    assert "corrupt" not in message


# ----------------------------------------------------------------------------------------
# Corrupt archives and images
# ----------------------------------------------------------------------------------------


def test_corrupt_and_truncated_zips(tmp_path):
    make_tiny_course(tmp_path)
    path = tmp_path / "tiny-imagenet-32-val.zip"
    good = path.read_bytes()
    path.write_bytes(good[: len(good) - 200])  # cut off: no central directory
    with pytest.raises(
        CorruptDatasetError, match="tiny-imagenet-32-val.zip.*delete it"
    ):
        load_tensors("tiny-imagenet", "test", tmp_path, cache=False)
    path.write_bytes(b"this is not a zip" * 10)
    with pytest.raises(CorruptDatasetError, match="tiny-imagenet-32-val.zip"):
        load_tensors("tiny-imagenet", "test", tmp_path, cache=False)
    broken = bytearray(good)  # flip bytes inside a stored image: CRC error
    with zipfile.ZipFile(io.BytesIO(good)) as zf:
        info = next(i for i in zf.infolist() if i.filename.endswith(".webp"))
    start = info.header_offset + 30 + len(info.filename.encode()) + len(info.extra)
    broken[start + 20 : start + 30] = b"\xff" * 10
    path.write_bytes(bytes(broken))
    with pytest.raises(CorruptDatasetError, match="CRC"):
        load_tensors("tiny-imagenet", "test", tmp_path, cache=False)


def test_tiny_zip_missing_its_label_files(tmp_path):
    make_tiny_official(tmp_path)
    path = tmp_path / "tiny-imagenet-200.zip"
    with zipfile.ZipFile(path) as zf:
        names = [n for n in zf.namelist() if not n.endswith("val_annotations.txt")]
        members = {n: zf.read(n) for n in names}
    write_zip(path, members)
    assert len(load_tensors("tiny-imagenet", "train", tmp_path).labels) == 9
    missing = "tiny-imagenet-200.zip.*val_annotations.txt is missing"
    with pytest.raises(CorruptDatasetError, match=missing):
        load_tensors("tiny-imagenet", "test", tmp_path)


def test_image_that_does_not_decode(tmp_path):
    folder = tmp_path / "folder"
    (folder / "cat").mkdir(parents=True)
    (folder / "cat" / "a.png").write_bytes(png(rand_images(1, 8)[0]))
    (folder / "cat" / "b.png").write_bytes(png(rand_images(1, 8)[0])[:40])
    with pytest.raises(CorruptDatasetError, match="b.png"):
        load_imagefolder(folder)


# ----------------------------------------------------------------------------------------
# ImageFolder directories and zips
# ----------------------------------------------------------------------------------------


def make_folder(root: Path) -> dict[str, np.ndarray]:
    made = {}
    for c, n in (("dog", 3), ("cat", 2)):
        (root / c).mkdir(parents=True)
        for i in (10, 2, 1)[:n]:
            made[f"{c}/{i}"] = img = rand_images(1, 8)[0]
            Image.fromarray(img).save(root / c / f"img_{i}.png")
    grey = rand_images(1, 8)[0][..., 0]
    Image.fromarray(grey).save(root / "cat" / "img_3.png")
    (root / "readme.txt").write_text("not an image")
    return made


def test_imagefolder_dir_and_zip(tmp_path):
    made = make_folder(tmp_path / "pets")
    d = load_imagefolder(tmp_path / "pets")
    assert d.classes == ["cat", "dog"] and d.labels.tolist() == [0, 0, 0, 1, 1, 1]
    assert d.images.shape == (6, 3, 8, 8) and d.images.dtype == torch.uint8

    def chw(img: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(img).permute(2, 0, 1)

    assert torch.equal(d.images[3], chw(made["dog/1"]))  # img_1 < img_2 < img_10
    assert torch.equal(d.images[5], chw(made["dog/10"]))
    assert torch.equal(d.images[1, 0], d.images[1, 1])  # greyscale cat/img_3 is RGB
    assert d.name == "imagefolder" and d.title == "pets" and len(d.mean) == 3
    assert d.mean == tuple(
        round(v, 4) for v in (d.images.double() / 255).mean((0, 2, 3)).tolist()
    )
    members = {
        f"export/pets/{p.relative_to(tmp_path / 'pets').as_posix()}": p.read_bytes()
        for p in (tmp_path / "pets").rglob("*")
        if p.is_file()
    }
    members["__MACOSX/export/pets/cat/._img_1.png"] = b"resource fork"
    zipped = load_imagefolder(write_zip(tmp_path / "pets.zip", members))
    assert torch.equal(zipped.images, d.images) and zipped.classes == d.classes
    small = load_imagefolder(tmp_path / "pets.zip", size=4, per_class=1)
    expected = np.array(Image.fromarray(made["dog/1"]).resize((4, 4), Image.BOX))
    assert small.images.shape == (2, 3, 4, 4)
    assert torch.equal(small.images[1], chw(expected))


def test_imagefolder_mixed_sizes_need_size(tmp_path):
    (tmp_path / "a").mkdir()
    Image.fromarray(rand_images(1, 8)[0]).save(tmp_path / "a" / "1.png")
    Image.fromarray(rand_images(1, 6)[0]).save(tmp_path / "a" / "2.png")
    with pytest.raises(ValueError, match="size="):
        load_imagefolder(tmp_path)
    assert load_imagefolder(tmp_path, size=6).images.shape == (2, 3, 6, 6)
    with pytest.raises(DatasetMissingError, match="does not exist"):
        load_imagefolder(tmp_path / "nope")


# ----------------------------------------------------------------------------------------
# Cache
# ----------------------------------------------------------------------------------------


def test_cache_hit_invalidation_and_corrupt_cache(tmp_path, monkeypatch):
    make_cifar_jpg(tmp_path)
    first = load_tensors("cifar10", "test", tmp_path)
    cached = list((tmp_path / "cache").glob("*.pt"))
    assert len(cached) == 1 and not list((tmp_path / "cache").glob("*.tmp"))

    def boom(*args):
        raise AssertionError("decoded again")

    with monkeypatch.context() as m:  # a hit decodes nothing
        m.setattr(storage, "decode_image", boom)
        again = load_tensors("cifar10", "test", tmp_path)
    assert torch.equal(again.images, first.images) and again.source == first.source

    cached[0].write_bytes(b"half a file")  # corrupt cache: warned, deleted, rebuilt
    with pytest.warns(UserWarning, match="unreadable"):
        rebuilt = load_tensors("cifar10", "test", tmp_path)
    assert torch.equal(rebuilt.images, first.images)
    assert torch.load(cached[0], weights_only=True)["images"].shape == (30, 3, 32, 32)

    os.utime(tmp_path / "cifar10-jpg-test.zip", ns=(1, 1))  # a changed source: new key
    make_cifar_jpg(tmp_path)  # new random images
    changed = load_tensors("cifar10", "test", tmp_path)
    assert not torch.equal(changed.images, first.images)
    assert len(list((tmp_path / "cache").glob("*.pt"))) == 1  # the stale one went


def test_interrupted_cache_write_leaves_nothing(tmp_path, monkeypatch):
    make_cifar_jpg(tmp_path)

    def disk_full(obj, f):
        f.write(b"half")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(cache.torch, "save", disk_full)
    with pytest.warns(UserWarning, match="Could not write the cache"):
        d = load_tensors("cifar10", "test", tmp_path)
    assert len(d.labels) == 30 and not list((tmp_path / "cache").iterdir())


def test_cache_dir_choice(tmp_path, monkeypatch):
    assert cache_dir() == tmp_path / "cache"
    monkeypatch.delenv("LENET_CACHE_DIR")
    monkeypatch.setenv("LENET_DATA_ROOT", str(tmp_path / "root"))
    assert cache_dir() == tmp_path / "root" / "cache"
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setattr(config.os, "access", lambda *a: False)  # a read-only data root
    assert cache_dir() == tmp_path / "home" / ".cache" / "lenet5-course" / "cache"


def test_unknown_names_and_bad_per_class(tmp_path):
    with pytest.raises(ValueError, match="mnist, cifar10, tiny-imagenet, imagenet32"):
        load_tensors("cifar100", "train", tmp_path)
    with pytest.raises(ValueError, match="train, test"):
        load_tensors("mnist", "val", tmp_path)
    with pytest.raises(ValueError, match="per_class"):
        load_tensors("mnist", "train", tmp_path, per_class=0)


# ----------------------------------------------------------------------------------------
# The real copies (CI's data root), when present
# ----------------------------------------------------------------------------------------

REAL_FILES = (
    "MNIST/raw/t10k-images-idx3-ubyte",
    "cifar10-jpg-test.zip",
    "tiny-imagenet-32-train-1.zip",
    "tiny-imagenet-32-train-2.zip",
)
HAS_REAL = REAL_ROOT is not None and all(
    (Path(REAL_ROOT) / f).exists() for f in REAL_FILES
)


@pytest.mark.skipif(not HAS_REAL, reason="LENET_DATA_ROOT holds no real dataset copies")
def test_real_copies():
    m = load_tensors("mnist", "test", REAL_ROOT, per_class=5, download=False)
    assert m.images.shape == (50, 1, 28, 28)
    assert torch.bincount(m.labels).tolist() == [5] * 10
    c = load_tensors("cifar10", "test", REAL_ROOT, per_class=2, download=False)
    assert c.images.shape == (20, 3, 32, 32) and c.classes == list(CIFAR10_CLASSES)
    assert torch.bincount(c.labels).tolist() == [2] * 10
    assert c.title == "CIFAR-10 (JPEG copy)"
    t = load_tensors("tiny-imagenet", "train", REAL_ROOT, per_class=2, download=False)
    assert t.images.shape == (400, 3, 32, 32) and len(t.classes) == 200
    assert t.labels.min() == 0 and t.labels.max() == 199 and t.classes[0] == "goldfish"


def test_jupyter_shows_missing_data_in_a_few_lines(tmp_path):
    """In a real kernel the error is the package's own short message, not 100 lines of
    traceback through torchvision (IPython calls ``_render_traceback_``)."""
    import nbformat
    from nbclient import NotebookClient
    from nbclient.exceptions import CellExecutionError

    cell = (
        "from lenet_utils.readers import load_tensors\n"
        f"load_tensors('cifar10', 'train', {str(tmp_path)!r}, download=False)"
    )
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(cell)])
    with pytest.raises(CellExecutionError):
        NotebookClient(nb, timeout=120, kernel_name="python3").execute()
    (error,) = nb.cells[0].outputs
    text = "\n".join(error["traceback"])
    assert error["ename"] == "DatasetMissingError" and len(text.splitlines()) <= 6
    assert "Traceback" not in text and "torchvision" not in text
    assert "cifar-10-batches-py/data_batch_1" in text and "LENET_DATA_ROOT" in text


@pytest.fixture
def imagenet32(tmp_path, monkeypatch):
    """Ten train batches of 5 images (30 classes, cycling) and a val batch of 5, at
    3 x 32 x 32, with 1-based labels as image-net.org ships them."""
    rng = np.random.default_rng(0)
    folder = tmp_path / "data" / "Imagenet32_train"
    for i in range(10):
        x = rng.integers(0, 256, (5, 3 * 32 * 32), dtype=np.uint8)
        y = [(5 * i + k) % 30 + 1 for k in range(5)]
        write_imagenet_batch(folder / f"train_data_batch_{i + 1}", x, y)
    write_imagenet_batch(tmp_path / "data" / "Imagenet32_val" / "val_data", x,
                         list(range(1, 6)))  # fmt: skip
    monkeypatch.setenv("LENET_DATA_ROOT", str(tmp_path / "data"))
    monkeypatch.setenv("LENET_CACHE_DIR", str(tmp_path / "cache"))
    return tmp_path


def test_memmap_holds_the_same_images_and_is_converted_once(imagenet32):
    read = load_tensors("imagenet32", "train")
    mapped = load_tensors("imagenet32", "train", mmap=True)
    assert torch.equal(read.images, mapped.images)
    assert torch.equal(read.labels, mapped.labels) and len(mapped) == 50
    assert "memory-mapped" in mapped.source and mapped.classes == read.classes
    (folder,) = (imagenet32 / "cache").glob("imagenet32-train-all__*")
    raw = folder / "images.u8"
    assert raw.stat().st_size == 50 * 3 * 32 * 32
    stamp = raw.stat().st_mtime_ns
    again = load_tensors("imagenet32", "train", mmap=True)
    assert raw.stat().st_mtime_ns == stamp and torch.equal(again.images, read.images)
    subset = load_tensors("imagenet32", "train", mmap=True, per_class=1)
    assert len(subset) == 30  # the first image of each of the 30 classes
    test = load_tensors("imagenet32", "test", mmap=True)
    assert len(test) == 5 and test.labels.tolist() == [0, 1, 2, 3, 4]


def test_memmap_is_rebuilt_when_the_sources_change_or_it_is_damaged(imagenet32):
    load_tensors("imagenet32", "train", mmap=True)
    (folder,) = (imagenet32 / "cache").glob("imagenet32-train-all__*")
    with open(folder / "images.u8", "r+b") as f:  # a conversion cut short
        f.truncate(100)
    assert len(load_tensors("imagenet32", "train", mmap=True)) == 50
    batch = imagenet32 / "data" / "Imagenet32_train" / "train_data_batch_2"
    x = np.zeros((4, 3 * 32 * 32), np.uint8)
    write_imagenet_batch(batch, x, [7, 7, 7, 7])
    changed = load_tensors("imagenet32", "train", mmap=True)
    assert len(changed) == 49 and (changed.labels[5:9] == 6).all()
    assert len(list((imagenet32 / "cache").glob("imagenet32-train-all__*"))) == 1


def test_memmap_is_for_imagenet_only():
    with pytest.raises(ValueError, match="mmap=True is for imagenet32 and imagenet64"):
        load_tensors("mnist", "train", mmap=True)
