"""LeNet-5 drawn in the style of the paper's Fig. 2 (LeCun et al. 1998), every label read
off one forward pass (:func:`lenet_utils.tables.layer_table`), so that the figure cannot
drift from the model."""

from __future__ import annotations

import math
from typing import NamedTuple, Sequence

import matplotlib.pyplot as plt
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle
from matplotlib.text import Text
from torch import nn

from .tables import LayerRow, layer_table

__all__ = ["OPERATIONS", "architecture_labels", "draw_architecture"]

#: What the paper's Fig. 2 writes under the arrow into a layer, by the layer's class name.
OPERATIONS: dict[str, str] = {
    "Conv2d": "convolutions",
    "SparseConv2d": "convolutions",
    "MaxPool2d": "max pooling",
    "AvgPool2d": "average pooling",
    "Subsampling": "subsampling",
    "Linear": "full connection",
    "EuclideanRBF": "Gaussian connections",
}
_NOT_DRAWN = ("BatchNorm1d", "BatchNorm2d")  # they change no shape: no stack
_MAX_SQUARES = 8  # 120 squares would be a black smear; the label gives the count
_FIG_W, _FIG_H, _DPI = 10.0, 3.0, 100
_MAP_FILL, _MAP_EDGE, _INPUT_FILL = "#dbe7f5", "#2f5f8f", "#ececec"
_RGB_FILLS = ("#f6d5d5", "#d7efd7", "#d6e2f7")  # a colour input's red, green, blue

_Box = tuple[float, float, float]  # three numbers in inches


class Column(NamedTuple):
    """One drawn layer: what :func:`layout` places and :func:`draw_architecture` draws."""

    label: str  # "C1: 6@28x28"
    maps: int  # squares in the stack (0 for a layer of units drawn as a bar)
    side: int  # map height and width in pixels (units for a bar)
    operation: str  # how it is computed from the column before ("" for the input)
    kernel: int  # pixels its window spans on the previous maps (0: no window)
    stride: int
    fills: tuple[str, ...]


def _window(module: nn.Module | None, row: LayerRow) -> tuple[int, int, int]:
    """(kernel size, pixels it spans, stride) of a convolution or pooling layer."""
    if module is None or not hasattr(module, "kernel_size"):
        # the paper's trainable subsampling has no kernel_size: its window is its ratio
        k = max(row.input_shape[-2] // max(row.output_shape[-2], 1), 1)
        return k, k, k

    def first(v: int | Sequence[int]) -> int:  # drawn square: the height's value
        return int(v if isinstance(v, int) else v[0])

    k = first(module.kernel_size)
    dilation = first(getattr(module, "dilation", 1))
    return k, dilation * (k - 1) + 1, first(getattr(module, "stride", None) or k)


def _input_column(input_size: Sequence[int]) -> Column:
    """The input image: a square per channel (red, green and blue for a colour image)."""
    shape = tuple(input_size[1:])
    channels = shape[0] if len(shape) == 3 else 1
    size_text = "x".join(map(str, shape[-2:]))
    label = f"input: {size_text}" if channels == 1 else f"input: {channels}@{size_text}"
    fills = _RGB_FILLS if channels == 3 else (_INPUT_FILL,)
    return Column(label, channels, shape[-1], "", 0, 0, fills)


def _layer_column(row: LayerRow, module: nn.Module | None) -> Column:
    """One row of the layer table as a column: a stack of maps, or a bar of units."""
    out = row.output_shape[1:]
    op = OPERATIONS.get(row.kind, row.kind)
    kernel = stride = 0
    if len(row.input_shape) == 4 and len(out) == 3:
        size, kernel, stride = _window(module, row)
        op = f"{size}x{size} {op}"
    if len(out) == 3:
        label = f"{row.layer}: {out[0]}@{out[1]}x{out[2]}"
        # C5's 1x1 maps are drawn as a layer of units, like in the paper
        maps, side = (out[0], out[2]) if out[1] * out[2] > 1 else (0, out[0])
    else:
        maps, side = 0, math.prod(out)
        label = f"{row.layer}: {side} units"
    return Column(label, maps, side, op, kernel, stride, (_MAP_FILL,))


def _columns(model: nn.Module, input_size: Sequence[int] | None) -> list[Column]:
    """The input and every drawn layer of ``model``, read off one forward pass of one image
    (by default of the model's ``in_channels`` and ``input_size``, else 1 and 32)."""
    if not input_size:
        side = int(getattr(model, "input_size", 32))
        input_size = (1, int(getattr(model, "in_channels", 1)), side, side)
    rows = [r for r in layer_table(model, input_size) if r.kind not in _NOT_DRAWN]
    if not rows:
        raise ValueError(
            f"draw_architecture: {type(model).__name__} has no convolution, pooling or "
            "linear layer to draw; pass a model built from nn.Conv2d/nn.Linear layers"
        )
    modules = {n.split(".")[-1]: m for n, m in model.named_modules() if n}
    layers = [_layer_column(row, modules.get(row.layer)) for row in rows]
    return [_input_column(input_size), *layers]


def _default_title(model: nn.Module) -> str:
    """``LeNet-5 (modern): layers and their maps``, or the class name for other models."""
    name = type(model).__name__
    if name in ("LeNet5", "LeNet1998"):  # LeNet1998, the paper's, has no variant
        name = f"LeNet-5 ({getattr(model, 'variant', '1998')})"
    return f"{name}: layers and their maps"


def architecture_labels(
    model: nn.Module, input_size: Sequence[int] | None = None
) -> list[tuple[str, str]]:
    """(label, operation) per drawn column, e.g. ``("C1: 6@28x28", "5x5 convolutions")``."""
    return [(c.label, c.operation) for c in _columns(model, input_size)]


# Layout sizes, in inches: bars, the space around texts, the rows of text.
_BAR_W, _BAR_H_MAX, _PAD, _GAP_MIN = 0.13, 1.45, 0.12, 0.3
_TITLE_H, _LABEL_H, _OP_H = 0.42, 0.28, 0.44


class Layout(NamedTuple):
    """Where :func:`draw_architecture` puts each column, in inches from the bottom left."""

    boxes: list[_Box]  # (width, height, offset between squares) of each column
    lefts: list[float]  # each column's left edge
    gaps: list[float]  # gaps[i]: the space between column i - 1 and column i
    y_mid: float  # the columns' vertical centre
    y_ops: float  # the top of the operation texts


def _boxes(columns: Sequence[Column], scale: float) -> list[_Box]:
    """(width, height, offset between squares) of each column at ``scale`` in/px."""
    out = []
    for c in columns:
        if c.maps:
            side = scale * c.side
            d = min(max(0.12 * side, 0.025), 0.05)
            ext = side + (min(c.maps, _MAX_SQUARES) - 1) * d
            out.append((ext, ext, d))
        else:  # height grows with the units and saturates: 10 -> small, 120 -> tall
            out.append((_BAR_W, _BAR_H_MAX * (1 - math.exp(-c.side / 100)), 0.0))
    return out


def _gaps(
    geo: list[_Box], label_w: Sequence[float], op_w: Sequence[float]
) -> tuple[list[float], float, float]:
    """The least gaps between columns for no texts to touch, the left margin, the slack."""
    g: list[float] = [0.0]  # g[i]: space between column i-1 and column i
    for i in range(1, len(geo)):
        centres = (geo[i - 1][0] + geo[i][0]) / 2
        need = max(_GAP_MIN, (label_w[i - 1] + label_w[i]) / 2 + _PAD - centres)
        if i >= 2:  # the operation texts under gaps i-1 and i must not touch
            ops = op_w[i - 1] + op_w[i] + 2 * _PAD - g[i - 1] - 2 * geo[i - 1][0]
            need = max(need, ops)
        g.append(need)
    left = max(0.15, label_w[0] / 2 - geo[0][0] / 2 + 0.1)
    right = max(0.15, label_w[-1] / 2 - geo[-1][0] / 2 + 0.1)
    return g, left, _FIG_W - (left + right + sum(w for w, _, _ in geo) + sum(g))


def layout(
    columns: Sequence[Column], label_w: Sequence[float], op_w: Sequence[float]
) -> Layout:
    """The largest squares that leave every text (widths in inches) room; nothing drawn."""
    room = _FIG_H - _TITLE_H - _LABEL_H - _OP_H

    def fits(scale: float) -> bool:  # squares of ``scale`` in/px leave every text room
        geo = _boxes(columns, scale)
        slack = _gaps(geo, label_w, op_w)[2]
        return slack >= 0 and max(h for _, h, _ in geo) <= room - 0.1

    biggest = max((c.side for c in columns if c.maps), default=1)
    lo, hi = 0.005, 2.0 / biggest
    for _ in range(40):  # the largest squares that fit, by bisection
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if fits(mid) else (lo, mid)
    geo = _boxes(columns, lo)
    g, left, slack = _gaps(geo, label_w, op_w)
    g = [0.0] + [x + slack / (len(g) - 1) for x in g[1:]]  # the slack shared out
    tallest = max(h for _, h, _ in geo)
    y_mid = _OP_H + 0.05 + tallest / 2 + (room - tallest) / 2
    lefts, x = [], left
    for gap, (w, _, _) in zip(g, geo):
        x += gap
        lefts.append(x)
        x += w
    return Layout(geo, lefts, g, y_mid, y_mid - tallest / 2 - 0.1)


def _draw_column(ax: Axes, x: float, bottom: float, c: Column, box: _Box) -> _Box:
    """A column's squares (back to front) or bar; returns the front one's (x0, y0, side)."""
    w, h, d = box
    style = dict(edgecolor=_MAP_EDGE, lw=0.8, gid=c.label)  # gid: tests find a layer
    if not c.maps:
        ax.add_patch(Rectangle((x, bottom), w, h, facecolor=_MAP_FILL, **style))
        return x, bottom, h
    n = min(c.maps, _MAX_SQUARES)
    side = w - (n - 1) * d
    for j in range(n):  # back to front: each map further right and lower
        xy = (x + j * d, bottom + (n - 1 - j) * d)
        fill = c.fills[j % len(c.fills)]
        ax.add_patch(Rectangle(xy, side, side, facecolor=fill, **style))
    return x + (n - 1) * d, bottom, side


def draw_architecture(
    model: nn.Module,
    input_size: Sequence[int] | None = None,
    *,
    title: str | None = None,
) -> Figure:
    """Draw ``model`` as the paper's Fig. 2: a stack of squares per layer, left to right.

    ``input_size`` includes the batch dimension (by default the model's ``in_channels``
    and ``input_size``, else ``(1, 1, 32, 32)``). Each convolution, pooling and linear
    layer is a column labelled ``C3: 16@10x10``, its operation below; at most 8 squares
    a stack; layers of units (and 1x1 maps) are bars that grow with the units."""
    columns = _columns(model, input_size)
    # a pyplot figure, like lenet_utils.plots: the notebooks end the cell with plt.show()
    fig = plt.figure(figsize=(_FIG_W, _FIG_H), dpi=_DPI, facecolor="white")
    ax = fig.add_axes((0, 0, 1, 1))
    ax.set(xlim=(0, _FIG_W), ylim=(0, _FIG_H))
    ax.axis("off")
    # All coordinates are inches, so text can be measured against shapes.
    renderer = fig.canvas.get_renderer()
    labels = [
        ax.text(0, 0, c.label, ha="center", va="bottom", fontsize=10) for c in columns
    ]
    style = dict(ha="center", va="top", fontsize=9.5, color="0.2", linespacing=1.15)
    # "5x5 convolutions" on two lines: the size above, the operation below
    ops = [ax.text(0, 0, c.operation.replace(" ", "\n", 1), **style) for c in columns]

    def width(t: Text) -> float:  # in inches, as drawn
        return t.get_window_extent(renderer).width / _DPI if t.get_text() else 0.0

    plan = layout(columns, [width(t) for t in labels], [width(t) for t in ops])
    fronts: list[_Box] = []  # front square/bar: (x0, y0, size)
    for i, (c, box, x) in enumerate(zip(columns, plan.boxes, plan.lefts)):
        bottom = plan.y_mid - box[1] / 2
        fronts.append(_draw_column(ax, x, bottom, c, box))
        labels[i].set_position((x + box[0] / 2, bottom + box[1] + 0.07))
        if i:
            ops[i].set_position((x - plan.gaps[i] / 2, plan.y_ops))
            if c.kernel and columns[i - 1].maps:
                where = 0.15 if i % 2 else 0.6  # consecutive windows never overlap
                _draw_window(ax, fronts[i - 1], columns[i - 1], fronts[i], c, where)
    heading = dict(ha="center", va="top", fontsize=12, fontweight="bold")
    ax.text(_FIG_W / 2, _FIG_H - 0.12, title or _default_title(model), **heading)
    return fig


def _draw_window(
    ax: Axes, src: _Box, src_col: Column, dst: _Box, dst_col: Column, where: float
) -> None:
    """The paper's projection lines: a window on the previous front map, converging on the
    output pixel (or unit) it computes; ``where`` (0 to 1) places it along the diagonal."""
    (sx, sy, s_side), (dx, dy, d_side) = src, dst
    k, stride = dst_col.kernel, max(dst_col.stride, 1)
    px = s_side / src_col.side  # inches per pixel of the previous map
    room = max(src_col.side - k, 0)
    start = min(stride * round(where * room / stride), room)  # a whole output pixel
    out_pos = start // stride
    wx0, wy1 = sx + start * px, sy + s_side - start * px
    win = k * px
    blue = "#1d4f80"
    style = dict(facecolor="#8fb3da", alpha=0.8, edgecolor=blue, lw=0.9, zorder=2)
    ax.add_patch(Rectangle((wx0, wy1 - win), win, win, **style))
    if dst_col.maps:
        opx = d_side / dst_col.side
        tx, ty = dx + out_pos * opx, dy + d_side - out_pos * opx
        ax.add_patch(Rectangle((tx, ty - opx), opx, opx, color=blue, zorder=3))
        ends = [(tx, ty), (tx, ty - opx)]
    else:
        ends = [(dx, dy + d_side / 2)] * 2
    for (ex, ey), (fx, fy) in zip(ends, [(wx0 + win, wy1), (wx0 + win, wy1 - win)]):
        ax.plot([fx, ex], [fy, ey], color=blue, lw=0.7, alpha=0.8, zorder=2.5)
