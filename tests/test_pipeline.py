"""The batch pipeline: normalisation, augmentation on the device, loaders."""

import pytest
import torch

from lenet_utils.pipeline import (
    TensorLoader,
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
