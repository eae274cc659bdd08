"""Sphinx directive ``chapter-times``: the instructors' table of chapter times, from one place each.

- Reading and exercise minutes: each chapter's own "In this chapter" line,
  ``**Time:** about 60 minutes to read, plus 30 for the exercises.``
- Training time of the full run on a 2-core CPU: the results records (``results/``), the sum of
  the chapter's main runs; the chapter's Time line states the same figure, rounded by
  :func:`rounded_minutes` ("... about 3 minutes of training on a 2-core CPU ..."), and
  ``tests/test_chapter_times.py`` checks that the two agree.

What neither can say (what a chapter trains, what a GPU does for it, how long a chapter without
training takes) is :data:`HARDWARE`, below. A notebook whose Time line cannot be read, or that
states another training time than its records, is a build warning (an error under ``-W``).
"""

from __future__ import annotations

import json
import math
import re
from pathlib import Path

from docutils import nodes
from sphinx.util import logging
from sphinx.util.docutils import SphinxDirective

from lenet_utils.records import CHAPTERS
from results_table import read_records, text_table

logger = logging.getLogger(__name__)

#: The Time line's required form; its paragraph may wrap over several source lines.
TIME = re.compile(
    r"\*\*Time:\*\* about (\d+) minutes to read, plus (\d+) for the exercises\."
)
#: A training chapter's figure, in the same paragraph: "about 3 minutes of training on a
#: 2-core CPU" (or "under a minute of training on a 2-core CPU").
TRAINING = re.compile(
    r"(?:about (\d+) minutes?|under a minute) of training on a 2-core CPU"
)

#: The kinds of record a chapter's full run writes (an exercise's run is not part of it).
MAIN_KINDS: tuple[str, ...] = ("train", "bench")

#: Per chapter: what its full run trains, the CPU column for a chapter that records no
#: training, and what a GPU does for it.
HARDWARE: dict[str, tuple[str, str | None, str]] = {
    "The paper's arithmetic": ("no", "seconds", "not needed"),
    "Building blocks by hand": ("no", "under a minute", "not needed"),
    "LeNet-5 in PyTorch": ("no", "seconds", "not needed"),
    "MNIST": ("4 runs × 15 epochs (modern: 3 seeds)", None, "helpful"),
    "The 1998 LeNet-5, faithfully": ("3 models × 3 seeds × 20 epochs", None, "helpful"),
    "CIFAR-10": ("4 runs × 30 epochs (the recipe: 3 seeds)", None, "recommended"),
    "Downscaled ImageNet": (
        "1 model × 3 seeds × 30 epochs",
        None,
        "recommended (required for full Imagenet32)",
    ),
    "Fast training on the GPU": (
        "6 pipelines and 7 batch sizes × 10 epochs, 3 sprints × 2 epochs",
        None,
        "the subject of the chapter: runs on a CPU, but its point is the GPU",
    ),
    "Beyond one GPU": (
        "1 and 2 processes × 5 epochs",
        None,
        "several GPUs for the real thing; the chapter runs on a CPU",
    ),
}

HEADER = (
    "chapter",
    "reading",
    "exercises",
    "trains?",
    "full run on a 2-core CPU",
    "GPU",
)


def chapter_notebooks(root: Path) -> list[Path]:
    """The chapters' notebooks, ``notebooks/NN_*.ipynb``, in the book's order."""
    return sorted((root / "notebooks").glob("[0-9][0-9]_*.ipynb"))


def chapter_name(notebook: Path) -> str:
    """The chapter's name in the records: ``04_mnist.ipynb`` -> ``CHAPTERS[3]``."""
    return CHAPTERS[int(notebook.name[:2]) - 1]


def _first_cell(notebook: Path) -> str:
    return "".join(
        json.loads(notebook.read_text(encoding="utf-8"))["cells"][0]["source"]
    )


def chapter_title(notebook: Path) -> str:
    """The notebook's heading (the first cell's ``# ...`` line)."""
    first = _first_cell(notebook).splitlines()[0]
    return first.removeprefix("# ").strip()


def time_paragraph(notebook: Path) -> str:
    """The first cell's ``**Time:**`` paragraph, on one line; "" when there is none."""
    text = _first_cell(notebook)
    start = text.find("**Time:**")
    if start < 0:
        return ""
    lines = []
    for line in text[start:].splitlines():
        if not line.strip() or line.lstrip().startswith(("```", ":::")):
            break
        lines.append(line.strip())
    return " ".join(lines)


def parse_time(notebook: Path) -> tuple[int, int, int | None]:
    """(reading, exercise, training) minutes stated by the notebook; training is ``None``
    where it states none and 0 for "under a minute". Raises ``ValueError`` naming the
    notebook and the expected form when the Time line is missing or unreadable."""
    paragraph = time_paragraph(notebook)
    found = TIME.search(paragraph)
    if not found:
        raise ValueError(
            f"{notebook.name}: its first cell needs a line of the form "
            "'**Time:** about N minutes to read, plus M for the exercises.'; "
            f"found {paragraph or 'no **Time:** line'!r}"
        )
    training = TRAINING.search(paragraph)
    minutes = None if training is None else int(training.group(1) or 0)
    return int(found.group(1)), int(found.group(2)), minutes


def is_main_run(record: dict, chapter: str) -> bool:
    """A record of the chapter's own full run on a CPU (chapter 8's ladder, sweep and
    sprint included): not an exercise's run, not a variant (``differs``), not a GPU run."""
    return (
        record.get("chapter") == chapter
        and record.get("kind", "train") in MAIN_KINDS
        and not record.get("differs")
        and str(record.get("device", "")).startswith("CPU")
    )


def _training(record: dict) -> tuple:
    """What identifies one training: a model evaluated two ways (chapter 7's single view and
    flip TTA) writes two records of the same training, with the same time."""
    keys = ("commit", "params", "epochs", "train_seconds")
    return tuple(record.get(k) for k in keys)


def run_seconds(record: dict) -> float:
    """A record's training time; a benchmark trains every rung, so its rungs' sum."""
    if record.get("kind") == "bench" and record.get("rungs"):
        return sum(r["epoch_s"] * r["epochs"] for r in record["rungs"])
    return float(record["train_seconds"])


def training_seconds(records: list[dict], chapter: str) -> float | None:
    """The chapter's full run's training time, or ``None`` when it records no training."""
    runs = {_training(r): r for r in records if is_main_run(r, chapter)}
    return sum(run_seconds(r) for r in runs.values()) if runs else None


def rounded_minutes(seconds: float) -> int:
    """Seconds as the whole minutes a chapter states (halves round up; 0: under a minute)."""
    return math.floor(seconds / 60 + 0.5)


def cpu_column(seconds: float) -> str:
    """The table's text for a training time: ``about 3 min`` or ``under a minute``."""
    minutes = rounded_minutes(seconds)
    return f"about {minutes} min" if minutes else "under a minute"


def rows(root: Path) -> tuple[list[list[str]], list[str]]:
    """The table's rows, one per chapter, and a message for each disagreement found."""
    records = read_records(root / "results")
    out, problems = [], []
    for notebook in chapter_notebooks(root):
        chapter = chapter_name(notebook)
        trains, untrained, gpu = HARDWARE[chapter]
        try:
            reading, exercises, stated = parse_time(notebook)
            reading_cell, exercise_cell = f"{reading} min", f"{exercises} min"
        except ValueError as err:
            problems.append(str(err))
            reading_cell = exercise_cell = "–"
            stated = None
        seconds = training_seconds(records, chapter)
        if seconds is None:
            cpu = untrained or "–"
        else:
            cpu = cpu_column(seconds)
            if reading_cell != "–" and stated != rounded_minutes(seconds):
                problems.append(
                    f"{notebook.name}: its Time line says {stated} minutes of training "
                    f"on a 2-core CPU, the records {seconds:.0f} s "
                    f"({rounded_minutes(seconds)} minutes)"
                )
        title = f"{int(notebook.name[:2])}. {chapter_title(notebook)}"
        out.append([title, reading_cell, exercise_cell, trains, cpu, gpu])
    return out, problems


def table(body: list[list[str]]) -> nodes.table:
    """A docutils table with :data:`HEADER` and these rows."""
    return text_table(list(HEADER), body, "chapter-times")


class ChapterTimes(SphinxDirective):
    """``{chapter-times}``: one row per chapter, from the notebooks and the records."""

    has_content = False

    def run(self) -> list[nodes.Node]:
        root = Path(self.env.srcdir)
        for path in [*chapter_notebooks(root), *(root / "results").glob("*.json")]:
            self.env.note_dependency(str(path))
        body, problems = rows(root)
        for problem in problems:
            logger.warning(f"chapter-times: {problem}", location=self.get_location())
        return [table(body)]


def setup(app):
    app.add_directive("chapter-times", ChapterTimes)
    return {"version": "0.1", "parallel_read_safe": True, "parallel_write_safe": True}
