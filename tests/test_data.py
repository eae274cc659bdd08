"""The data layer: every on-disk format, the cache, the errors and the on-device helpers.

All datasets here are tiny fakes written to ``tmp_path`` in the real formats; nothing touches
the network. ``test_real_copies`` reads the real copies when the data root has them.
"""

from __future__ import annotations

import gzip
import io
import os
import pickle
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from lenet_utils import data
from lenet_utils.data import (
    CIFAR10_CLASSES,
    CorruptDatasetError,
    DatasetMissingError,
    TensorLoader,
    box_downscale,
    cache_dir,
    load_imagefolder,
    load_tensors,
    normalize,
    random_crop_flip,
)

RNG = np.random.default_rng(0)


@pytest.fixture(autouse=True)
def _isolated(tmp_path, monkeypatch):
    """Each test gets its own cache folder and never sees the real data root by accident."""
    monkeypatch.setenv("LENET_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("LENET_DATA_ROOT", str(tmp_path / "no-data-root"))


def png(array: np.ndarray) -> bytes:
    """Lossless encoding, so decoded pixels can be compared exactly (PIL reads by content,
    so these bytes work under a .jpg or .JPEG name too)."""
    buf = io.BytesIO()
    Image.fromarray(array).save(buf, format="PNG")
    return buf.getvalue()


def webp(array: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(array).save(buf, format="WEBP", lossless=True)
    return buf.getvalue()


def rand_images(n: int, size: int) -> np.ndarray:
    return RNG.integers(0, 256, (n, size, size, 3), dtype=np.uint8)


def write_zip(
    path: Path, members: dict[str, bytes], compression=zipfile.ZIP_STORED
) -> Path:
    with zipfile.ZipFile(path, "w", compression) as zf:
        for name, payload in members.items():
            zf.writestr(name, payload)
    return path


# ----------------------------------------------------------------------------------------
# MNIST (IDX)
# ----------------------------------------------------------------------------------------


def idx_bytes(array: np.ndarray) -> bytes:
    header = bytes([0, 0, 8, array.ndim]) + b"".join(
        d.to_bytes(4, "big") for d in array.shape
    )
    return header + array.astype(np.uint8).tobytes()


def make_mnist(root: Path, n: int = 30, gz: bool = False) -> dict[str, np.ndarray]:
    raw = root / "MNIST" / "raw"
    raw.mkdir(parents=True)
    out = {}
    for stem in ("train", "t10k"):
        images = RNG.integers(0, 256, (n, 28, 28), dtype=np.uint8)
        labels = (np.arange(n) * 7 % 10).astype(np.uint8)
        for kind, array in (("images-idx3", images), ("labels-idx1", labels)):
            payload = idx_bytes(array)
            name = raw / f"{stem}-{kind}-ubyte"
            if gz:
                Path(f"{name}.gz").write_bytes(gzip.compress(payload))
            else:
                name.write_bytes(payload)
        out[stem] = (images, labels)
    return out


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


def test_mnist_missing_offline(tmp_path, monkeypatch):
    raw = tmp_path / "MNIST" / "raw"

    def offline_download(root, train=True, download=False, **kw):
        raw.mkdir(parents=True, exist_ok=True)
        (raw / "train-images-idx3-ubyte.gz").write_bytes(
            b"\x1f\x8b partial"
        )  # half a download
        raise RuntimeError("Error downloading train-images-idx3-ubyte.gz")

    monkeypatch.setattr(data.datasets, "MNIST", offline_download)
    with pytest.raises(DatasetMissingError) as err:
        load_tensors("mnist", "train", tmp_path)
    message = str(err.value)
    assert (
        "train-images-idx3-ubyte" in message
        and str(raw) in message
        and "download failed" in message
    )
    assert not (
        raw / "train-images-idx3-ubyte.gz"
    ).exists()  # the partial file was removed

    calls = []
    monkeypatch.setattr(data.datasets, "MNIST", lambda *a, **k: calls.append(1))
    with pytest.raises(DatasetMissingError, match="download=True"):
        load_tensors("mnist", "test", tmp_path, download=False)
    assert not calls


# ----------------------------------------------------------------------------------------
# CIFAR-10: pickles and the JPEG copy
# ----------------------------------------------------------------------------------------


def make_cifar_pickles(
    root: Path, per_batch: int = 12
) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    made = {}
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        x = RNG.integers(0, 256, (per_batch, 3072), dtype=np.uint8)
        y = list(RNG.permutation(np.arange(per_batch) % 10))
        with open(folder / name, "wb") as f:
            pickle.dump({"batch_label": name, "data": x, "labels": y}, f, protocol=2)
        made[name] = (x, np.array(y))
    with open(folder / "batches.meta", "wb") as f:
        pickle.dump(
            {"label_names": list(CIFAR10_CLASSES), "num_vis": 3072}, f, protocol=2
        )
    return made


def test_cifar_pickles(tmp_path):
    made = make_cifar_pickles(tmp_path)
    d = load_tensors("cifar10", "train", tmp_path, download=False)
    x = np.concatenate([made[f"data_batch_{i}"][0] for i in range(1, 6)])
    y = np.concatenate([made[f"data_batch_{i}"][1] for i in range(1, 6)])
    assert d.images.shape == (60, 3, 32, 32) and d.images.dtype == torch.uint8
    assert torch.equal(
        d.images, torch.from_numpy(x.reshape(-1, 3, 32, 32))
    )  # R, G, B planes
    assert torch.equal(d.labels, torch.from_numpy(y))
    assert d.classes == list(CIFAR10_CLASSES) and "JPEG" not in d.source
    test = load_tensors("cifar10", "test", tmp_path)
    assert torch.equal(test.labels, torch.from_numpy(made["test_batch"][1]))


def test_cifar_per_class_reads_only_the_batches_it_needs(tmp_path):
    make_cifar_pickles(tmp_path)
    for i in range(2, 6):  # only batch 1 is needed for one image per class
        (tmp_path / "cifar-10-batches-py" / f"data_batch_{i}").write_bytes(
            b"not a pickle"
        )
    d = load_tensors("cifar10", "train", tmp_path, per_class=1)
    assert sorted(d.labels.tolist()) == list(range(10))
    with pytest.raises(CorruptDatasetError, match="data_batch_2.*pickle"):
        load_tensors("cifar10", "train", tmp_path)


def make_cifar_jpg(
    root: Path, split: str = "test", per_class: int = 3
) -> dict[str, np.ndarray]:
    members, made = {}, {}
    for c in CIFAR10_CLASSES:
        for i in range(per_class):
            made[f"{c}/{i}"] = img = rand_images(1, 32)[0]
            members[f"cifar10-jpg/{split}/{c}/{i:04d}.jpg"] = png(img)
    write_zip(root / f"cifar10-jpg-{split}.zip", members)
    return made


def test_cifar_jpeg_copy(tmp_path):
    made = make_cifar_jpg(tmp_path)
    d = load_tensors("cifar10", "test", tmp_path, download=False)
    assert d.images.shape == (30, 3, 32, 32) and d.labels.tolist() == [
        c for c in range(10) for _ in range(3)
    ]
    assert (
        d.source.startswith("JPEG copy of CIFAR-10")
        and "cifar10-jpg-test.zip" in d.source
    )
    assert torch.equal(
        d.images[4], torch.from_numpy(made["automobile/1"]).permute(2, 0, 1)
    )
    small = load_tensors("cifar10", "test", tmp_path, per_class=1)
    assert small.labels.tolist() == list(range(10))
    assert torch.equal(small.images, d.images[::3])


def test_cifar_missing_offline(tmp_path, monkeypatch):
    def offline(root, train=True, download=False, **kw):
        Path(root, "cifar-10-python.tar.gz").write_bytes(b"partial")
        raise OSError("Network is unreachable")

    monkeypatch.setattr(data.datasets, "CIFAR10", offline)
    with pytest.raises(DatasetMissingError) as err:
        load_tensors("cifar10", "train", tmp_path)
    assert "data_batch_1" in str(err.value) and "cifar10-jpg-train.zip" in str(
        err.value
    )
    assert (
        str(tmp_path) in str(err.value)
        and not (tmp_path / "cifar-10-python.tar.gz").exists()
    )


# ----------------------------------------------------------------------------------------
# Imagenet32 / Imagenet64 batches
# ----------------------------------------------------------------------------------------


def write_batch(path: Path, n: int, res: int) -> tuple[np.ndarray, list[int]]:
    x = RNG.integers(0, 256, (n, 3 * res * res), dtype=np.uint8)
    y = [1, 1000] + list(RNG.integers(1, 1001, n - 2))
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as f:
        pickle.dump({"data": x, "labels": y, "mean": x.mean(0)}, f)
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
    assert torch.equal(
        d.images,
        torch.from_numpy(np.concatenate([x for x, _ in made]).reshape(-1, 3, 32, 32)),
    )
    assert d.labels.tolist() == [v - 1 for _, y in made for v in y]
    assert (
        len(d.classes) == 1000
        and d.classes[0] == "tench"
        and d.classes[999] == "toilet tissue"
    )
    val = load_tensors("imagenet32", "test", tmp_path)
    assert torch.equal(
        val.images[:, 0], torch.from_numpy(vx[:, :1024].reshape(-1, 32, 32))
    )  # red plane
    assert val.labels[:2].tolist() == [0, 999]


def test_imagenet64_val_and_missing(tmp_path):
    vx, vy = write_batch(tmp_path / "val_data", 3, 64)
    d = load_tensors("imagenet64", "test", tmp_path)
    assert d.images.shape == (3, 3, 64, 64) and torch.equal(
        d.images.flatten(1), torch.from_numpy(vx)
    )
    with pytest.raises(DatasetMissingError, match="train_data_batch_1.*image-net.org"):
        load_tensors("imagenet64", "train", tmp_path)
    (tmp_path / "val_data").write_bytes(pickle.dumps({"data": vx})[:50])
    with pytest.raises(CorruptDatasetError, match="val_data"):
        load_tensors("imagenet64", "test", tmp_path)


# ----------------------------------------------------------------------------------------
# Tiny ImageNet: the official 64x64 zip and the course's 32x32 copy
# ----------------------------------------------------------------------------------------

WNIDS = ["n03000000", "n01000000", "n02000000"]  # official wnids.txt is not sorted
WORDS = "n01000000\tgoldfish, Carassius auratus\nn02000000\tbullfrog\nn03000000\tcat, house cat\nn09999999\tentity\n"


def make_tiny_official(
    root: Path, per_class: int = 3, n_val: int = 6
) -> dict[str, np.ndarray]:
    members = {
        "tiny-imagenet-200/wnids.txt": "\n".join(WNIDS).encode(),
        "tiny-imagenet-200/words.txt": WORDS.encode(),
    }
    made, notes = {}, []
    for w in WNIDS:
        members[f"tiny-imagenet-200/train/{w}/{w}_boxes.txt"] = b"boxes"
        for i in range(per_class):
            made[f"{w}_{i}"] = img = rand_images(1, 64)[0]
            members[f"tiny-imagenet-200/train/{w}/images/{w}_{i}.JPEG"] = png(img)
    for i in range(n_val):
        made[f"val_{i}"] = img = rand_images(1, 64)[0]
        members[f"tiny-imagenet-200/val/images/val_{i}.JPEG"] = png(img)
        notes.append(f"val_{i}.JPEG\t{WNIDS[i % 3]}\t0\t0\t63\t63")
    members["tiny-imagenet-200/val/val_annotations.txt"] = "\n".join(notes).encode()
    members["tiny-imagenet-200/test/images/test_0.JPEG"] = png(rand_images(1, 64)[0])
    write_zip(root / "tiny-imagenet-200.zip", members, zipfile.ZIP_DEFLATED)
    return made


def test_box_downscale_is_the_exact_rounded_block_mean():
    x = torch.tensor(
        [[[0, 1, 0, 0], [1, 1, 0, 1], [255, 255, 7, 8], [255, 254, 9, 9]]],
        dtype=torch.uint8,
    )
    # means: 0.75 -> 1, 0.25 -> 0 / 254.75 -> 255, 8.25 -> 8
    assert box_downscale(x).tolist() == [[[1, 0], [255, 8]]]
    assert (
        box_downscale(torch.tensor([[0, 1], [0, 1]], dtype=torch.uint8)).item() == 1
    )  # 0.5 rounds up
    img = rand_images(1, 64)[0]
    ours = (
        box_downscale(torch.from_numpy(img).permute(2, 0, 1)).permute(1, 2, 0).numpy()
    )
    assert np.array_equal(
        ours, np.asarray(Image.fromarray(img).reduce(2))
    )  # PIL agrees
    with pytest.raises(ValueError, match="2x2 blocks"):
        box_downscale(torch.zeros(3, 5, 4, dtype=torch.uint8))


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
    assert "official 64x64" in d.source
    zipfile.ZipFile(tmp_path / "tiny-imagenet-200.zip").extractall(tmp_path / "x")
    extracted = load_tensors("tiny-imagenet", "train", tmp_path / "x", download=False)
    assert torch.equal(extracted.images, d.images) and extracted.classes == d.classes
    val = load_tensors("tiny-imagenet", "test", tmp_path)
    assert len(val.labels) == 6 and sorted(val.labels.tolist()) == [0, 0, 1, 1, 2, 2]
    assert val.labels[0] == 0  # label order: val_1 and val_4 are n01000000
    first = box_downscale(torch.from_numpy(made["val_1"]).permute(2, 0, 1))
    assert torch.equal(val.images[0], first)


def make_tiny_course(root: Path, per_class: int = 3) -> dict[str, np.ndarray]:
    wnids = sorted(WNIDS)
    texts = {
        "tiny-imagenet-32/wnids.txt": "\n".join(wnids).encode(),
        "tiny-imagenet-32/words.txt": WORDS.encode(),
    }
    made = {}
    parts = {"train-1": wnids[:2], "train-2": wnids[2:], "val": wnids}
    for part, classes in parts.items():
        members = dict(texts)
        split = "val" if part == "val" else "train"
        for w in classes:
            for i in range(per_class if split == "train" else 2):
                made[f"{split}/{w}/{i}"] = img = rand_images(1, 32)[0]
                name = f"{w}_{i}" if split == "train" else f"val_{len(made)}"
                members[f"tiny-imagenet-32/{split}/{w}/{name}.webp"] = webp(img)
        write_zip(root / f"tiny-imagenet-32-{part}.zip", members)
    return made


def test_tiny_course_zips_and_extracted_dir(tmp_path):
    made = make_tiny_course(tmp_path)
    d = load_tensors("tiny-imagenet", "train", tmp_path, download=False)
    assert d.images.shape == (9, 3, 32, 32) and d.labels.tolist() == [
        0,
        0,
        0,
        1,
        1,
        1,
        2,
        2,
        2,
    ]
    assert d.classes == ["goldfish", "bullfrog", "cat"] and "course 32x32" in d.source
    assert torch.equal(
        d.images[7], torch.from_numpy(made["train/n03000000/1"]).permute(2, 0, 1)
    )
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
    real = data._decode_image
    monkeypatch.setattr(data, "_decode_image", lambda *a: calls.append(1) or real(*a))
    d = load_tensors("tiny-imagenet", "train", tmp_path, per_class=2, cache=False)
    assert d.labels.tolist() == [0, 0, 1, 1, 2, 2] and len(calls) == 6


def test_tiny_download_partial_is_removed(tmp_path, monkeypatch):
    seen = []

    def broken(url, filename):
        seen.append(url)
        Path(filename).write_bytes(b"PK\x03\x04 half")
        raise ConnectionResetError("connection reset")

    monkeypatch.setattr(data.urllib.request, "urlretrieve", broken)
    with pytest.raises(DatasetMissingError) as err:
        load_tensors("tiny-imagenet", "train", tmp_path)
    assert seen == [data.TINY_IMAGENET_URL]
    assert "tiny-imagenet-200.zip" in str(err.value) and str(tmp_path) in str(err.value)
    assert (
        not list(tmp_path.glob("*.part"))
        and not (tmp_path / "tiny-imagenet-200.zip").exists()
    )

    monkeypatch.setattr(
        data.urllib.request,
        "urlretrieve",
        lambda url, f: Path(f).write_bytes(b"<html>"),
    )
    with pytest.raises(DatasetMissingError, match="download it by hand"):
        load_tensors("tiny-imagenet", "test", tmp_path)
    assert not list(tmp_path.glob("*.part"))

    source = tmp_path / "server"
    source.mkdir()
    make_tiny_official(source)
    monkeypatch.setattr(
        data.urllib.request,
        "urlretrieve",
        lambda url, f: Path(f).write_bytes(
            (source / "tiny-imagenet-200.zip").read_bytes()
        ),
    )
    assert len(load_tensors("tiny-imagenet", "test", tmp_path).labels) == 6
    assert (tmp_path / "tiny-imagenet-200.zip").exists() and not list(
        tmp_path.glob("*.part")
    )


def test_tiny_missing_without_download(tmp_path):
    with pytest.raises(DatasetMissingError) as err:
        load_tensors("tiny-imagenet", "test", tmp_path, download=False)
    for name in (
        "tiny-imagenet-32-val.zip",
        "tiny-imagenet-200.zip",
        str(tmp_path),
        data.TINY_IMAGENET_URL,
    ):
        assert name in str(err.value)


# ----------------------------------------------------------------------------------------
# Corrupt archives and images
# ----------------------------------------------------------------------------------------


def test_corrupt_and_truncated_zips(tmp_path):
    make_tiny_course(tmp_path)
    path = tmp_path / "tiny-imagenet-32-val.zip"
    good = path.read_bytes()
    path.write_bytes(good[: len(good) - 200])  # cut off: no central directory
    with pytest.raises(
        CorruptDatasetError, match="tiny-imagenet-32-val.zip.*Delete it"
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
        members = {
            n: zf.read(n)
            for n in zf.namelist()
            if not n.endswith("val_annotations.txt")
        }
    write_zip(path, members)
    assert len(load_tensors("tiny-imagenet", "train", tmp_path).labels) == 9
    with pytest.raises(
        CorruptDatasetError,
        match="tiny-imagenet-200.zip.*val_annotations.txt is missing",
    ):
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
    Image.fromarray(rand_images(1, 8)[0][..., 0]).save(
        root / "cat" / "img_3.png"
    )  # greyscale
    (root / "readme.txt").write_text("not an image")
    return made


def test_imagefolder_dir_and_zip(tmp_path):
    made = make_folder(tmp_path / "pets")
    d = load_imagefolder(tmp_path / "pets")
    assert d.classes == ["cat", "dog"] and d.labels.tolist() == [0, 0, 0, 1, 1, 1]
    assert d.images.shape == (6, 3, 8, 8) and d.images.dtype == torch.uint8
    assert torch.equal(
        d.images[3], torch.from_numpy(made["dog/1"]).permute(2, 0, 1)
    )  # img_1 < img_2 < img_10
    assert torch.equal(d.images[5], torch.from_numpy(made["dog/10"]).permute(2, 0, 1))
    assert torch.equal(
        d.images[1, 0], d.images[1, 1]
    )  # cat/img_3, greyscale, became RGB
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
    assert small.images.shape == (2, 3, 4, 4) and torch.equal(
        small.images[1], torch.from_numpy(expected).permute(2, 0, 1)
    )


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
        m.setattr(data, "_decode_image", boom)
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
    assert (
        len(list((tmp_path / "cache").glob("*.pt"))) == 1
    )  # the stale file was removed


def test_interrupted_cache_write_leaves_nothing(tmp_path, monkeypatch):
    make_cifar_jpg(tmp_path)

    def disk_full(obj, f):
        f.write(b"half")
        raise OSError("No space left on device")

    monkeypatch.setattr(data.torch, "save", disk_full)
    with pytest.warns(UserWarning, match="Could not write the cache"):
        d = load_tensors("cifar10", "test", tmp_path)
    assert len(d.labels) == 30 and not list((tmp_path / "cache").iterdir())


def test_cache_dir_choice(tmp_path, monkeypatch):
    assert cache_dir() == tmp_path / "cache"
    monkeypatch.delenv("LENET_CACHE_DIR")
    monkeypatch.setenv("LENET_DATA_ROOT", str(tmp_path / "root"))
    assert cache_dir() == tmp_path / "root" / "cache"
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setattr(data.os, "access", lambda *a: False)  # a read-only data root
    assert cache_dir() == tmp_path / "home" / ".cache" / "lenet5-course" / "cache"


def test_unknown_names_and_bad_per_class(tmp_path):
    with pytest.raises(
        ValueError, match="mnist, cifar10, tiny-imagenet, imagenet32, imagenet64"
    ):
        load_tensors("cifar100", "train", tmp_path)
    with pytest.raises(ValueError, match="train, test"):
        load_tensors("mnist", "val", tmp_path)
    with pytest.raises(ValueError, match="per_class"):
        load_tensors("mnist", "train", tmp_path, per_class=0)


# ----------------------------------------------------------------------------------------
# normalize, random_crop_flip, TensorLoader
# ----------------------------------------------------------------------------------------


def test_normalize():
    x = torch.tensor([0, 255], dtype=torch.uint8).view(1, 1, 1, 2).expand(2, 3, 1, 2)
    out = normalize(x, (0.5, 0.5, 0.0), (0.5, 0.5, 1.0))
    assert out.dtype == torch.float32 and out.shape == (2, 3, 1, 2)
    assert out[0, 0, 0].tolist() == [-1.0, 1.0] and out[0, 2, 0].tolist() == [0.0, 1.0]
    assert normalize(x[0], (0.0,) * 3, (1.0,) * 3).shape == (3, 1, 2)
    with pytest.raises(ValueError, match="3 channel"):
        normalize(x, (0.5,), (0.5,))


def test_random_crop_flip_flips_and_shifts():
    x = (
        torch.arange(1, 64 * 3 * 8 * 8 + 1)
        .view(64, 3, 8, 8)
        .remainder(250)
        .add(1)
        .to(torch.uint8)
    )
    flipped = random_crop_flip(x, padding=0, generator=torch.Generator().manual_seed(0))
    same = [torch.equal(a, b) for a, b in zip(flipped, x)]
    mirrored = [torch.equal(a, b.flip(-1)) for a, b in zip(flipped, x)]
    assert all(s or m for s, m in zip(same, mirrored)) and any(same) and any(mirrored)

    out = random_crop_flip(
        x, padding=2, flip=False, generator=torch.Generator().manual_seed(1)
    )
    assert out.shape == x.shape and out.dtype == torch.uint8
    shifts = set()
    for a, b in zip(
        out, x
    ):  # each output is its input moved by (dy, dx) with zeros coming in
        padded = torch.nn.functional.pad(b, (2, 2, 2, 2))
        found = [
            (dy, dx)
            for dy in range(5)
            for dx in range(5)
            if torch.equal(a, padded[:, dy : dy + 8, dx : dx + 8])
        ]
        assert found
        shifts.add(found[0])
    assert len(shifts) > 5

    a = random_crop_flip(x, generator=torch.Generator().manual_seed(3))
    b = random_crop_flip(x, generator=torch.Generator().manual_seed(3))
    assert torch.equal(a, b) and not torch.equal(
        a, random_crop_flip(x, generator=torch.Generator().manual_seed(4))
    )
    reflected = random_crop_flip(
        x, padding=3, mode="reflect", generator=torch.Generator().manual_seed(5)
    )
    assert (reflected > 0).all()  # reflection brings in no zeros
    assert random_crop_flip(x.float()).dtype == torch.float32


def test_tensor_loader():
    images, labels = torch.arange(10).view(10, 1, 1, 1).float(), torch.arange(10)
    plain = TensorLoader(images, labels, 4)
    assert len(plain) == 3 and [len(y) for _, y in plain] == [4, 4, 2]
    assert torch.cat([y for _, y in plain]).tolist() == list(range(10))
    dropped = TensorLoader(images, labels, 4, drop_last=True)
    assert len(dropped) == 2 and [len(y) for _, y in dropped] == [4, 4]

    loader = TensorLoader(
        images, labels, 3, shuffle=True, seed=7, transform=lambda x: x * 10
    )
    epochs = [[y for _, y in loader] for _ in range(2)]
    for batches in epochs:
        assert sorted(torch.cat(batches).tolist()) == list(
            range(10)
        )  # every sample exactly once
    for x, y in loader:
        assert torch.equal(
            x.view(-1), y.float() * 10
        )  # images stay paired with labels, transformed
    assert torch.cat(epochs[0]).tolist() != torch.cat(epochs[1]).tolist()
    twin = TensorLoader(images, labels, 3, shuffle=True, seed=7)
    assert torch.cat([y for _, y in twin]).tolist() == torch.cat(epochs[0]).tolist()
    with pytest.raises(ValueError, match="labels"):
        TensorLoader(images, labels[:5], 2)


# ----------------------------------------------------------------------------------------
# The real copies (CI's data root), when present
# ----------------------------------------------------------------------------------------

REAL_ROOT = Path(os.environ.get("LENET_DATA_ROOT") or "/work/shared/data")
HAS_REAL = all(
    (REAL_ROOT / f).exists()
    for f in (
        "MNIST/raw/t10k-images-idx3-ubyte",
        "cifar10-jpg-test.zip",
        "tiny-imagenet-32-train-1.zip",
        "tiny-imagenet-32-train-2.zip",
    )
)


@pytest.mark.skipif(
    not HAS_REAL, reason=f"the real dataset copies are not in {REAL_ROOT}"
)
def test_real_copies():
    m = load_tensors("mnist", "test", REAL_ROOT, per_class=5, download=False)
    assert (
        m.images.shape == (50, 1, 28, 28)
        and torch.bincount(m.labels).tolist() == [5] * 10
    )
    c = load_tensors("cifar10", "test", REAL_ROOT, per_class=2, download=False)
    assert c.images.shape == (20, 3, 32, 32) and c.classes == list(CIFAR10_CLASSES)
    assert torch.bincount(c.labels).tolist() == [2] * 10 and "JPEG copy" in c.source
    t = load_tensors("tiny-imagenet", "train", REAL_ROOT, per_class=2, download=False)
    assert t.images.shape == (400, 3, 32, 32) and len(t.classes) == 200
    assert t.labels.min() == 0 and t.labels.max() == 199 and t.classes[0] == "goldfish"


def test_random_affine_identity_and_distortion():
    import torch
    from lenet_utils.data import random_affine

    x = torch.zeros(4, 1, 28, 28)
    x[:, :, 8:20, 12:16] = 1.0
    same = random_affine(x, shift=0, scale=0, squeeze=0, shear=0)
    assert torch.allclose(same, x, atol=1e-5)  # no distortion: the identity
    g = torch.Generator().manual_seed(0)
    out = random_affine(x, generator=g)
    assert out.shape == x.shape and not torch.allclose(out, x)
    assert torch.equal(
        out, random_affine(x, generator=torch.Generator().manual_seed(0))
    )  # repeatable
    # The ink moves but is neither created nor destroyed wholesale (pure shift by whole pixels keeps it).
    shifted = random_affine(x, shift=2, scale=0, squeeze=0, shear=0, generator=g)
    assert abs(shifted.sum().item() - x.sum().item()) / x.sum().item() < 0.05
    u8 = random_affine((x * 255).to(torch.uint8), generator=g)
    assert u8.dtype == torch.uint8
    bg = random_affine(torch.full((2, 1, 8, 8), -0.1), shift=3, fill=-0.1)
    assert torch.allclose(
        bg, torch.full_like(bg, -0.1), atol=1e-6
    )  # borders filled with the background
