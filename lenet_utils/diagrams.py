"""Teaching figures drawn from the model and the arithmetic, so they cannot drift from them.

* :func:`draw_architecture`: LeNet-5 in the style of the paper's Fig. 2 (LeCun et al.
  1998), every label read off one forward pass through the model
  (:func:`lenet_utils.arithmetic.layer_table`).
* :func:`conv_frames`, :func:`conv_animation`, :func:`write_conv_gif`: a kernel window
  sliding over an input grid and filling an output grid, in the style of Dumoulin and
  Visin's *conv_arithmetic* animations. The number of window positions comes from
  :func:`lenet_utils.arithmetic.output_size`; :data:`ANIMATIONS` lists the five the book
  shows, with their file names and alt texts (``python scripts/make_figures.py`` writes them).
"""

from __future__ import annotations

import inspect
import json
import math
from pathlib import Path
from typing import Literal, NamedTuple, Sequence

import matplotlib
import matplotlib.pyplot as plt
from matplotlib import animation
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle
from torch import nn

from .arithmetic import LayerRow, layer_table, output_size

__all__ = [
    "ANIMATIONS",
    "Frame",
    "WindowKind",
    "architecture_labels",
    "conv_alt_text",
    "conv_animation",
    "conv_formula",
    "conv_frames",
    "conv_title",
    "draw_architecture",
    "write_animations",
    "write_conv_gif",
]

# ----------------------------------------------------------------------------------------
# The architecture figure (the paper's Fig. 2)
# ----------------------------------------------------------------------------------------

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
_NOT_DRAWN = (
    "BatchNorm1d",
    "BatchNorm2d",
)  # they change no shape: no stack of their own
_MAX_SQUARES = (
    8  # a stack of 120 squares would be a black smear; the label gives the count
)
_FIG_W, _FIG_H, _DPI = 10.0, 3.0, 100

_MAP_FILL, _MAP_EDGE = "#dbe7f5", "#2f5f8f"
_INPUT_FILL = "#ececec"
_RGB_FILLS = (
    "#f6d5d5",
    "#d7efd7",
    "#d6e2f7",
)  # a colour input's red, green, blue planes


class _Column(NamedTuple):
    label: str  # "C1: 6@28x28"
    maps: int  # squares in the stack (0 for a layer of units drawn as a bar)
    side: int  # map height and width in pixels (units for a bar)
    operation: str  # how it is computed from the column before ("" for the input)
    kernel: int  # pixels its window spans on the previous maps (0: no window)
    stride: int
    fills: tuple[str, ...]


def _short(name: str) -> str:
    return name.split(".")[-1]


def _window(module: nn.Module | None, row: LayerRow) -> tuple[int, int, int]:
    """(kernel size, pixels it spans, stride) of a convolution or pooling layer."""
    in_h, out_h = row.input_shape[-2], row.output_shape[-2]
    if module is None or not hasattr(module, "kernel_size"):
        # the paper's trainable subsampling has no kernel_size: its window is its ratio
        k = max(in_h // max(out_h, 1), 1)
        return k, k, k

    def first(v) -> int:
        return int(v if isinstance(v, int) else v[0])

    k = first(module.kernel_size)
    dilation = first(getattr(module, "dilation", 1))
    stride = getattr(module, "stride", None)
    return k, dilation * (k - 1) + 1, first(stride) if stride else k


def _columns(model: nn.Module, input_size: Sequence[int]) -> list[_Column]:
    rows = [r for r in layer_table(model, input_size) if r.kind not in _NOT_DRAWN]
    if not rows:
        raise ValueError(
            f"draw_architecture: {type(model).__name__} has no convolution, pooling or "
            "linear layer to draw; pass a model built from nn.Conv2d/nn.Linear layers"
        )
    modules = {_short(n): m for n, m in model.named_modules() if n}
    shape = tuple(input_size[1:])
    channels = shape[0] if len(shape) == 3 else 1
    size_text = "x".join(map(str, shape[-2:]))
    columns = [
        _Column(
            f"input: {size_text}"
            if channels == 1
            else f"input: {channels}@{size_text}",
            channels,
            shape[-1],
            "",
            0,
            0,
            _RGB_FILLS if channels == 3 else (_INPUT_FILL,),
        )
    ]
    for row in rows:
        out = row.output_shape[1:]
        op = OPERATIONS.get(row.kind, row.kind)
        kernel = stride = 0
        if len(row.input_shape) == 4 and len(out) == 3:
            size, kernel, stride = _window(modules.get(row.layer), row)
            op = f"{size}x{size} {op}"
        if len(out) == 3 and out[1] * out[2] > 1:
            label = f"{row.layer}: {out[0]}@{out[1]}x{out[2]}"
            maps, side = out[0], out[2]
        elif len(out) == 3:  # C5: 1x1 maps, drawn as a layer of units like in the paper
            label = f"{row.layer}: {out[0]}@1x1"
            maps, side = 0, out[0]
        else:
            units = math.prod(out)
            label = f"{row.layer}: {units} units"
            maps, side = 0, units
        columns.append(_Column(label, maps, side, op, kernel, stride, (_MAP_FILL,)))
    return columns


def _default_title(model: nn.Module) -> str:
    name = type(model).__name__
    if name == "LeNet5":
        return f"LeNet-5 ({getattr(model, 'variant', 'modern')}): layers and their maps"
    if name == "LeNet1998":
        return "LeNet-5 (1998): layers and their maps"
    return f"{name}: layers and their maps"


def _default_input_size(model: nn.Module) -> tuple[int, int, int, int]:
    side = int(getattr(model, "input_size", 32))
    return 1, int(getattr(model, "in_channels", 1)), side, side


def architecture_labels(
    model: nn.Module, input_size: Sequence[int] | None = None
) -> list[tuple[str, str]]:
    """(label, operation into it) for every drawn column, e.g. ``("C1: 6@28x28",
    "5x5 convolutions")``: the words :func:`draw_architecture` writes, as data."""
    size = input_size or _default_input_size(model)
    return [(c.label, c.operation) for c in _columns(model, size)]


def draw_architecture(
    model: nn.Module,
    input_size: Sequence[int] | None = None,
    *,
    title: str | None = None,
) -> Figure:
    """Draw ``model`` as the paper's Fig. 2: a stack of squares per layer, left to right.

    One dummy batch of ``input_size`` (with its batch dimension; by default read from the
    model's ``in_channels`` and ``input_size``, else ``(1, 1, 32, 32)``) runs through the
    model; each convolution, pooling and linear layer becomes a column labelled with its
    paper name and output (``C3: 16@10x10``), with the operation that computes it written
    below. Squares are proportional to the map size; a stack draws at most 8 maps; layers
    of units (and 1x1 maps) are bars whose height grows with the number of units.
    Batch normalisation and activations change no shape and are not drawn.
    """
    size = tuple(input_size or _default_input_size(model))
    columns = _columns(model, size)
    # a pyplot figure, like lenet_utils.plots: the notebooks end the cell with plt.show()
    fig = plt.figure(figsize=(_FIG_W, _FIG_H), dpi=_DPI, facecolor="white")
    ax = fig.add_axes((0, 0, 1, 1))
    ax.set_xlim(0, _FIG_W)
    ax.set_ylim(0, _FIG_H)
    ax.axis("off")
    # All coordinates below are inches, so text can be measured against shapes.
    renderer = fig.canvas.get_renderer()
    label_texts = [
        ax.text(0, 0, c.label, ha="center", va="bottom", fontsize=10) for c in columns
    ]
    op_texts = [
        ax.text(
            0,
            0,
            c.operation.replace(" ", "\n", 1) if c.operation else "",
            ha="center",
            va="top",
            fontsize=9.5,
            color="0.2",
            linespacing=1.15,
        )
        for c in columns
    ]

    def width(t) -> float:
        return t.get_window_extent(renderer).width / _DPI if t.get_text() else 0.0

    label_w = [width(t) for t in label_texts]
    op_w = [width(t) for t in op_texts]
    bar_w, bar_h_max, pad, gap_min = 0.13, 1.45, 0.12, 0.3
    title_h, label_h, op_h = 0.42, 0.28, 0.44
    biggest = (
        max(c.side for c in columns if c.maps) if any(c.maps for c in columns) else 1
    )

    def geometry(scale: float) -> list[tuple[float, float, float]]:
        """(width, height, offset between squares) of each column at ``scale`` in/px."""
        out = []
        for c in columns:
            if c.maps:
                side = scale * c.side
                d = min(max(0.12 * side, 0.025), 0.05)
                ext = side + (min(c.maps, _MAX_SQUARES) - 1) * d
                out.append((ext, ext, d))
            else:  # height grows with the units and saturates: 10 -> small, 120 -> tall
                out.append((bar_w, bar_h_max * (1 - math.exp(-c.side / 100)), 0.0))
        return out

    def gaps(geo) -> tuple[list[float], float, float]:
        g: list[float] = [0.0]  # g[i]: space between column i-1 and column i
        for i in range(1, len(columns)):
            need = max(
                gap_min,
                (label_w[i - 1] + label_w[i]) / 2
                + pad
                - (geo[i - 1][0] + geo[i][0]) / 2,
            )
            if i >= 2:  # the operation texts under gaps i-1 and i must not touch
                need = max(
                    need, op_w[i - 1] + op_w[i] + 2 * pad - g[i - 1] - 2 * geo[i - 1][0]
                )
            g.append(need)
        left = max(0.15, label_w[0] / 2 - geo[0][0] / 2 + 0.1)
        right = max(0.15, label_w[-1] / 2 - geo[-1][0] / 2 + 0.1)
        return g, left, right

    def fits(scale: float) -> bool:
        geo = geometry(scale)
        g, left, right = gaps(geo)
        total = left + right + sum(w for w, _, _ in geo) + sum(g)
        tallest = max(h for _, h, _ in geo)
        return total <= _FIG_W and tallest <= _FIG_H - title_h - label_h - op_h - 0.1

    lo, hi = 0.005, 2.0 / biggest
    for _ in range(40):  # the largest squares that fit, by bisection
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if fits(mid) else (lo, mid)
    geo = geometry(lo)
    g, left, right = gaps(geo)
    slack = _FIG_W - (left + right + sum(w for w, _, _ in geo) + sum(g))
    g = [0.0] + [x + slack / (len(columns) - 1) for x in g[1:]] if len(g) > 1 else g
    tallest = max(h for _, h, _ in geo)
    y_mid = (
        op_h + 0.05 + tallest / 2 + (_FIG_H - title_h - label_h - op_h - tallest) / 2
    )
    y_ops = y_mid - tallest / 2 - 0.1

    x = left
    fronts: list[tuple[float, float, float]] = []  # front square/bar: (x0, y0, size)
    for i, (c, (w, h, d)) in enumerate(zip(columns, geo)):
        x += g[i]
        bottom = y_mid - h / 2
        if c.maps:
            n = min(c.maps, _MAX_SQUARES)
            side = w - (n - 1) * d
            for j in range(n):  # back to front: each map further right and lower
                fill = c.fills[j % len(c.fills)]
                ax.add_patch(
                    Rectangle(
                        (x + j * d, bottom + (n - 1 - j) * d),
                        side,
                        side,
                        facecolor=fill,
                        edgecolor=_MAP_EDGE,
                        lw=0.8,
                        gid=c.label,  # lets tests find a layer's squares
                    )
                )
            fronts.append((x + (n - 1) * d, bottom, side))
        else:
            ax.add_patch(
                Rectangle(
                    (x, bottom),
                    w,
                    h,
                    facecolor=_MAP_FILL,
                    edgecolor=_MAP_EDGE,
                    lw=0.8,
                    gid=c.label,
                )
            )
            fronts.append((x, bottom, h))
        label_texts[i].set_position((x + w / 2, bottom + h + 0.07))
        if i:
            op_texts[i].set_position((x - g[i] / 2, y_ops))
            if c.kernel:
                _draw_window(
                    ax,
                    fronts[i - 1],
                    columns[i - 1],
                    fronts[i],
                    c,
                    0.15 if i % 2 else 0.6,
                )
        x += w
    ax.text(
        _FIG_W / 2,
        _FIG_H - 0.12,
        title or _default_title(model),
        ha="center",
        va="top",
        fontsize=12,
        fontweight="bold",
    )
    return fig


def _draw_window(
    ax, src, src_col: _Column, dst, dst_col: _Column, where: float
) -> None:
    """The paper's projection lines: one window on the previous front map, converging on
    the output pixel (or unit) it computes. ``where`` (0 to 1) places the window along the
    map's diagonal, so that consecutive windows do not cover each other."""
    sx, sy, s_side = src
    dx, dy, d_side = dst
    k, stride = dst_col.kernel, max(dst_col.stride, 1)
    if not src_col.maps or not k:
        return
    px = s_side / src_col.side  # inches per pixel of the previous map
    room = max(src_col.side - k, 0)
    start = min(stride * round(where * room / stride), room)  # a whole output pixel
    out_pos = start // stride
    wx0, wy1 = sx + start * px, sy + s_side - start * px
    win = k * px
    blue = "#1d4f80"
    ax.add_patch(
        Rectangle(
            (wx0, wy1 - win),
            win,
            win,
            facecolor="#8fb3da",
            alpha=0.8,
            edgecolor=blue,
            lw=0.9,
            zorder=2,
        )
    )
    if dst_col.maps:
        opx = d_side / dst_col.side
        tx, ty = dx + out_pos * opx, dy + d_side - out_pos * opx
        ax.add_patch(Rectangle((tx, ty - opx), opx, opx, color=blue, zorder=3))
        ends = [(tx, ty), (tx, ty - opx)]
    else:
        ends = [(dx, dy + d_side / 2)] * 2
    for (ex, ey), (fx, fy) in zip(ends, [(wx0 + win, wy1), (wx0 + win, wy1 - win)]):
        ax.plot([fx, ex], [fy, ey], color=blue, lw=0.7, alpha=0.8, zorder=2.5)


# ----------------------------------------------------------------------------------------
# Convolution animations (conv_arithmetic style)
# ----------------------------------------------------------------------------------------

WindowKind = Literal["conv", "maxpool", "avgpool"]
Cell = tuple[int, int]


class Frame(NamedTuple):
    """One step of the animation: the output cell computed and the input cells it reads.

    Cells are ``(row, column)`` in the *unpadded* input's coordinates: ``-1`` is the first
    padding row, ``size`` the first row past the input. ``input_cells`` lists the kernel's
    cells in row-major kernel order, padding and overhang included.
    """

    output_cell: Cell
    input_cells: tuple[Cell, ...]


def _accepts_kind() -> bool:
    return "kind" in inspect.signature(output_size).parameters


def _check_config(
    size: int,
    kernel: int,
    stride: int,
    padding: int,
    dilation: int,
    kind: str,
    ceil_mode,
) -> None:
    if kind not in ("conv", "maxpool", "avgpool"):
        raise ValueError(
            f"conv_frames: kind must be 'conv', 'maxpool' or 'avgpool', got {kind!r}"
        )
    if kind == "conv" and ceil_mode:
        raise ValueError(
            "conv_frames: ceil_mode belongs to pooling (nn.Conv2d has none); "
            "pass kind='maxpool' or 'avgpool'"
        )
    for name, value in (
        ("size", size),
        ("kernel", kernel),
        ("stride", stride),
        ("padding", padding),
        ("dilation", dilation),
    ):
        if not isinstance(value, int) or isinstance(value, bool):
            raise ValueError(
                f"conv_frames: {name} must be one int (square grids only), got {value!r}"
            )


def _positions(
    size: int,
    kernel: int,
    stride: int,
    padding: int,
    dilation: int,
    ceil_mode: bool,
    kind: str,
) -> int:
    """Window positions along one axis: the course's formula, plus PyTorch's pooling rule."""
    extra = {"kind": "maxpool"} if kind == "maxpool" and _accepts_kind() else {}
    n = output_size(
        size, kernel, stride, padding, dilation, ceil_mode=ceil_mode, **extra
    )
    # PyTorch (pooling_output_shape) drops a last window that would start in the
    # right-hand padding; apply it here too in case output_size does not.
    while ceil_mode and n > 1 and (n - 1) * stride >= size + padding:
        n -= 1
    return int(n)


def conv_frames(
    size: int,
    kernel: int,
    stride: int | None = None,
    padding: int = 0,
    dilation: int = 1,
    *,
    ceil_mode: bool = False,
    kind: WindowKind = "conv",
) -> list[Frame]:
    """Every window position of a square convolution or pooling, in the order computed.

    ``stride`` defaults to 1 for a convolution and to ``kernel`` for pooling, as in
    PyTorch. The positions per axis come from :func:`lenet_utils.arithmetic.output_size`
    (the number of output cells); the window of output ``(i, j)`` starts at input pixel
    ``(i * stride - padding, j * stride - padding)`` and takes every ``dilation``-th pixel.
    """
    stride = (1 if kind == "conv" else kernel) if stride is None else stride
    _check_config(size, kernel, stride, padding, dilation, kind, ceil_mode)
    n = _positions(size, kernel, stride, padding, dilation, ceil_mode, kind)
    offsets = [d * dilation for d in range(kernel)]
    frames = []
    for i in range(n):
        for j in range(n):
            r0, c0 = i * stride - padding, j * stride - padding
            cells = tuple((r0 + a, c0 + b) for a in offsets for b in offsets)
            frames.append(Frame((i, j), cells))
    return frames


def _stride_default(kind: str, kernel: int, stride: int | None) -> int:
    return (1 if kind == "conv" else kernel) if stride is None else stride


def conv_formula(
    size: int,
    kernel: int,
    stride: int | None = None,
    padding: int = 0,
    dilation: int = 1,
    *,
    ceil_mode: bool = False,
    kind: WindowKind = "conv",
) -> str:
    """The output-size formula with this layer's numbers and the result, e.g.
    ``"floor((5 + 2×1 − 3) / 2) + 1 = 3"``."""
    stride = _stride_default(kind, kernel, stride)
    frames = conv_frames(
        size, kernel, stride, padding, dilation, ceil_mode=ceil_mode, kind=kind
    )
    n = frames[-1].output_cell[0] + 1
    terms = f"{size}"
    if padding:
        terms += f" + 2×{padding}"
    if dilation == 1:
        terms += f" − {kernel}"
    else:
        terms += f" − {dilation}×({kernel} − 1) − 1"
    rounding = "ceil" if ceil_mode else "floor"
    text = f"{rounding}(({terms}) / {stride}) + 1"
    formula = output_size(
        size, kernel, stride, padding, dilation, ceil_mode=ceil_mode
    )  # before PyTorch's rule for a window starting in the padding
    if formula != n:
        return f"{text} = {formula}, less {formula - n} (starts in the padding) = {n}"
    return f"{text} = {n}"


def _describe(
    size: int,
    kernel: int,
    stride: int,
    padding: int,
    dilation: int,
    kind: str,
    ceil_mode,
) -> str:
    what = {"conv": "kernel", "maxpool": "max pooling", "avgpool": "average pooling"}
    parts = [f"{kernel}x{kernel} {what[kind]}", f"stride {stride}"]
    parts.append(f"padding {padding}")
    if dilation != 1:
        parts.append(f"dilation {dilation}")
    if ceil_mode:
        parts.append("ceil_mode=True")
    return f"{size}x{size} input, " + ", ".join(parts)


def conv_title(
    size: int,
    kernel: int,
    stride: int | None = None,
    padding: int = 0,
    dilation: int = 1,
    *,
    ceil_mode: bool = False,
    kind: WindowKind = "conv",
) -> str:
    """Two lines: the configuration, then :func:`conv_formula`."""
    stride = _stride_default(kind, kernel, stride)
    return (
        _describe(size, kernel, stride, padding, dilation, kind, ceil_mode)
        + "\n"
        + conv_formula(
            size, kernel, stride, padding, dilation, ceil_mode=ceil_mode, kind=kind
        )
    )


def _ceil_note(
    size: int, kernel: int, stride: int, padding: int, dilation: int, n: int
) -> str:
    """Why PyTorch keeps the last, overhanging window (and when it would drop one)."""
    last = (n - 1) * stride - padding
    floor = output_size(size, kernel, stride, padding, dilation)
    ceil = output_size(size, kernel, stride, padding, dilation, ceil_mode=True)
    if ceil == floor:
        return "ceil_mode=True changes nothing here: the windows fit the input exactly."
    lines = [
        f"ceil_mode=True adds a last window at row and column {last}, hanging over",
        "the edge: pooling ignores its cells outside the input (red). PyTorch keeps",
        "it because it starts inside the input (or the left padding); it drops a",
        "last window that would start in the right-hand padding.",
    ]
    if ceil > n:
        lines.append(
            f"Here the window at {n * stride - padding} would start there: dropped."
        )
    return "\n".join(lines)


def conv_alt_text(
    size: int,
    kernel: int,
    stride: int | None = None,
    padding: int = 0,
    dilation: int = 1,
    *,
    ceil_mode: bool = False,
    kind: WindowKind = "conv",
) -> str:
    """A short description of the animation for readers who cannot see it."""
    stride = _stride_default(kind, kernel, stride)
    frames = conv_frames(
        size, kernel, stride, padding, dilation, ceil_mode=ceil_mode, kind=kind
    )
    n = frames[-1].output_cell[0] + 1
    window = "pooling window" if kind != "conv" else "kernel"
    text = f"Animation: a {kernel}x{kernel} {window} slides over a {size}x{size} input"
    if padding:
        text += (
            f" padded with a border of zeros {padding} pixel{'s' * (padding > 1)} wide"
        )
    else:
        text += " with no padding"
    text += f", stride {stride}"
    if dilation != 1:
        nth = {2: "second", 3: "third", 4: "fourth"}.get(dilation, f"{dilation}th")
        text += f", dilation {dilation} (it reads every {nth} pixel)"
    text += (
        f"; each of its {len(frames)} positions fills one cell of the {n}x{n} output."
    )
    if ceil_mode and n > output_size(size, kernel, stride, padding, dilation):
        text += (
            " With ceil_mode=True the last window in each row and column hangs over the"
            " input's edge; PyTorch keeps it because it starts inside the input, and"
            " pooling ignores its cells outside."
        )
    return text


# Drawing: grids in cell units, row 0 at the top.
_IN_FILL, _IN_EDGE = "#a9c9ea", "#2c5d8f"
_PAD_EDGE = "#8a9bb0"
_WINDOW = "#1d4f80"
_OUT_DONE, _OUT_NOW, _OUT_EDGE = "#8fdbe6", "#16a2b8", "#4aa9b8"
_OUTSIDE = "#d9534f"
_ANIM_W, _ANIM_DPI = 5.2, 100  # 520 pixels wide


class _Scene:
    """Static grids drawn once; :meth:`show` moves the window and fills the output."""

    def __init__(self, config: dict) -> None:
        kind = config.get("kind", "conv")
        size, kernel, padding = (
            config["size"],
            config["kernel"],
            config.get("padding", 0),
        )
        stride = _stride_default(kind, kernel, config.get("stride"))
        dilation = config.get("dilation", 1)
        ceil_mode = config.get("ceil_mode", False)
        self.frames = conv_frames(
            size,
            kernel,
            stride,
            padding,
            dilation,
            ceil_mode=ceil_mode,
            kind=kind,
        )
        n = self.frames[-1].output_cell[0] + 1
        self.n = n
        lo = -padding
        hi = max(
            max(r for f in self.frames for r, _ in f.input_cells), size + padding - 1
        )
        self.lo, self.hi = lo, hi
        cols_in = hi - lo + 1
        gap = 1.6  # cells between the input grid and the output grid
        note = (
            _ceil_note(size, kernel, stride, padding, dilation, n) if ceil_mode else ""
        )
        # Layout in inches: title, grids with their captions, step line, note.
        title_h, grid_h, step_h = 0.62, 2.5, 0.3
        note_h = 0.17 * (note.count("\n") + 1) + 0.08 if note else 0.0
        height = title_h + grid_h + step_h + note_h
        # not a pyplot figure: nothing to close, and a notebook shows only the animation
        fig = Figure(figsize=(_ANIM_W, height), dpi=_ANIM_DPI, facecolor="white")
        FigureCanvasAgg(fig)
        ax = fig.add_axes((0.02, (step_h + note_h) / height, 0.96, grid_h / height))
        ax.set_aspect("equal")
        ax.axis("off")
        x_out = cols_in + gap  # output grid's left edge, in cells
        ax.set_xlim(-0.2, x_out + max(n, 3) + 0.2)
        ax.set_ylim(cols_in + 1.0, -0.2)  # row 0 at the top; room for the captions
        self.ax = ax
        self.fig = fig

        def xy(r: int, c: int) -> tuple[float, float]:
            return c - lo, r - lo

        self.xy = xy
        for r in range(lo, hi + 1):
            for c in range(lo, hi + 1):
                inside = 0 <= r < size and 0 <= c < size
                in_pad = lo <= r < size + padding and lo <= c < size + padding
                if inside:
                    kw = dict(facecolor=_IN_FILL, edgecolor=_IN_EDGE, lw=1.0)
                elif in_pad:
                    kw = dict(facecolor="white", edgecolor=_PAD_EDGE, lw=1.0, ls="--")
                else:  # past the padding: only ceil_mode windows reach here
                    kw = dict(facecolor="white", edgecolor="0.75", lw=0.8, ls=":")
                ax.add_patch(Rectangle(xy(r, c), 1, 1, **kw))
        self.out_cells = {}
        y_out = (cols_in - n) / 2  # output grid centred beside the input
        ax.annotate(
            "",
            xy=(x_out - 0.3, cols_in / 2),
            xytext=(cols_in + 0.3, cols_in / 2),
            arrowprops=dict(arrowstyle="-|>", color="0.4", lw=1.5),
        )
        for i in range(n):
            for j in range(n):
                patch = Rectangle(
                    (x_out + j, y_out + i),
                    1,
                    1,
                    facecolor="white",
                    edgecolor=_OUT_EDGE,
                    lw=1.0,
                )
                ax.add_patch(patch)
                self.out_cells[(i, j)] = patch
        self.window = [
            Rectangle(
                (0, 0), 1, 1, facecolor=_WINDOW, alpha=0.5, edgecolor=_WINDOW, lw=2
            )
            for _ in self.frames[0].input_cells
        ]
        for p in self.window:
            ax.add_patch(p)
        fs = 10
        pad_text = f", padding {padding}" if padding else ""
        ax.text(
            cols_in / 2,
            cols_in + 0.35,
            f"input {size}x{size}{pad_text}",
            ha="center",
            va="top",
            fontsize=fs,
        )
        ax.text(
            x_out + n / 2,
            y_out + n + 0.35,
            f"output {n}x{n}",
            ha="center",
            va="top",
            fontsize=fs,
        )
        fig.text(
            0.5,
            1 - 0.08 / height,
            conv_title(
                size,
                kernel,
                stride,
                padding,
                dilation,
                ceil_mode=ceil_mode,
                kind=kind,
            ),
            ha="center",
            va="top",
            fontsize=10.5,
            linespacing=1.4,
        )
        if note:
            fig.text(
                0.5,
                0.06 / height,
                note,
                ha="center",
                va="bottom",
                fontsize=9,
                color="0.15",
                linespacing=1.3,
            )
        self.step_text = fig.text(
            0.5,
            (note_h + step_h / 2) / height,
            "",
            ha="center",
            va="center",
            fontsize=9.5,
            color="0.3",
        )
        self.size, self.padding = size, padding
        self.show(0)

    def show(self, step: int) -> list:
        """Draw the window of frame ``step`` and the output filled up to it."""
        frame = self.frames[step]
        for patch, (r, c) in zip(self.window, frame.input_cells):
            outside = not (
                self.lo <= r < self.size + self.padding
                and self.lo <= c < self.size + self.padding
            )
            patch.set_xy(self.xy(r, c))
            patch.set_facecolor(_OUTSIDE if outside else _WINDOW)
            patch.set_edgecolor(_OUTSIDE if outside else _WINDOW)
            patch.set_hatch("//" if outside else None)
        for k, f in enumerate(self.frames):
            color = _OUT_NOW if k == step else _OUT_DONE if k < step else "white"
            self.out_cells[f.output_cell].set_facecolor(color)
        i, j = frame.output_cell
        self.step_text.set_text(
            f"step {step + 1} of {len(self.frames)}: output cell (row {i}, column {j})"
        )
        return [*self.window, *self.out_cells.values(), self.step_text]


_DEFAULTS = dict(stride=None, padding=0, dilation=1, ceil_mode=False, kind="conv")


def _config(
    size, kernel, stride, padding, dilation, ceil_mode, kind
) -> dict:  # one dict form for every public function below
    return dict(
        size=size,
        kernel=kernel,
        stride=stride,
        padding=padding,
        dilation=dilation,
        ceil_mode=ceil_mode,
        kind=kind,
    )


def conv_animation(
    size: int,
    kernel: int,
    stride: int | None = None,
    padding: int = 0,
    dilation: int = 1,
    *,
    ceil_mode: bool = False,
    kind: WindowKind = "conv",
    fps: float = 3,
    pause: int = 6,
) -> animation.FuncAnimation:
    """The animation as a matplotlib ``FuncAnimation``, one frame per output cell, the last
    one held for ``pause`` more frames. In a notebook: ``HTML(anim.to_jshtml())``."""
    scene = _Scene(_config(size, kernel, stride, padding, dilation, ceil_mode, kind))
    steps = list(range(len(scene.frames))) + [len(scene.frames) - 1] * pause
    anim = animation.FuncAnimation(
        scene.fig, scene.show, frames=steps, interval=1000 / fps, blit=False
    )
    anim._lenet_scene = (
        scene  # keep the scene (and its figure) alive with the animation
    )
    return anim


def _render(fig: Figure):
    from PIL import Image

    fig.canvas.draw()
    rgba = Image.frombuffer(
        "RGBA", fig.canvas.get_width_height(), fig.canvas.buffer_rgba(), "raw"
    )
    return rgba.convert("RGB")


def _quantize(images: list, colours: int = 64) -> list:
    """Palette images sharing one palette of ``colours`` entries: the drawing's flat
    colours exactly (so white stays white), then the last frame's antialiasing shades (it
    has every colour the others use). Each pixel takes its nearest palette colour, found
    here in full precision (Pillow's own mapping rounds colours first and turns white
    into light grey); no dithering, so the result depends on the pixels only."""
    import numpy as np
    from matplotlib.colors import to_rgb
    from PIL import Image

    flat = ["white", "black", _IN_FILL, _IN_EDGE, _PAD_EDGE, _WINDOW, _OUT_DONE]
    flat += [_OUT_NOW, _OUT_EDGE, _OUTSIDE, "0.15", "0.3", "0.4", "0.75"]
    fixed = [[round(255 * v) for v in to_rgb(c)] for c in flat]
    shades = images[-1].quantize(
        colors=colours - len(fixed), method=Image.Quantize.MEDIANCUT
    )
    extra = np.array(shades.getpalette()[: 3 * (colours - len(fixed))]).reshape(-1, 3)
    palette = np.concatenate([np.array(fixed), extra]).astype(np.int64)
    out = []
    for im in images:
        rgb = np.asarray(im, dtype=np.int64)
        packed = (rgb[..., 0] << 16) | (rgb[..., 1] << 8) | rgb[..., 2]
        unique, inverse = np.unique(packed, return_inverse=True)
        cols = np.stack([unique >> 16, (unique >> 8) & 255, unique & 255], axis=1)
        dist = ((cols[:, None, :] - palette[None, :, :]) ** 2).sum(-1)
        index = dist.argmin(1).astype(np.uint8)[inverse].reshape(packed.shape)
        frame = Image.fromarray(index, mode="P")
        frame.putpalette(palette.astype(np.uint8).flatten().tolist())
        out.append(frame)
    return out


def write_conv_gif(
    path: str | Path,
    size: int,
    kernel: int,
    stride: int | None = None,
    padding: int = 0,
    dilation: int = 1,
    *,
    ceil_mode: bool = False,
    kind: WindowKind = "conv",
    fps: float = 3,
    pause_s: float = 2.5,
) -> str:
    """Write the animation as a GIF (Pillow) and return its alt text.

    Frames last ``1 / fps`` seconds, the last one ``pause_s``. The file is deterministic:
    one palette shared by all frames, no dithering, and a comment that records the
    configuration, the window positions, the title and the library versions (see
    :func:`gif_recipe`), so a test can tell a stale GIF from a fresh one.
    """
    config = _config(size, kernel, stride, padding, dilation, ceil_mode, kind)
    scene = _Scene(config)
    images = []
    for step in range(len(scene.frames)):
        scene.show(step)
        images.append(_render(scene.fig))
    frames = _quantize(images)
    durations = [round(1000 / fps)] * (len(frames) - 1) + [round(1000 * pause_s)]
    alt = conv_alt_text(**config)
    frames[0].save(
        path,
        save_all=True,
        append_images=frames[1:],
        duration=durations,
        loop=0,
        optimize=False,
        disposal=1,
        comment=json.dumps(gif_recipe(config), sort_keys=True).encode(),
    )
    return alt


def gif_recipe(config: dict) -> dict:
    """What a GIF is drawn from: config, title, alt text, window positions and the
    versions of the libraries that render it (stored in the GIF's comment)."""
    import PIL

    full = {**_DEFAULTS, **config}
    return {
        "config": full,
        "title": conv_title(**full),
        "alt": conv_alt_text(**full),
        "frames": [
            [list(f.output_cell), [list(c) for c in f.input_cells]]
            for f in conv_frames(**full)
        ],
        "matplotlib": matplotlib.__version__,
        "pillow": PIL.__version__,
    }


def _spec(name: str, **config) -> dict:
    full = {**_DEFAULTS, **config}
    return {"config": full, "file": f"{name}.gif", "alt": conv_alt_text(**full)}


#: The five animations of the book: name -> config (arguments of :func:`conv_frames`),
#: file name under ``book/figures/`` and alt text.
ANIMATIONS: dict[str, dict] = {
    "conv-no-padding": _spec("conv-no-padding", size=5, kernel=3),
    "conv-same-padding": _spec("conv-same-padding", size=5, kernel=3, padding=1),
    "conv-stride-2": _spec("conv-stride-2", size=5, kernel=3, stride=2, padding=1),
    "conv-dilation-2": _spec("conv-dilation-2", size=7, kernel=3, dilation=2),
    "pool-ceil-mode": _spec(
        "pool-ceil-mode", size=5, kernel=2, stride=2, ceil_mode=True, kind="maxpool"
    ),
}


def write_animations(
    folder: str | Path, names: Sequence[str] | None = None
) -> list[Path]:
    """Write the GIFs of :data:`ANIMATIONS` (or only ``names``) into ``folder``."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for name in names or ANIMATIONS:
        spec = ANIMATIONS[name]
        path = folder / spec["file"]
        write_conv_gif(path, **spec["config"])
        written.append(path)
    return written
