"""Draw book/figures/chapter-dependencies.png, the chapter graph on the instructors' page.

Run from the repository root after changing the chapters: python book/figures/chapter_dependencies.py
"""

import textwrap
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

from lenet_utils.records import CHAPTERS as NAMES

# Where each chapter's box goes: (column, row, needs a GPU for its full run to be quick),
# in the book's order; the names come from lenet_utils.records.CHAPTERS.
PLACES = [
    (0, 0, False),
    (1, 1, False),
    (2, 0, False),
    (3, 0, False),
    (4, 1, False),
    (4, -1, False),
    (5, -1, False),
    (4, 0, True),
    (5, 0, True),
]
CHAPTERS = [
    (f"{i:02d}", textwrap.fill(name, 17), *place)
    for i, (name, place) in enumerate(zip(NAMES, PLACES, strict=True), start=1)
]
# (from, to, required?) required = solid arrow; helpful = dashed
EDGES = [
    ("01", "02", True),
    ("01", "03", True),
    ("02", "03", False),
    ("03", "04", True),
    ("04", "05", True),
    ("01", "05", True),
    ("04", "06", True),
    ("06", "07", True),
    ("04", "08", True),
    ("07", "09", True),
    ("08", "09", True),
]


def main() -> None:
    pos = {num: (col * 2.2, row * 1.4) for num, _, col, row, _ in CHAPTERS}
    fig, ax = plt.subplots(figsize=(11, 4.4))
    boxes = {}
    for num, title, *_ in CHAPTERS:
        x, y = pos[num]
        boxes[num] = ax.text(
            x,
            y,
            f"{num}\n{title}",
            ha="center",
            va="center",
            fontsize=9,
            bbox=dict(boxstyle="round,pad=0.5", fc="#e8f0fb", ec="#3465a4", lw=1.2),
        )
    fig.canvas.draw()  # lay the boxes out, so arrows can end at their edges
    for src, dst, required in EDGES:
        ax.annotate(
            "",
            xy=pos[dst],
            xytext=pos[src],
            arrowprops=dict(
                arrowstyle="-|>",
                lw=1.5,
                ls="-" if required else "--",
                color="0.3",
                patchA=boxes[src].get_bbox_patch(),
                patchB=boxes[dst].get_bbox_patch(),
                shrinkA=3,
                shrinkB=3,
                connectionstyle="arc3,rad=-0.15"
                if src == "01" and dst == "05"
                else "arc3",
            ),
        )
    ax.set_xlim(-1.0, 5 * 2.2 + 1.0)
    ax.set_ylim(-2.2, 2.2)
    ax.axis("off")
    ax.set_title(
        "Chapter dependencies: solid arrows are prerequisites, dashed ones are helpful"
    )
    fig.tight_layout()
    out = Path(__file__).with_name("chapter-dependencies.png")
    fig.savefig(out, dpi=110)
    print("wrote", out)


if __name__ == "__main__":
    main()
