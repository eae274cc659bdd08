"""The batch pipeline: uint8 tensors on a device become normalised, augmented batches.

In the style of airbench's loader: the whole dataset sits on the device as ``uint8``; a
:class:`TensorLoader` slices shuffled mini-batches out of it with no worker processes and no
copies, and augments each batch at once (:func:`random_crop_flip`, :func:`random_affine`)
before :func:`normalize`. :func:`make_loaders` builds the training chapters' pair.
"""

from __future__ import annotations

from typing import Callable, Iterator, Sequence

import torch

from .storage import TensorData

__all__ = [
    "TensorLoader",
    "make_loaders",
    "normalize",
    "random_affine",
    "random_crop_flip",
]


def normalize(
    images_uint8: torch.Tensor, mean: Sequence[float], std: Sequence[float]
) -> torch.Tensor:
    """``(x / 255 - mean) / std`` per channel, as float32 on the images' device."""
    channels = images_uint8.shape[-3]
    if len(mean) != channels or len(std) != channels:
        raise ValueError(
            f"normalize: {channels} channel(s) but {len(mean)} means and {len(std)} stds"
        )
    kw = dict(dtype=torch.float32, device=images_uint8.device)
    m = torch.tensor(mean, **kw).view(-1, 1, 1)
    s = torch.tensor(std, **kw).view(-1, 1, 1)
    return (images_uint8.to(torch.float32) / 255 - m) / s


def _batch(x: torch.Tensor, what: str) -> None:
    if x.dim() != 4:
        raise ValueError(f"{what} expects a batch (N, C, H, W), got {tuple(x.shape)}")


def random_crop_flip(
    x: torch.Tensor,
    padding: int = 4,
    flip: bool = True,
    generator: torch.Generator | None = None,
    *,
    mode: str = "zeros",
) -> torch.Tensor:
    """Per image, shift by up to ``padding`` px each way (pad with zeros, or
    ``mode="reflect"``, then crop back) and, if ``flip``, mirror left-right with probability
    1/2. One batched gather on any device; ``generator`` makes it repeatable."""
    _batch(x, "random_crop_flip")
    if mode not in ("zeros", "reflect"):
        raise ValueError(f"mode must be 'zeros' or 'reflect', got {mode!r}")
    n, c, h, w = x.shape
    if mode == "reflect" and padding >= min(h, w):
        raise ValueError(f"reflect padding {padding} needs images over {padding} px")
    dev = generator.device if generator is not None else x.device
    shift = torch.randint(
        -padding, padding + 1, (2, n, 1), generator=generator, device=dev
    )
    flips = torch.randint(0, 2, (n, 1), generator=generator, device=dev).bool() & flip
    shift, flips = shift.to(x.device), flips.to(x.device)
    rows = (
        torch.arange(h, device=x.device) + shift[0]
    )  # (N, H): each output row's source
    cols = torch.arange(w, device=x.device)
    cols = torch.where(flips, cols.flip(0), cols) + shift[1]  # (N, W)
    if mode == "reflect":
        rows, cols = rows.abs(), cols.abs()
        rows = torch.where(rows >= h, 2 * (h - 1) - rows, rows)
        cols = torch.where(cols >= w, 2 * (w - 1) - cols, cols)
    inside_rows = ((rows >= 0) & (rows < h))[:, None, :, None]
    inside = inside_rows & ((cols >= 0) & (cols < w))[:, None, None, :]
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
    """The paper's distortions, per image: translation by up to ``shift`` px each way,
    scaling by up to ``1 +- scale``, squeezing (horizontal compression with vertical
    elongation, or the reverse) by up to ``1 +- squeeze``, and horizontal shearing by up to
    ``shear``. One batched ``affine_grid``/``grid_sample``; pixels from outside are ``fill``."""
    _batch(x, "random_affine")
    n, _, h, w = x.shape
    dev = generator.device if generator is not None else x.device
    u = (
        torch.rand(5, n, generator=generator, device=dev).to(x.device) * 2 - 1
    )  # [-1, 1]
    s, q = 1 + scale * u[0], 1 + squeeze * u[1]
    theta = torch.zeros(n, 2, 3, device=x.device, dtype=torch.float32)
    # theta maps output coordinates to input coordinates, hence the inverse scales
    theta[:, 0, 0], theta[:, 0, 1], theta[:, 1, 1] = 1 / (s * q), shear * u[2], q / s
    theta[:, 0, 2], theta[:, 1, 2] = shift * u[3] * 2 / w, shift * u[4] * 2 / h
    grid = torch.nn.functional.affine_grid(theta, list(x.shape), align_corners=False)
    out = torch.nn.functional.grid_sample(x.float() - fill, grid, align_corners=False)
    out = out + fill
    if x.is_floating_point():
        return out.to(x.dtype)
    return out.round().clamp(0, 255).to(x.dtype)


class TensorLoader:
    """Mini-batches ``(x, y)`` sliced from tensors already on a device (no workers, no
    copies): shuffled with ``torch.randperm`` on that device each epoch, and passed through
    ``transform`` one whole batch at a time."""

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
            raise ValueError(f"{len(images)} images but {len(labels)} labels")
        if images.device != labels.device:
            raise ValueError(f"images on {images.device} but labels on {labels.device}")
        if batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, got {batch_size}")
        self.images, self.labels, self.batch_size = images, labels, batch_size
        self.shuffle, self.drop_last, self.transform = shuffle, drop_last, transform
        self.generator = torch.Generator(device=images.device)
        self.generator.manual_seed(seed)

    def __len__(self) -> int:
        n = len(self.labels)
        return n // self.batch_size if self.drop_last else -(-n // self.batch_size)

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        n, bs, device = len(self.labels), self.batch_size, self.images.device
        order = None
        if self.shuffle:
            order = torch.randperm(n, generator=self.generator, device=device)
        for i in range(len(self)):
            part = slice(i * bs, (i + 1) * bs)
            idx = part if order is None else order[part]
            x, y = self.images[idx], self.labels[idx]
            yield (self.transform(x) if self.transform is not None else x), y


def make_loaders(
    train: TensorData,
    test: TensorData,
    device: torch.device | str,
    *,
    batch_size: int = 128,
    padding: int = 0,
    flip: bool = False,
    mode: str = "zeros",
    eval_batch_size: int = 1000,
    seed: int = 0,
) -> tuple[TensorLoader, TensorLoader]:
    """The training chapters' pair of loaders: both splits moved to ``device`` once, then
    every batch normalised with the training split's statistics; training batches are
    first shifted by up to ``padding`` px (``mode`` "zeros" or "reflect") and, if ``flip``,
    mirrored at random."""
    mean, std = train.mean, train.std

    def train_tf(x: torch.Tensor) -> torch.Tensor:
        if padding or flip:  # on the uint8 images, so zero padding is black
            x = random_crop_flip(x, padding, flip, mode=mode)
        return normalize(x, mean, std)

    def test_tf(x: torch.Tensor) -> torch.Tensor:
        return normalize(x, mean, std)

    train_images, train_labels = train.images.to(device), train.labels.to(device)
    test_images, test_labels = test.images.to(device), test.labels.to(device)
    return (
        TensorLoader(train_images, train_labels, batch_size, shuffle=True,
                     transform=train_tf, seed=seed),
        TensorLoader(test_images, test_labels, eval_batch_size, transform=test_tf),
    )  # fmt: skip
