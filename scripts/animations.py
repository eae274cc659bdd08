"""The convolution animations, in the style of Dumoulin and Visin's *conv_arithmetic*.

One job: a kernel window sliding over an input grid and filling an output grid, as
data (:func:`conv_frames`, :func:`conv_formula`, :func:`conv_title`,
:func:`conv_alt_text`) and as a drawing (:class:`ConvScene`). Every number (the output
size, the default stride, the rules a layer must follow) comes from
:mod:`lenet_utils.arithmetic`, with its error messages. :data:`ANIMATIONS` lists the
five the book shows; ``python scripts/make_figures.py``, the only user of this file,
writes them as GIFs into ``book/figures/``.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import NamedTuple

from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle
from matplotlib.text import Text

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # this checkout's package

from lenet_utils.architecture import OPERATIONS  # noqa: E402
from lenet_utils.arithmetic import (  # noqa: E402
    LAYER_KINDS,
    output_size_and_formula,
    pytorch_stride,
)

__all__ = [
    "ANIMATIONS",
    "FLAT_COLOURS",
    "ConvScene",
    "Window",
    "conv_alt_text",
    "conv_frames",
    "conv_title",
]

Cell = tuple[int, int]


class Window(NamedTuple):
    """One animated layer on a square input: :func:`lenet_utils.arithmetic.output_size`'s
    arguments, each a single int (``stride=None``: PyTorch's default), and ``kind``, a key
    of :data:`lenet_utils.arithmetic.LAYER_KINDS`."""

    size: int
    kernel: int
    stride: int | None = None
    padding: int = 0
    dilation: int = 1
    ceil_mode: bool = False
    kind: str = "conv"

    @property
    def step(self) -> int:
        """The stride PyTorch uses (``stride``, or the default of ``kind``)."""
        return int(pytorch_stride(self.stride, self.kernel, self.kind))

    def outputs(self, *, ceil_mode: bool | None = None, formula: bool = False) -> int:
        """Window positions along one axis, from the arithmetic: PyTorch's count, or with
        ``formula`` the textbook formula's (before PyTorch drops a last ``ceil_mode``
        window that would start in the right-hand padding)."""
        ceil = self.ceil_mode if ceil_mode is None else ceil_mode
        geometry = (self.size, self.kernel, self.stride, self.padding, self.dilation)
        sizes = output_size_and_formula(
            geometry, ceil, kind=self.kind, name="animation"
        )
        n = sizes[1] if formula else sizes[0]
        if not isinstance(n, int):  # a pair somewhere: the grids are drawn square
            raise ValueError(
                f"animation: the grids are square; give size, kernel, stride, padding "
                f"and dilation as single ints, got {self}"
            )
        return n

    def floor_outputs(self) -> int:
        """Window positions without ``ceil_mode``: 0 where only ``ceil_mode`` lets a
        window overhang the input (the arithmetic refuses the layer without it)."""
        try:
            return self.outputs(ceil_mode=False)
        except ValueError:  # the ceil_mode layer passed every other rule
            return 0


class Frame(NamedTuple):
    """One step of the animation: the output cell computed and the input cells it reads.

    Cells are ``(row, column)`` in the *unpadded* input's coordinates: ``-1`` is the first
    padding row, ``size`` the first row past the input. ``input_cells`` lists the kernel's
    cells in row-major kernel order, padding and overhang included.
    """

    output_cell: Cell
    input_cells: tuple[Cell, ...]


def conv_frames(window: Window) -> list[Frame]:
    """Every window position of a square convolution or pooling, in the order computed.

    :meth:`Window.outputs` gives the positions per axis; the window of output ``(i, j)``
    starts at input pixel ``(i * stride - padding, j * stride - padding)`` and takes every
    ``dilation``-th pixel.
    """
    n, stride, padding = window.outputs(), window.step, window.padding
    offsets = [d * window.dilation for d in range(window.kernel)]
    frames = []
    for i in range(n):
        for j in range(n):
            r0, c0 = i * stride - padding, j * stride - padding
            cells = tuple((r0 + a, c0 + b) for a in offsets for b in offsets)
            frames.append(Frame((i, j), cells))
    return frames


def conv_formula(window: Window) -> str:
    """The output-size formula with this layer's numbers and the result, e.g.
    ``"floor((5 + 2×1 − 3) / 2) + 1 = 3"``."""
    size, kernel, _, padding, dilation, ceil_mode, _ = window
    n, formula = window.outputs(), window.outputs(formula=True)
    terms = f"{size}"
    if padding:
        terms += f" + 2×{padding}"
    if dilation == 1:
        terms += f" − {kernel}"
    else:
        terms += f" − {dilation}×({kernel} − 1) − 1"
    rounding = "ceil" if ceil_mode else "floor"
    text = f"{rounding}(({terms}) / {window.step}) + 1"
    if formula != n:
        return f"{text} = {formula}, less {formula - n} (starts in the padding) = {n}"
    return f"{text} = {n}"


def _describe(window: Window) -> str:
    """The configuration in words, e.g. ``"5x5 input, 3x3 kernel, stride 1, padding 0"``."""
    kernel, kind = window.kernel, window.kind
    what = "kernel" if kind == "conv" else OPERATIONS[LAYER_KINDS[kind]]
    parts = [f"{kernel}x{kernel} {what}", f"stride {window.step}"]
    parts.append(f"padding {window.padding}")
    if window.dilation != 1:
        parts.append(f"dilation {window.dilation}")
    if window.ceil_mode:
        parts.append("ceil_mode=True")
    return f"{window.size}x{window.size} input, " + ", ".join(parts)


def conv_title(window: Window) -> str:
    """Two lines: the configuration, then :func:`conv_formula`."""
    return _describe(window) + "\n" + conv_formula(window)


def _ceil_note(window: Window) -> str:
    """Why PyTorch keeps the last, overhanging window (and when it would drop one)."""
    n, stride, padding = window.outputs(), window.step, window.padding
    ceil, last = window.outputs(formula=True), (n - 1) * stride - padding
    if ceil == window.floor_outputs():
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


def conv_alt_text(window: Window) -> str:
    """A short description of the animation for readers who cannot see it."""
    size, kernel, _, padding, dilation, ceil_mode, kind = window
    n = window.outputs()
    what = "pooling window" if kind != "conv" else "kernel"
    text = f"Animation: a {kernel}x{kernel} {what} slides over a {size}x{size} input"
    if padding:
        text += (
            f" padded with a border of zeros {padding} pixel{'s' * (padding > 1)} wide"
        )
    else:
        text += " with no padding"
    text += f", stride {window.step}"
    if dilation != 1:
        nth = {2: "second", 3: "third", 4: "fourth"}.get(dilation, f"{dilation}th")
        text += f", dilation {dilation} (it reads every {nth} pixel)"
    text += f"; each of its {n * n} positions fills one cell of the {n}x{n} output."
    if ceil_mode and n > window.floor_outputs():
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
_GAP = 1.6  # cells between the input grid and the output grid
_TITLE_H, _GRID_H, _STEP_H = 0.62, 2.5, 0.3  # inches: title, grids with captions, step

#: Every flat colour a scene draws, texts and lines included: a GIF's palette keeps
#: them exact (scripts/make_figures.py).
FLAT_COLOURS: tuple[str, ...] = ("white", "black", _IN_FILL, _IN_EDGE, _PAD_EDGE)
FLAT_COLOURS += (_WINDOW, _OUT_DONE, _OUT_NOW, _OUT_EDGE, _OUTSIDE)
FLAT_COLOURS += ("0.15", "0.3", "0.4", "0.75")


class ConvScene:
    """The drawing of one animation: grids drawn once, then :meth:`show` moves the
    window and fills the output."""

    def __init__(self, window: Window) -> None:
        self.size, self.padding = window.size, window.padding
        self.frames = conv_frames(window)
        self.n = self.frames[-1].output_cell[0] + 1
        # the grid runs from the padding to the last cell a window reads
        self.lo = -self.padding
        last = max(r for f in self.frames for r, _ in f.input_cells)
        self.hi = max(last, self.size + self.padding - 1)
        self.cols_in = self.hi - self.lo + 1
        note = _ceil_note(window) if window.ceil_mode else ""
        note_h = 0.17 * (note.count("\n") + 1) + 0.08 if note else 0.0
        self.height = _TITLE_H + _GRID_H + _STEP_H + note_h
        self.fig, ax = self._figure(note_h)
        self._draw_input(ax)
        self._draw_output(ax)
        self.window = [
            Rectangle(
                (0, 0), 1, 1, facecolor=_WINDOW, alpha=0.5, edgecolor=_WINDOW, lw=2
            )
            for _ in self.frames[0].input_cells
        ]
        for p in self.window:
            ax.add_patch(p)
        self._draw_captions(ax)
        self.step_text = self._draw_texts(window, note, note_h)
        self.show(0)

    def _figure(self, note_h: float) -> tuple[Figure, Axes]:
        """The figure and the grids' axes, in cell units, row 0 at the top."""
        height = self.height
        # not a pyplot figure: nothing to close, and a notebook shows only the animation
        fig = Figure(figsize=(_ANIM_W, height), dpi=_ANIM_DPI, facecolor="white")
        FigureCanvasAgg(fig)
        ax = fig.add_axes((0.02, (_STEP_H + note_h) / height, 0.96, _GRID_H / height))
        ax.set_aspect("equal")
        ax.axis("off")
        ax.set_xlim(-0.2, self.cols_in + _GAP + max(self.n, 3) + 0.2)
        ax.set_ylim(self.cols_in + 1.0, -0.2)  # row 0 at the top; room for the captions
        return fig, ax

    def _draw_input(self, ax: Axes) -> None:
        """The input grid: image cells, dashed padding, dotted cells past the padding."""
        for r in range(self.lo, self.hi + 1):
            for c in range(self.lo, self.hi + 1):
                if 0 <= r < self.size and 0 <= c < self.size:
                    kw = dict(facecolor=_IN_FILL, edgecolor=_IN_EDGE, lw=1.0)
                elif self._padded(r, c):
                    kw = dict(facecolor="white", edgecolor=_PAD_EDGE, lw=1.0, ls="--")
                else:  # past the padding: only ceil_mode windows reach here
                    kw = dict(facecolor="white", edgecolor="0.75", lw=0.8, ls=":")
                ax.add_patch(Rectangle(self._xy(r, c), 1, 1, **kw))

    def _draw_output(self, ax: Axes) -> None:
        """The arrow and the output grid, centred beside the input."""
        x_out, y_out, n = self.cols_in + _GAP, (self.cols_in - self.n) / 2, self.n
        ax.annotate(
            "",
            xy=(x_out - 0.3, self.cols_in / 2),
            xytext=(self.cols_in + 0.3, self.cols_in / 2),
            arrowprops=dict(arrowstyle="-|>", color="0.4", lw=1.5),
        )
        self.out_cells: dict[tuple[int, int], Rectangle] = {}
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

    def _draw_captions(self, ax: Axes) -> None:
        """``input 5x5, padding 1`` under the input, ``output 3x3`` under the output."""
        x_out, y_out, n = self.cols_in + _GAP, (self.cols_in - self.n) / 2, self.n
        pad_text = f", padding {self.padding}" if self.padding else ""
        caption = dict(ha="center", va="top", fontsize=10)
        ax.text(
            self.cols_in / 2,
            self.cols_in + 0.35,
            f"input {self.size}x{self.size}{pad_text}",
            **caption,
        )
        ax.text(x_out + n / 2, y_out + n + 0.35, f"output {n}x{n}", **caption)

    def _draw_texts(self, window: Window, note: str, note_h: float) -> Text:
        """The title, the ``ceil_mode`` note if any, and the step line (returned)."""
        fig, height = self.fig, self.height
        top = dict(ha="center", va="top", fontsize=10.5, linespacing=1.4)
        fig.text(0.5, 1 - 0.08 / height, conv_title(window), **top)
        if note:
            bottom = dict(ha="center", va="bottom", fontsize=9, linespacing=1.3)
            fig.text(0.5, 0.06 / height, note, color="0.15", **bottom)
        step = dict(ha="center", va="center", fontsize=9.5, color="0.3")
        return fig.text(0.5, (note_h + _STEP_H / 2) / height, "", **step)

    def _xy(self, r: int, c: int) -> tuple[int, int]:
        """Where input cell ``(r, c)`` is drawn: padding row -padding at the top."""
        return c + self.padding, r + self.padding

    def _padded(self, r: int, c: int) -> bool:
        """Whether input cell ``(r, c)`` lies in the input or its padding."""
        lo, hi = -self.padding, self.size + self.padding
        return lo <= r < hi and lo <= c < hi

    def show(self, step: int) -> list:
        """Draw the window of frame ``step`` and the output filled up to it."""
        frame = self.frames[step]
        for patch, (r, c) in zip(self.window, frame.input_cells):
            outside = not self._padded(r, c)
            patch.set_xy(self._xy(r, c))
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


#: The five animations of the book, by name (the GIF is ``book/figures/<name>.gif``).
ANIMATIONS: dict[str, Window] = {
    "conv-no-padding": Window(size=5, kernel=3),
    "conv-same-padding": Window(size=5, kernel=3, padding=1),
    "conv-stride-2": Window(size=5, kernel=3, stride=2, padding=1),
    "conv-dilation-2": Window(size=7, kernel=3, dilation=2),
    "pool-ceil-mode": Window(
        size=5, kernel=2, stride=2, ceil_mode=True, kind="maxpool"
    ),
}
