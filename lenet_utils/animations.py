"""The convolution animations, in the style of Dumoulin and Visin's *conv_arithmetic*.

One job: a kernel window sliding over an input grid and filling an output grid, as
data (:func:`conv_frames`, :func:`conv_formula`, :func:`conv_title`,
:func:`conv_alt_text`) and as a drawing (:class:`ConvScene`, :func:`conv_animation` for
notebooks). The number of window positions comes from
:func:`lenet_utils.arithmetic.output_size`. :data:`ANIMATIONS` lists the five the book
shows; ``python scripts/make_figures.py`` writes them as GIFs into ``book/figures/``.
"""

from __future__ import annotations

from typing import Literal, NamedTuple

from matplotlib import animation
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle

from .arithmetic import output_size

__all__ = [
    "ANIMATIONS",
    "DEFAULTS",
    "FLAT_COLOURS",
    "ConvScene",
    "Frame",
    "WindowKind",
    "conv_alt_text",
    "conv_animation",
    "conv_formula",
    "conv_frames",
    "conv_title",
]

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


#: The defaults of :func:`conv_frames`'s optional arguments: a config dict (as in
#: :data:`ANIMATIONS`) merged over them names every argument.
DEFAULTS: dict[str, object] = dict(
    stride=None, padding=0, dilation=1, ceil_mode=False, kind="conv"
)


def _formula(
    size: int, kernel: int, stride: int, padding: int, dilation: int, ceil_mode: bool
) -> int:
    """The textbook formula alone, before PyTorch drops a last window that would start in
    the right-hand padding (what output_size returns is after it)."""
    steps = size + 2 * padding - dilation * (kernel - 1) - 1
    return (-(-steps // stride) if ceil_mode else steps // stride) + 1


def _stride_default(kind: str, kernel: int, stride: int | None) -> int:
    """PyTorch's default: 1 for a convolution, the kernel size for pooling."""
    return (1 if kind == "conv" else kernel) if stride is None else stride


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
    n = output_size(size, kernel, stride, padding, dilation, ceil_mode, kind=kind)
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
    stride = _stride_default(kind, kernel, stride)
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
    formula = _formula(size, kernel, stride, padding, dilation, ceil_mode)
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
    floor = _formula(size, kernel, stride, padding, dilation, False)
    ceil = _formula(size, kernel, stride, padding, dilation, True)
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
    if ceil_mode and n > _formula(size, kernel, stride, padding, dilation, False):
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

#: Every flat colour a scene draws, texts and lines included: a GIF's palette keeps
#: them exact (scripts/make_figures.py).
FLAT_COLOURS: tuple[str, ...] = ("white", "black", _IN_FILL, _IN_EDGE, _PAD_EDGE)
FLAT_COLOURS += (_WINDOW, _OUT_DONE, _OUT_NOW, _OUT_EDGE, _OUTSIDE)
FLAT_COLOURS += ("0.15", "0.3", "0.4", "0.75")


class ConvScene:
    """The drawing of one animation: grids drawn once, then :meth:`show` moves the
    window and fills the output. ``config`` holds :func:`conv_frames`'s arguments."""

    def __init__(self, config: dict) -> None:
        cfg = {**DEFAULTS, **config}
        size, kernel, padding = cfg["size"], cfg["kernel"], cfg["padding"]
        dilation, ceil_mode, kind = cfg["dilation"], cfg["ceil_mode"], cfg["kind"]
        stride = _stride_default(kind, kernel, cfg["stride"])
        self.size, self.padding = size, padding
        self.frames = conv_frames(
            size, kernel, stride, padding, dilation, ceil_mode=ceil_mode, kind=kind
        )
        n = self.frames[-1].output_cell[0] + 1
        # the grid runs from the padding to the last cell a window reads
        lo = -padding
        hi = max(
            max(r for f in self.frames for r, _ in f.input_cells), size + padding - 1
        )
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
        self.fig = fig
        for r in range(lo, hi + 1):
            for c in range(lo, hi + 1):
                if 0 <= r < size and 0 <= c < size:
                    kw = dict(facecolor=_IN_FILL, edgecolor=_IN_EDGE, lw=1.0)
                elif self._padded(r, c):
                    kw = dict(facecolor="white", edgecolor=_PAD_EDGE, lw=1.0, ls="--")
                else:  # past the padding: only ceil_mode windows reach here
                    kw = dict(facecolor="white", edgecolor="0.75", lw=0.8, ls=":")
                ax.add_patch(Rectangle(self._xy(r, c), 1, 1, **kw))
        y_out = (cols_in - n) / 2  # output grid centred beside the input
        ax.annotate(
            "",
            xy=(x_out - 0.3, cols_in / 2),
            xytext=(cols_in + 0.3, cols_in / 2),
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
        self.window = [
            Rectangle(
                (0, 0), 1, 1, facecolor=_WINDOW, alpha=0.5, edgecolor=_WINDOW, lw=2
            )
            for _ in self.frames[0].input_cells
        ]
        for p in self.window:
            ax.add_patch(p)
        pad_text = f", padding {padding}" if padding else ""
        caption = dict(ha="center", va="top", fontsize=10)
        ax.text(
            cols_in / 2, cols_in + 0.35, f"input {size}x{size}{pad_text}", **caption
        )
        ax.text(x_out + n / 2, y_out + n + 0.35, f"output {n}x{n}", **caption)
        fig.text(
            0.5,
            1 - 0.08 / height,
            conv_title(**cfg),
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
        self.show(0)

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
    config = dict(
        size=size,
        kernel=kernel,
        stride=stride,
        padding=padding,
        dilation=dilation,
        ceil_mode=ceil_mode,
        kind=kind,
    )
    scene = ConvScene(config)
    steps = list(range(len(scene.frames))) + [len(scene.frames) - 1] * pause
    anim = animation.FuncAnimation(
        scene.fig, scene.show, frames=steps, interval=1000 / fps, blit=False
    )
    anim._lenet_scene = scene  # keeps the scene (and its figure) alive with it
    return anim


def _spec(name: str, **config) -> dict:
    full = {**DEFAULTS, **config}
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
