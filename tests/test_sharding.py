"""One process's side of DDP: shards, the global batch, rank helpers, the memory map and
the checks on checkpoints. No process group is started here (see test_distributed.py)."""

import numpy as np
import pytest
import torch
from fakedata import write_imagenet_batch

from lenet_utils import distributed
from lenet_utils.models import LeNet5
from lenet_utils.pipeline import TensorLoader, make_loaders
from lenet_utils.readers import load_tensors
from lenet_utils.storage import TensorData
from lenet_utils.training import History, load_checkpoint, save_checkpoint
from lenet_utils.training import sgd_one_cycle


def numbered(n: int):
    """Images whose single pixel is their own index, so a batch names its images."""
    return torch.arange(n).view(n, 1, 1, 1), torch.arange(n)


def epoch_batches(loader) -> list[list[int]]:
    return [y.tolist() for _, y in loader]


@pytest.mark.parametrize("world", [2, 3])
def test_ranks_together_see_the_single_process_batches(world):
    images, labels = numbered(48)
    single = TensorLoader(images, labels, 4 * world, shuffle=True, seed=5)
    ranks = [
        TensorLoader(images, labels, 4, shuffle=True, seed=5, rank=r, world_size=world)
        for r in range(world)
    ]
    for _ in range(3):  # a new permutation every epoch, the same on every rank
        want = epoch_batches(single)
        got = [epoch_batches(loader) for loader in ranks]
        assert len({len(g) for g in got}) == 1 and len(got[0]) == len(want)
        for step, batch in enumerate(want):
            together = sorted(i for g in got for i in g[step])
            assert together == sorted(batch)  # the ranks' shares of the one batch
    shards = [set(sum(g, [])) for g in got]
    assert set.union(*shards) == set(range(48)) and sum(map(len, shards)) == 48


def test_set_epoch_replays_that_epochs_shuffle():
    images, labels = numbered(30)
    first = TensorLoader(images, labels, 7, shuffle=True, seed=1)
    epochs = [epoch_batches(first) for _ in range(3)]
    assert epochs[0] != epochs[1] != epochs[2]
    resumed = TensorLoader(images, labels, 7, shuffle=True, seed=1)
    resumed.set_epoch(2)  # what a run resumed after epoch 2 does
    assert epoch_batches(resumed) == epochs[2]
    resumed.set_epoch(0)  # back to the start
    assert epoch_batches(resumed) == epochs[0] and epoch_batches(resumed) == epochs[1]


def test_a_split_that_the_ranks_do_not_divide():
    images, labels = numbered(11)
    with pytest.raises(ValueError, match="11 images do not split evenly over 2") as err:
        TensorLoader(images, labels, 2, rank=0, world_size=2)
    assert "--drop-remainder" in str(err.value) and "1 image(s)" in str(err.value)
    dropped = [TensorLoader(images, labels, 2, shuffle=True, rank=r, world_size=2,
                            remainder="drop") for r in (0, 1)]  # fmt: skip
    for _ in range(2):
        shards = [sum(epoch_batches(d), []) for d in dropped]
        assert [len(s) for s in shards] == [5, 5]
        assert len(set(shards[0]) | set(shards[1])) == 10
    kept = [TensorLoader(images, labels, 4, rank=r, world_size=2, remainder="keep")
            for r in (0, 1)]  # fmt: skip
    assert [k.shard_size for k in kept] == [6, 5]  # for evaluation only
    assert sorted(sum(epoch_batches(kept[0]) + epoch_batches(kept[1]), [])) == list(
        range(11)
    )
    with pytest.raises(ValueError, match="rank < world_size"):
        TensorLoader(images, labels, 2, rank=2, world_size=2, remainder="keep")


def tensor_data(n: int, size: int = 28, channels: int = 1) -> TensorData:
    images = torch.randint(0, 256, (n, channels, size, size), dtype=torch.uint8)
    mean, std = (0.5,) * channels, (0.25,) * channels
    return TensorData(images, torch.arange(n) % 10, list("0123456789"), "toy", "toy",
                      "generated", mean, std)  # fmt: skip


def test_the_batch_size_is_global_and_must_split():
    train, test = tensor_data(40), tensor_data(9)
    a, b = make_loaders(train, test, "cpu", batch_size=8, rank=1, world_size=2)
    assert a.batch_size == 4 and len(a) == 5 and a.shard_size == 20
    assert b.shard_size == 4  # the test split's 9 images: shards of 5 and 4
    with pytest.raises(ValueError, match="batch size 9 does not split over 2") as err:
        make_loaders(train, test, "cpu", batch_size=9, rank=0, world_size=2)
    assert "e.g. 8 or 10" in str(err.value)
    alone, _ = make_loaders(train, test, "cpu", batch_size=8)  # no process group
    assert alone.batch_size == 8 and alone.world_size == 1


def test_host_images_and_downscaling():
    train, test = (
        tensor_data(6, size=64, channels=3),
        tensor_data(4, size=64, channels=3),
    )
    loader, _ = make_loaders(train, test, "cpu", batch_size=3, downscale=2,
                             on_device=False)  # fmt: skip
    assert loader.images is train.images  # not copied: a memory map stays one
    x, _ = next(iter(loader))
    assert x.shape == (3, 3, 32, 32) and x.dtype == torch.float32


def test_single_process_helpers(monkeypatch):
    for name in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT"):
        monkeypatch.delenv(name, raising=False)
    assert not distributed.launched() and not distributed.is_distributed()
    assert (distributed.rank(), distributed.world_size()) == (0, 1)
    assert distributed.is_main() and distributed.all_reduce_max(2.5) == 2.5
    t = torch.tensor([1.0, 2.0])
    assert distributed.all_reduce_sum(t) is t and t.tolist() == [1.0, 2.0]
    model = torch.nn.Linear(2, 2)
    assert distributed.wrap(model, torch.device("cpu")) is model
    assert distributed.unwrap(model) is model
    assert distributed.setup("cpu") == torch.device("cpu")  # alone: no group at all
    assert not distributed.is_distributed()
    with distributed.main_first():
        pass


@pytest.mark.parametrize(
    "env, message",
    [
        ({"RANK": "0"}, "RANK is set, so this looks like one process of a distributed"),
        ({"RANK": "0", "WORLD_SIZE": "2", "MASTER_PORT": "29500"}, "MASTER_ADDR is"),
        (
            {
                "RANK": "2",
                "WORLD_SIZE": "2",
                "MASTER_ADDR": "localhost",
                "MASTER_PORT": "29500",
            },
            "do not fit",
        ),  # fmt: skip
        (
            {
                "RANK": "one",
                "WORLD_SIZE": "2",
                "MASTER_ADDR": "localhost",
                "MASTER_PORT": "29500",
            },
            "not a whole number",
        ),  # fmt: skip
    ],
)
def test_a_partial_rendezvous_says_run_it_under_torchrun(monkeypatch, env, message):
    for name in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT"):
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(distributed.LaunchError, match=message) as err:
        distributed.setup("cpu", timeout_s=5)
    assert "run it under torchrun" in str(err.value)
    assert not distributed.is_distributed()


# ---- checkpoints: another model, another schedule ----


def checkpoint(tmp_path, model, epochs=2):
    optimizer, scheduler = sgd_one_cycle(
        model, lr=0.1, epochs=epochs, steps_per_epoch=3
    )
    path = tmp_path / "run.pt"
    save_checkpoint(path, model, optimizer, scheduler, History([{"epoch": 1}]))
    return path


def test_a_checkpoint_of_another_model_is_refused(tmp_path):
    path = checkpoint(tmp_path, LeNet5("modern", input_size=28))
    other = LeNet5("modern", in_channels=3, batchnorm=True)
    with pytest.raises(ValueError, match="saved from another model") as err:
        load_checkpoint(path, other)
    assert "input=(1, 28, 28)" in str(err.value) and "batchnorm=True" in str(err.value)
    same = LeNet5("modern", input_size=28)
    assert load_checkpoint(path, same).epochs == [{"epoch": 1}]


def test_a_checkpoint_of_another_schedule_is_refused(tmp_path):
    path = checkpoint(tmp_path, LeNet5("modern", input_size=28), epochs=2)
    model = LeNet5("modern", input_size=28)
    optimizer, scheduler = sgd_one_cycle(model, lr=0.1, epochs=3, steps_per_epoch=3)
    with pytest.raises(ValueError, match="schedule of 6 steps, but this run's has 9"):
        load_checkpoint(path, model, optimizer, scheduler)


# ---- Imagenet32/64 through a memory map ----


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
