"""The batch pipeline: normalisation, augmentation on the device, loaders, and each
process's shard of them under DDP (no process group is started here)."""

import numpy as np
import pytest
import torch
from PIL import Image

from lenet_utils.pipeline import (
    TensorLoader,
    box_downscale,
    hold_out,
    make_loaders,
    normalize,
    random_affine,
    random_crop_flip,
)
from lenet_utils.storage import TensorData


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


def test_random_affine_identity_and_distortion():
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


def test_make_loaders_normalise_with_the_data_stats_and_augment_only_training():
    images = torch.randint(0, 256, (40, 3, 8, 8), dtype=torch.uint8)
    stats = ((0.5, 0.25, 0.5), (0.25, 0.5, 0.25))
    data = TensorData(
        images, torch.arange(40) % 4, list("abcd"), "toy", "toy", "-", *stats
    )
    train, test = make_loaders(
        data, data, "cpu", batch_size=16, padding=2, flip=True, eval_batch_size=40
    )
    x, y = next(iter(test))
    mean, std = (torch.tensor(s).view(3, 1, 1) for s in stats)
    assert torch.allclose(x, (images.float() / 255 - mean) / std)
    assert torch.equal(y, data.labels)
    assert len(train) == 3 and sum(len(b) for b, _ in train) == 40
    batches = torch.cat([b for b, _ in train])
    assert not torch.allclose(batches.sort(0).values, x.sort(0).values)  # augmented


def rand_images(n: int, size: int) -> np.ndarray:
    return np.random.default_rng(0).integers(0, 256, (n, size, size, 3), dtype=np.uint8)


def test_box_downscale_is_the_exact_rounded_block_mean():
    rows = [[0, 1, 0, 0], [1, 1, 0, 1], [255, 255, 7, 8], [255, 254, 9, 9]]
    x = torch.tensor([rows], dtype=torch.uint8)
    # means: 0.75 -> 1, 0.25 -> 0 / 254.75 -> 255, 8.25 -> 8
    assert box_downscale(x).tolist() == [[[1, 0], [255, 8]]]
    half = torch.tensor([[0, 1], [0, 1]], dtype=torch.uint8)
    assert box_downscale(half).item() == 1  # 0.5 rounds up
    img = rand_images(1, 64)[0]
    ours = box_downscale(torch.from_numpy(img).permute(2, 0, 1)).permute(1, 2, 0)
    assert np.array_equal(ours.numpy(), np.asarray(Image.fromarray(img).reduce(2)))
    # bit-identical to the integer formula: (sum of the block + half its area) // area
    batch = torch.from_numpy(rand_images(16, 64)).permute(0, 3, 1, 2)
    blocks = batch.reshape(16, 3, 32, 2, 32, 2).to(torch.int32).sum((3, 5))
    assert torch.equal(box_downscale(batch), ((blocks + 2) // 4).to(torch.uint8))
    with pytest.raises(ValueError, match="2x2 blocks"):
        box_downscale(torch.zeros(3, 5, 4, dtype=torch.uint8))


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


@pytest.mark.parametrize(
    "kwargs, error, message",
    [
        ({"batch_size": 2.5}, TypeError, "batch_size must be a whole number, got 2.5"),
        ({"batch_size": "8"}, TypeError, "batch_size must be a whole number"),
        ({"batch_size": 0}, ValueError, "batch_size must be at least 1"),
        ({"batch_size": 2, "rank": 1.0}, TypeError, "rank must be a whole number"),
        ({"batch_size": 2, "remainder": "skip"}, ValueError, "remainder must be one"),
    ],
)
def test_bad_loader_settings_are_one_clear_line(kwargs, error, message):
    images, labels = numbered(6)
    with pytest.raises(error, match=message):
        TensorLoader(images, labels, **kwargs)


def test_the_validation_split_is_stratified_disjoint_and_the_same_every_time():
    data = tensor_data(200)  # 20 images of each of 10 classes
    train, val = hold_out(data, per_class=5, seed=3)
    assert torch.bincount(val.labels).tolist() == [5] * 10  # stratified by class
    assert torch.bincount(train.labels).tolist() == [15] * 10
    # every image lands in exactly one part: the two never overlap
    rows = {tuple(x.flatten().tolist()) for x in data.images}
    assert len(rows) == 200  # (random images: all distinct)
    seen_train = {tuple(x.flatten().tolist()) for x in train.images}
    seen_val = {tuple(x.flatten().tolist()) for x in val.images}
    assert not seen_train & seen_val and seen_train | seen_val == rows
    again_train, again_val = hold_out(data, per_class=5, seed=3)
    assert torch.equal(again_val.images, val.images)  # the same split every time
    assert not torch.equal(hold_out(data, per_class=5, seed=4)[1].images, val.images)
    assert (train.mean, val.std, val.title) == (data.mean, data.std, data.title)
    with pytest.raises(ValueError, match="class '0' has 20 images; holding out 20"):
        hold_out(data, per_class=20)
