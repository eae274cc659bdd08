"""Matplotlib figures used across the chapters; every figure gets a title and labels."""

from __future__ import annotations

import itertools
import math
import numbers
from typing import Sequence

import matplotlib.pyplot as plt
import torch

__all__ = [
    "confusion_matrix", "plot_confusion", "plot_history", "readable_table",
    "show_feature_maps", "show_filters", "show_images", "show_misclassified",
]  # fmt: skip


def _panels(n: int, ncols: int | None, size: float, row: float, extra: float, **kw):
    """A figure with a grid of ``n`` panels (8 a row unless ``ncols``), each ``size`` wide
    and ``row`` tall, plus ``extra`` inches for the title."""
    ncols = ncols or min(n, 8)
    nrows = math.ceil(n / ncols)
    figsize = (size * ncols, row * nrows + extra)
    return plt.subplots(nrows, ncols, figsize=figsize, squeeze=False, **kw)


def show_images(
    images: torch.Tensor,
    titles: Sequence[str] | None = None,
    *,
    suptitle: str,
    ncols: int | None = None,
    cmap: str = "gray",
    size: float = 1.6,
    vmin: float | None = None,
    vmax: float | None = None,
    frame: bool = False,
) -> plt.Figure:
    """Show a batch of images (N, C, H, W) or (N, H, W) in a grid, one caption each;
    grey images share the colour scale ``vmin``..``vmax`` if given, ``frame`` boxes
    each image (useful when the image's border is the page's colour)."""
    images = images.detach().cpu().float()
    if images.dim() == 4 and images.shape[1] == 1:
        images = images[:, 0]
    n = images.shape[0]
    # 0.35 inches a row for its captions
    fig, axes = _panels(n, ncols, size, size + 0.35, 0.5, layout="constrained")
    for i, ax in enumerate(axes.flat):
        ax.set(xticks=[], yticks=[])
        if not (frame and i < n):
            ax.axis("off")
        if i >= n:
            continue
        img = images[i]
        if img.dim() == 3:  # colour: C,H,W -> H,W,C rescaled to [0, 1]
            img = img.permute(1, 2, 0)
            img = (img - img.min()) / (img.max() - img.min() + 1e-8)
            ax.imshow(img.numpy())
        else:
            ax.imshow(img.numpy(), cmap=cmap, vmin=vmin, vmax=vmax)
        if titles is not None:
            ax.set_title(titles[i], fontsize=9)
    fig.suptitle(suptitle)
    return fig


def show_feature_maps(
    maps: torch.Tensor,
    *,
    layer: str,
    ncols: int | None = None,
    cmap: str | None = None,
    size: float = 1.4,
    symmetric: bool = False,
    titles: Sequence[str] | None = None,
    title: str | None = None,
) -> plt.Figure:
    """Show the feature maps (C, H, W) of one image at one layer, captioned ``layer map k``
    (or ``titles``), each on its own colour scale. ``symmetric=True`` is for signed
    maps: red positive, blue negative, limits symmetric about zero (zero is white)."""
    maps = maps.detach().cpu().float()
    if maps.dim() == 4:
        maps = maps[0]
    c, h, w = maps.shape
    cmap = cmap or ("RdBu_r" if symmetric else "viridis")
    fig, axes = _panels(c, ncols, size, size + 0.35, 0.5, layout="constrained")
    for i, ax in enumerate(axes.flat):
        ax.axis("off")
        if i < c:
            lim = maps[i].abs().max().item() or 1.0
            limits = {"vmin": -lim, "vmax": lim} if symmetric else {}
            ax.imshow(maps[i].numpy(), cmap=cmap, **limits)
            ax.set_title(titles[i] if titles else f"{layer} map {i}", fontsize=9)
    scale = (
        "red positive, blue negative, white zero" if symmetric else "each its own scale"
    )
    fig.suptitle(title or f"{layer}: {c} feature maps of {h}x{w} ({scale})")
    return fig


def plot_history(
    histories: dict[str, object],
    *,
    title: str,
    topk: str = "top1",
    loss_label: str | dict[str, str] = "cross-entropy",
    acc_ylim: tuple[float, float] | None = None,
) -> plt.Figure:
    """Learning curves per epoch, one colour per run (``histories``: name -> History),
    on the split each run evaluated (validation or test). ``loss_label`` names the
    criterion; a dict gives each run its own, and runs with different criteria get
    separate loss panels (their scales need not compare)."""
    labels = loss_label if isinstance(loss_label, dict) else {}
    criteria = list(dict.fromkeys(labels.get(n, loss_label) for n in histories))
    if len(criteria) == 1:  # loss and accuracy side by side
        fig, axes = plt.subplots(1, 2, figsize=(11, 3.8))
    else:  # a loss panel per criterion on top, accuracy below: legible at book width
        fig = plt.figure(figsize=(11, 7.4))
        grid = fig.add_gridspec(2, len(criteria))
        axes = [fig.add_subplot(grid[0, i]) for i in range(len(criteria))]
        axes.append(fig.add_subplot(grid[1, :]))
    loss_axes, ax_acc = dict(zip(criteria, axes[:-1], strict=True)), axes[-1]
    for i, (name, history) in enumerate(histories.items()):
        df = history.frame()
        split, word = ("val", "validation") if "val_loss" in df else ("test", "test")
        ax_loss = loss_axes[labels.get(name, loss_label)]
        kw = {"color": f"C{i}"}  # one colour per run, in every panel
        ax_loss.plot(df.index, df["train_loss"], label=f"{name}: train", **kw)
        ax_loss.plot(df.index, df[f"{split}_loss"], "--", label=f"{name}: {word}", **kw)
        ax_acc.plot(df.index, df["train_top1"], alpha=0.5, label=f"{name}: train", **kw)
        evaluated = f"{name}: {word} {topk.replace('top', 'top-')}"
        ax_acc.plot(df.index, df[f"{split}_{topk}"], "--", label=evaluated, **kw)
    for criterion, ax in loss_axes.items():
        ax.set(title="Loss", xlabel="epoch", ylabel=criterion)
    ax_acc.set(title="Accuracy", xlabel="epoch", ylabel="accuracy (%)")
    if acc_ylim is not None:
        ax_acc.set_ylim(*acc_ylim)
    for ax in axes:
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.suptitle(title)
    fig.tight_layout()
    return fig


def readable_table(frame, *, decimals: int | dict[str, int] = 2, total: bool = False):
    """A DataFrame as people read tables: whole numbers with thousands separators (also in
    a float column, as ``60,000`` not ``60000.0``), other numbers with ``decimals`` places
    (per column if a dict), and a dash where there is no value, never ``NaN`` or ``None``.
    ``total`` appends a row summing the whole-number columns."""
    import pandas as pd

    def missing(v) -> bool:
        return v is None or (isinstance(v, float) and math.isnan(v))

    def whole(column) -> bool:
        values = [v for v in column if not missing(v)]
        return bool(values) and all(
            isinstance(v, numbers.Number)
            and not isinstance(v, bool)
            and float(v).is_integer()
            for v in values
        )

    out = frame.astype(object)
    if total:
        sums = {
            c: sum(v for v in out[c] if not missing(v)) for c in out if whole(out[c])
        }
        out.loc["total"] = pd.Series(sums, dtype=object)
    for name in out.columns:
        places = decimals.get(name, 2) if isinstance(decimals, dict) else decimals
        as_int = whole(out[name])
        out[name] = [
            "–" if missing(v)
            else f"{int(v):,}" if as_int
            else f"{v:,.{places}f}" if isinstance(v, numbers.Real) and not isinstance(v, bool)
            else str(v)
            for v in out[name]
        ]  # fmt: skip
    return out


def confusion_matrix(
    preds: torch.Tensor, labels: torch.Tensor, num_classes: int
) -> torch.Tensor:
    """Counts: rows are true classes, columns predicted classes."""
    n = num_classes
    counts = torch.bincount(labels.long() * n + preds.long(), minlength=n * n)
    return counts.reshape(n, n)


def plot_confusion(
    cm: torch.Tensor, classes: Sequence[str], *, title: str, annotate: bool = True
) -> plt.Figure:
    """Confusion matrix as an image, row-normalised colours, raw counts written in each cell."""
    n = len(classes)
    rates = cm.float() / cm.sum(1, keepdim=True).clamp(min=1)
    fig, ax = plt.subplots(figsize=(0.55 * n + 2.5, 0.55 * n + 1.5))
    im = ax.imshow(rates.numpy(), cmap="Blues", vmin=0, vmax=1)
    for i, j in cm.nonzero().tolist() if annotate else []:  # the non-empty cells
        color = "white" if rates[i, j] > 0.5 else "black"
        ax.text(j, i, int(cm[i, j]), ha="center", va="center", fontsize=7, color=color)
    ax.set_xticks(range(n), classes, rotation=45, ha="right")
    ax.set_yticks(range(n), classes)
    ax.set(xlabel="predicted class", ylabel="true class", title=title)
    fig.colorbar(im, ax=ax, fraction=0.046, label="share of the true class")
    fig.tight_layout()
    return fig


def spread_across_classes(
    index: torch.Tensor, labels: torch.Tensor, n: int
) -> list[int]:
    """Up to ``n`` of ``index``, round-robin over their classes (a test set sorted by
    class would otherwise give ``n`` images of its first class)."""
    by_class: dict[int, list[int]] = {}
    for i in index.tolist():
        by_class.setdefault(int(labels[i]), []).append(i)
    rounds = itertools.zip_longest(*(by_class[c] for c in sorted(by_class)))
    return [i for r in rounds for i in r if i is not None][:n]


def show_misclassified(
    images: torch.Tensor,
    labels: torch.Tensor,
    preds: torch.Tensor,
    classes: Sequence[str],
    *,
    title: str,
    n: int = 24,
    ncols: int = 8,
) -> plt.Figure:
    """A gallery of up to ``n`` errors spread across the true classes, captioned
    "true → predicted"."""
    wrong = (preds != labels).nonzero().flatten()
    picks = spread_across_classes(wrong, labels, n)
    if not picks:
        fig, ax = plt.subplots(figsize=(6, 1.2))
        ax.axis("off")
        ax.text(0.5, 0.5, "no misclassified images", ha="center", va="center")
        fig.suptitle(title)
        return fig
    captions = [f"{classes[labels[i]]} → {classes[preds[i]]}" for i in picks]
    suptitle = f"{title} ({len(picks)} of {len(wrong):,} errors, true → predicted)"
    return show_images(images[picks], captions, suptitle=suptitle, ncols=ncols)


def show_filters(
    weight: torch.Tensor, *, title: str, ncols: int | None = None
) -> plt.Figure:
    """Learned kernels of a convolution (out, in, k, k): grey for one input channel, colour for three."""
    w = weight.detach().cpu().float()
    if w.shape[1] == 3:
        captions = [f"kernel {i}" for i in range(w.shape[0])]
        return show_images(w, captions, suptitle=title, ncols=ncols, size=1.3)
    w = w[:, 0]
    lim = w.abs().max().item()
    fig, axes = _panels(w.shape[0], ncols, 1.3, 1.3, 0.6)
    for i, ax in enumerate(axes.flat):
        ax.axis("off")
        if i < w.shape[0]:
            ax.imshow(w[i].numpy(), cmap="RdBu_r", vmin=-lim, vmax=lim)
            ax.set_title(f"kernel {i}", fontsize=8)
    fig.suptitle(f"{title} (red positive, blue negative)")
    fig.tight_layout()
    return fig
