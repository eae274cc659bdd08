"""Draw book/figures/im2col.png, chapter 2's picture of convolution as one matrix product.

Run from the repository root after changing it: python book/figures/im2col.py
"""

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.patches import Rectangle  # noqa: E402

OUT = Path(__file__).with_name("im2col.png")
IMAGE = np.arange(1, 17).reshape(4, 4)  # a 4x4 input, one map
K = 2  # a 2x2 kernel: 3x3 = 9 positions, windows of 4 values
WINDOWS = [(r, c) for r in range(3) for c in range(3)]
COLOURS = {0: "#f4a259", 1: "#5b8ec9"}  # the first two windows, in every panel


def grid(ax, values, x0, y0, title, fills=None):
    """A table of numbers, top-left at (x0, y0), one unit per cell."""
    rows, cols = values.shape
    for r in range(rows):
        for c in range(cols):
            colour = (fills or {}).get((r, c), "white")
            ax.add_patch(Rectangle((x0 + c, y0 - r - 1), 1, 1, fc=colour, ec="0.3"))
            ax.text(x0 + c + 0.5, y0 - r - 0.5, str(values[r, c]), ha="center",
                    va="center", fontsize=13)  # fmt: skip
    ax.text(x0 + cols / 2, y0 + 0.4, title, ha="center", va="bottom", fontsize=13)


def main() -> None:
    fig, ax = plt.subplots(figsize=(10, 3.5))
    fills = {}
    for i, (r, c) in enumerate(WINDOWS[:2]):
        for dr in range(K):
            for dc in range(K):
                fills.setdefault((r + dr, c + dc), COLOURS[i])
    fills[(0, 1)] = "#b9a3c9"  # shared by both windows
    fills[(1, 1)] = "#b9a3c9"
    grid(ax, IMAGE, 0, 4, "input, 4×4")
    for (r, c), colour in fills.items():
        ax.add_patch(Rectangle((c, 4 - r - 1), 1, 1, fc=colour, ec="0.3", alpha=0.6))
    cols = np.array([IMAGE[r : r + K, c : c + K].ravel() for r, c in WINDOWS]).T
    col_fill = {(k, i): COLOURS[i] for i in (0, 1) for k in range(K * K)}
    grid(ax, cols, 6, 4, "unfold: one window per column (4×9)", col_fill)
    kernel = np.array([["w1", "w2", "w3", "w4"]])
    grid(ax, kernel, 16.5, 2.5, "kernel as a row (1×4)")
    ax.text(16.5 + 2, 0.6, "row × matrix = 1×9 outputs,\nreshaped to 3×3", ha="center",
            va="top", fontsize=13)  # fmt: skip
    ax.annotate("", xy=(5.8, 2), xytext=(4.3, 2), arrowprops={"arrowstyle": "-|>"})
    ax.annotate("", xy=(16.3, 2), xytext=(15.3, 2), arrowprops={"arrowstyle": "<|-"})
    ax.set_xlim(-0.3, 21)
    ax.set_ylim(-0.9, 5.2)
    ax.set_aspect("equal")
    ax.axis("off")
    ax.set_title(
        "im2col: each window becomes a column, the convolution one matrix product",
        fontsize=14,
    )
    fig.tight_layout()
    fig.savefig(OUT, dpi=110)
    print(f"wrote {OUT}")


if __name__ == "__main__":
    main()
