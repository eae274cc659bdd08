"""Matplotlib figures used across the chapters; every figure gets a title and labels."""

from __future__ import annotations

import math
from typing import Sequence

import matplotlib.pyplot as plt
import torch

__all__ = ["show_images", "show_feature_maps"]


def _grid(n: int, ncols: int | None) -> tuple[int, int]:
    ncols = ncols or min(n, 8)
    return math.ceil(n / ncols), ncols


def show_images(
    images: torch.Tensor,
    titles: Sequence[str] | None = None,
    *,
    suptitle: str,
    ncols: int | None = None,
    cmap: str = "gray",
    size: float = 1.6,
) -> plt.Figure:
    """Show a batch of images (N, C, H, W) or (N, H, W) in a grid, one caption each."""
    images = images.detach().cpu().float()
    if images.dim() == 4 and images.shape[1] == 1:
        images = images[:, 0]
    n = images.shape[0]
    nrows, ncols = _grid(n, ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(size * ncols, size * nrows + 0.5), squeeze=False)
    for i, ax in enumerate(axes.flat):
        ax.axis("off")
        if i >= n:
            continue
        img = images[i]
        if img.dim() == 3:  # colour: C,H,W -> H,W,C rescaled to [0, 1]
            img = img.permute(1, 2, 0)
            img = (img - img.min()) / (img.max() - img.min() + 1e-8)
            ax.imshow(img.numpy())
        else:
            ax.imshow(img.numpy(), cmap=cmap)
        if titles is not None:
            ax.set_title(titles[i], fontsize=9)
    fig.suptitle(suptitle)
    fig.tight_layout()
    return fig


def show_feature_maps(
    maps: torch.Tensor,
    *,
    layer: str,
    ncols: int | None = None,
    cmap: str = "viridis",
    size: float = 1.4,
) -> plt.Figure:
    """Show the feature maps (C, H, W) of one image at one layer, labelled ``layer-k``."""
    maps = maps.detach().cpu().float()
    if maps.dim() == 4:
        maps = maps[0]
    c, h, w = maps.shape
    nrows, ncols = _grid(c, ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(size * ncols, size * nrows + 0.6), squeeze=False)
    for i, ax in enumerate(axes.flat):
        ax.axis("off")
        if i < c:
            ax.imshow(maps[i].numpy(), cmap=cmap)
            ax.set_title(f"{layer} map {i}", fontsize=8)
    fig.suptitle(f"{layer}: {c} feature maps of {h}x{w}")
    fig.tight_layout()
    return fig
