"""The batch pipeline: uint8 tensors on a device become normalised, augmented batches.

In the style of airbench's loader: the whole dataset sits on the device as ``uint8``,
and a :class:`TensorLoader` slices shuffled, augmented batches out of it (no workers).
"""

from __future__ import annotations

import dataclasses
from typing import Callable, Iterator, Sequence

import torch
import torch.nn.functional as F

from . import distributed
from .storage import TensorData

__all__ = [
    "TensorLoader", "box_downscale", "hold_out", "make_loaders", "normalize",
    "random_affine", "random_crop_flip",
]  # fmt: skip


def hold_out(
    data: TensorData, per_class: int, seed: int = 0
) -> tuple[TensorData, TensorData]:
    """Split a training set into (training, validation): ``per_class`` images of each
    class drawn at random for validation, stratified and seeded on the CPU, so the split
    is the same on every machine and in every process. Both keep ``data``'s statistics."""
    g = torch.Generator().manual_seed(seed)
    chosen = []
    for c in range(len(data.classes)):
        members = (data.labels == c).nonzero().flatten()
        if len(members) <= per_class:
            raise ValueError(
                f"hold_out: class {data.classes[c]!r} has {len(members)} images; "
                f"holding out {per_class} would leave none to train on"
            )
        chosen.append(members[torch.randperm(len(members), generator=g)[:per_class]])
    val = torch.cat(chosen).sort().values
    train = torch.ones(len(data), dtype=torch.bool)
    train[val] = False

    def part(index: torch.Tensor) -> TensorData:
        return dataclasses.replace(
            data, images=data.images[index], labels=data.labels[index]
        )

    return part(train.nonzero().flatten()), part(val)


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
    m, s = (torch.tensor(v, **kw).view(-1, 1, 1) for v in (mean, std))
    return (images_uint8.to(torch.float32) / 255 - m) / s


def box_downscale(images: torch.Tensor, factor: int = 2) -> torch.Tensor:
    """Shrink uint8 images (..., H, W) by ``factor`` the Imagenet32 way: each output pixel
    is the exact mean of a factor x factor block, rounded half up (as PIL's ``reduce``)."""
    *lead, h, w = images.shape
    if h % factor or w % factor:
        raise ValueError(f"{h}x{w} images do not split into {factor}x{factor} blocks")
    flat = images.reshape(-1, 1, h, w).float()
    mean = F.avg_pool2d(flat, factor)  # exact in float32: a few bytes summed, / 2^k
    out = torch.floor(mean + 0.5).to(torch.uint8)
    return out.reshape(*lead, h // factor, w // factor)


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
    draw = dict(generator=generator, device=dev)
    shift = torch.randint(-padding, padding + 1, (2, n, 1), **draw).to(x.device)
    flips = (torch.randint(0, 2, (n, 1), **draw).bool() & flip).to(x.device)
    # (N, H) and (N, W): the source row and column of each output row and column
    rows = torch.arange(h, device=x.device) + shift[0]
    cols = torch.arange(w, device=x.device)
    cols = torch.where(flips, cols.flip(0), cols) + shift[1]
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
    u = torch.rand(5, n, generator=generator, device=dev).to(x.device) * 2 - 1
    s, q = 1 + scale * u[0], 1 + squeeze * u[1]
    theta = torch.zeros(n, 2, 3, device=x.device, dtype=torch.float32)
    # theta maps output coordinates to input coordinates, hence the inverse scales
    theta[:, 0, 0], theta[:, 0, 1], theta[:, 1, 1] = 1 / (s * q), shear * u[2], q / s
    theta[:, 0, 2], theta[:, 1, 2] = shift * u[3] * 2 / w, shift * u[4] * 2 / h
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    out = F.grid_sample(x.float() - fill, grid, align_corners=False) + fill
    return (out if x.is_floating_point() else out.round().clamp(0, 255)).to(x.dtype)


REMAINDERS = ("error", "drop", "keep")


def _check_shard(
    n: int, n_labels: int, batch_size: int, rank: int, world_size: int, remainder: str
) -> None:
    """Refuse, with the fix, what would make a :class:`TensorLoader` fail later."""
    if n != n_labels:
        raise ValueError(f"{n} images but {n_labels} labels")
    for name, value in (("batch_size", batch_size), ("rank", rank)):
        if isinstance(value, bool) or not isinstance(value, int):
            raise TypeError(f"{name} must be a whole number, got {value!r}")
    if batch_size < 1:
        raise ValueError(f"batch_size must be at least 1, got {batch_size}")
    if remainder not in REMAINDERS:
        raise ValueError(f"remainder must be one of {REMAINDERS}, got {remainder!r}")
    if world_size < 1 or not 0 <= rank < world_size:
        raise ValueError(f"need 0 <= rank < world_size, got {rank} and {world_size}")
    if remainder == "error" and n % world_size:
        raise ValueError(
            f"{n:,} images do not split evenly over {world_size} processes, and "
            "in training every process must take as many batches as the others "
            "(or one would wait for ever for the rest): leave out the remainder "
            f"(remainder='drop'; --drop-remainder on the command line leaves out "
            f"{n % world_size} image(s) per epoch, different ones each epoch), or "
            f"use a number of processes that divides {n:,}"
        )


class TensorLoader:
    """Mini-batches ``(x, y)`` sliced from tensors already on a device (no workers),
    shuffled there each epoch and passed through ``transform`` a whole batch at a time;
    with ``device``, each batch is moved there first (e.g. from a memory map).

    With ``world_size > 1`` every ``rank`` draws the same permutation (same ``seed`` and
    epoch) and takes every ``world_size``-th index of it from position ``rank``, so the
    ranks' batches at step i together are the single-process batch i. In training the
    shards must be equal, or a rank with one batch more would wait for ever in DDP's
    all-reduce: ``remainder="error"`` refuses a split that ``world_size`` does not
    divide, ``"drop"`` leaves out the last ``n % world_size`` images of each epoch's
    permutation, ``"keep"`` allows shards one image apart (for evaluation)."""

    def __init__(
        self,
        images: torch.Tensor,
        labels: torch.Tensor,
        batch_size: int,
        *,
        shuffle: bool = False,
        transform: Callable[[torch.Tensor], torch.Tensor] | None = None,
        seed: int = 0,
        rank: int = 0,
        world_size: int = 1,
        remainder: str = "error",
        device: torch.device | str | None = None,
    ) -> None:
        _check_shard(len(images), len(labels), batch_size, rank, world_size, remainder)
        if images.device != labels.device:
            raise ValueError(f"images on {images.device} but labels on {labels.device}")
        self.images, self.labels, self.batch_size = images, labels, batch_size
        self.shuffle, self.transform = shuffle, transform
        self.rank, self.world_size, self.seed = rank, world_size, seed
        n = len(labels)
        self.used = n - n % world_size if remainder == "drop" else n
        self.device = None if device is None else torch.device(device)
        self.generator = torch.Generator(device=images.device).manual_seed(seed)
        self._drawn = 0  # permutations drawn so far: one per epoch

    @property
    def shard_size(self) -> int:
        """How many images this rank takes per epoch (all of them in one process)."""
        return len(range(self.rank, self.used, self.world_size))

    def __len__(self) -> int:
        return -(-self.shard_size // self.batch_size)

    def set_epoch(self, epoch: int) -> None:
        """Make the next pass use epoch ``epoch``'s permutation (counting from 0), the one
        an uninterrupted run draws then: a resumed run sees the images in the same order."""
        if not self.shuffle or epoch == self._drawn:
            return
        if epoch < self._drawn:
            self.generator.manual_seed(self.seed)
            self._drawn = 0
        for _ in range(epoch - self._drawn):
            self._permutation()

    def _permutation(self) -> torch.Tensor:
        self._drawn += 1
        n, device = len(self.labels), self.images.device
        return torch.randperm(n, generator=self.generator, device=device)

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        bs = self.batch_size
        order = self._permutation() if self.shuffle else None
        if self.world_size > 1:
            if order is None:
                order = torch.arange(self.used, device=self.images.device)
            order = order[: self.used][self.rank :: self.world_size]
        data = (self.images, self.labels)
        for i in range(len(self)):
            part = slice(i * bs, (i + 1) * bs)
            if order is None:
                x, y = (t[part] for t in data)
            else:  # index_select copies whole rows: ~80x faster than x[idx] on a CPU
                x, y = (t.index_select(0, order[part]) for t in data)
            if self.device is not None:
                x, y = (t.to(self.device, non_blocking=True) for t in (x, y))
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
    downscale: int = 1,
    on_device: bool = True,
    rank: int | None = None,
    world_size: int | None = None,
    drop_remainder: bool = False,
) -> tuple[TensorLoader, TensorLoader]:
    """The training chapters' pair of loaders: both splits moved to ``device`` once,
    every batch normalised with the training split's statistics; training batches are
    first shifted by up to ``padding`` px (``mode`` "zeros" or "reflect") and, if
    ``flip``, mirrored at random. ``downscale=2`` box-averages the images to half their
    size; ``on_device=False`` leaves them where they are (a memory map on the host).
    In a process group (``rank`` and ``world_size`` default to it) each process takes
    its shard of both splits; ``batch_size`` is the global batch, split evenly over the
    processes, so the recipe (and its learning rate) holds whatever their number."""
    rank = distributed.rank() if rank is None else rank
    world = distributed.world_size() if world_size is None else world_size
    if batch_size % world:
        below = batch_size - batch_size % world
        raise ValueError(
            f"batch size {batch_size} does not split over {world} processes: it is the "
            f"global batch, {batch_size} / {world} images per process and step; use a "
            f"multiple of {world}, e.g. {below or world} or {below + world}"
        )
    mean, std = train.mean, train.std

    def prepare(x: torch.Tensor, augment: bool = False) -> torch.Tensor:
        x = box_downscale(x, downscale) if downscale > 1 else x
        if augment and (padding or flip):  # on the uint8 images: zero padding is black
            x = random_crop_flip(x, padding, flip, mode=mode)
        return normalize(x, mean, std)

    splits = [(train.images, train.labels), (test.images, test.labels)]
    if on_device:
        splits = [(x.to(device), y.to(device)) for x, y in splits]
    shard = dict(rank=rank, world_size=world, device=None if on_device else device)
    return (
        TensorLoader(*splits[0], batch_size // world, shuffle=True, seed=seed,
                     transform=lambda x: prepare(x, augment=True),
                     remainder="drop" if drop_remainder else "error", **shard),
        TensorLoader(*splits[1], eval_batch_size, transform=prepare, remainder="keep",
                     **shard),
    )  # fmt: skip
