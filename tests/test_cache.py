"""The two caches: a ``.pt`` file per split and a memory-mapped ``uint8`` file, each
written once, rebuilt when its sources change or it is damaged, never trusted half-made."""

import warnings

import pytest
import torch

from lenet_utils import cache
from lenet_utils.cache import cached, cached_memmap
from lenet_utils.storage import TensorData


@pytest.fixture(autouse=True)
def folder(tmp_path, monkeypatch):
    monkeypatch.setenv("LENET_CACHE_DIR", str(tmp_path / "cache"))
    return tmp_path / "cache"


def split(n: int = 6, value: int = 7) -> TensorData:
    images = torch.full((n, 1, 4, 4), value, dtype=torch.uint8)
    labels = torch.arange(n) % 3
    return TensorData(
        images, labels, ["a", "b", "c"], "toy", "Toy", "here", (0.5,), (0.2,)
    )


class Builder:
    """Counts how often the split is decoded."""

    def __init__(self, value: int = 7) -> None:
        self.calls, self.value = 0, value

    def __call__(self) -> TensorData:
        self.calls += 1
        return split(value=self.value)


def test_a_split_is_built_once_and_read_back(folder):
    build = Builder()
    first = cached("toy-train", ["v1"], build)
    again = cached("toy-train", ["v1"], build)
    assert build.calls == 1 and torch.equal(again.images, first.images)
    assert again.classes == ["a", "b", "c"] and again.mean == (0.5,)
    assert [p.suffix for p in folder.iterdir()] == [".pt"]
    assert cached("toy-train", ["v1"], build, cache=False) and build.calls == 2


def test_new_sources_replace_the_old_file(folder):
    cached("toy-train", ["v1"], Builder(7))
    changed = cached("toy-train", ["v2"], Builder(9))
    assert changed.images.unique().tolist() == [9]
    assert len(list(folder.glob("toy-train__*.pt"))) == 1  # the stale one went


def test_a_damaged_file_is_rebuilt_with_a_warning(folder):
    cached("toy-train", ["v1"], Builder())
    (path,) = folder.glob("*.pt")
    path.write_bytes(b"half a file")
    build = Builder()
    with pytest.warns(UserWarning, match="unreadable"):
        data = cached("toy-train", ["v1"], build)
    assert build.calls == 1 and len(data) == 6
    assert torch.load(path, weights_only=True)["images"].shape == (6, 1, 4, 4)


@pytest.mark.parametrize(
    "error",
    [OSError(28, "No space left on device"), RuntimeError("unexpected pos 64 vs 32")],
)
def test_a_cache_that_cannot_be_written_only_warns(folder, monkeypatch, error):
    def disk_full(obj, f):
        f.write(b"half")
        raise error

    monkeypatch.setattr(cache.torch, "save", disk_full)
    with pytest.warns(UserWarning, match="Could not write the cache file: no space"):
        data = cached("toy-train", ["v1"], Builder())
    assert len(data) == 6 and not list(folder.iterdir())


def batches(n_batches: int = 3, value: int = 5):
    for i in range(n_batches):
        yield (
            torch.full((4, 3, 2, 2), value + i, dtype=torch.uint8),
            torch.arange(4) + i,
        )


def test_memmap_is_written_once_and_mapped(folder):
    calls = []

    def source():
        calls.append(1)
        return batches()

    images, labels = cached_memmap("toy-train-all", ["v1"], source)
    assert images.shape == (12, 3, 2, 2) and images.dtype == torch.uint8
    assert images[4:8].unique().tolist() == [6] and labels[:4].tolist() == [0, 1, 2, 3]
    again, _ = cached_memmap("toy-train-all", ["v1"], source)
    assert len(calls) == 1 and torch.equal(again, images)
    (written,) = folder.iterdir()
    assert sorted(p.name for p in written.iterdir()) == [
        "images.u8",
        "labels.npy",
        "meta.json",
    ]


def test_memmap_is_rewritten_when_damaged_or_the_sources_change(folder):
    cached_memmap("toy-train-all", ["v1"], batches)
    (written,) = folder.iterdir()
    with open(written / "images.u8", "r+b") as f:  # a conversion cut short
        f.truncate(10)
    images, _ = cached_memmap("toy-train-all", ["v1"], batches)
    assert images.shape == (12, 3, 2, 2)
    images, _ = cached_memmap("toy-train-all", ["v2"], lambda: batches(2, 100))
    assert images.shape == (8, 3, 2, 2) and len(list(folder.iterdir())) == 1


def test_an_interrupted_memmap_leaves_nothing_that_looks_finished(folder):
    def broken():
        yield from batches(1)
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        cached_memmap("toy-train-all", ["v1"], broken)
    assert not list(folder.iterdir())
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        images, _ = cached_memmap("toy-train-all", ["v1"], batches)
    assert len(images) == 12
