"""Sphinx directive ``results-table``: renders every JSON record in ``results/`` as one table.

The records are written by ``lenet_utils.records.record_result`` (training runs and, with
``kind: "bench"``, the benchmark), in its schema; the page's columns are defined here. The
page is rebuilt from them on every book build, so it cannot drift from what the runs
recorded. Records of one run that differ only in their seed are one row
(:func:`group_seeds`): mean ± sample standard deviation, each seed listed under the table.
"""

from __future__ import annotations

import json
import statistics
from pathlib import Path
from typing import NamedTuple

from docutils import nodes
from sphinx.util.docutils import SphinxDirective

from lenet_utils.records import CHAPTERS, KINDS

#: The results page's columns for training runs: (field, column title).
COLUMNS: tuple[tuple[str, str], ...] = (
    ("chapter", "chapter"),
    ("dataset", "dataset"),
    ("model", "model"),
    ("params", "parameters"),
    ("epochs", "epochs"),
    ("top1", "top-1 %"),
    ("top5", "top-5 %"),
    ("target", "target"),
    ("met", "met"),
    ("time", "train time"),
    ("device", "device"),
    ("provenance", "run (torch, commit, date)"),
)

#: The results page's columns for the runs behind the exercises' solutions.
EXERCISE_COLUMNS: tuple[tuple[str, str], ...] = (
    ("chapter", "chapter"),
    ("exercise", "exercise"),
    ("dataset", "dataset"),
    ("model", "setting"),
    ("epochs", "epochs"),
    ("train_top1", "train top-1 %"),
    ("top1", "top-1 %"),
    ("split", "scored on"),
    ("time", "train time"),
    ("device", "device"),
    ("provenance", "run (torch, commit, date)"),
)

#: The course's accuracy goals for LeNet-5-sized networks, each the mean over seeds on the
#: test split: (chapter, model, top-1 %, top-5 % or None).
GOALS: tuple[tuple[str, str, float, float | None], ...] = (
    ("MNIST", "modern LeNet-5", 99.5, None),
    ("CIFAR-10", "modern LeNet-5 + batch norm", 75.0, None),
    ("Downscaled ImageNet", "modern LeNet-5 + batch norm", 25.0, 50.0),
)

#: The results page's columns for each rung of a benchmark record.
BENCH_COLUMNS: tuple[tuple[str, str], ...] = (
    ("rung", "rung"),
    ("batch_size", "batch"),
    ("precision", "precision"),
    ("images_per_s", "images/s"),
    ("epoch_s", "s/epoch"),
    ("time_to_99_s", "s to 99%"),
    ("compile_s", "warm-up s"),
    ("peak_mem_mb", "peak MB"),
    ("top1", "top-1 %"),
)

#: Bench fields that only some devices can measure (peak memory: CUDA alone). A ladder
#: none of whose rungs measured one leaves its column out instead of a column of dashes.
MEASURED_WHERE_POSSIBLE: tuple[str, ...] = ("peak_mem_mb",)


#: What makes records one run apart from the seed: such records are one row of the page.
SAME_RUN: tuple[str, ...] = (
    "kind",
    "chapter",
    "dataset",
    "model",
    "device",
    "differs",
    "exercise",
)

#: The figures a row of several seeds gives as mean ± sample standard deviation.
SPREAD_FIELDS: tuple[str, ...] = ("top1", "top5", "train_top1")

#: The times a row of several seeds gives as the mean over its seeds.
TIME_FIELDS: tuple[str, ...] = ("train_seconds", "median_epoch_s", "first_epoch_s")

#: Joins a number to its unit ("± 0.04", "3 seeds", "5.1 s"): a narrow column wraps between
#: them, never inside one.
NBSP = "\u00a0"


class Spread(NamedTuple):
    """One figure over several seeds: the mean, the sample standard deviation (n - 1)."""

    mean: float
    std: float
    seeds: int


def seed_of(record: dict) -> int:
    """The record's seed; records from before seeds were recorded are seed 0."""
    return int(record.get("seed", 0))


def group_seeds(records: list[dict]) -> list[list[dict]]:
    """The records that are one run apart from the seed (same :data:`SAME_RUN` fields),
    together: each group in seed order, the groups in the order of their first record."""
    groups: dict[str, list[dict]] = {}
    for r in records:
        key = json.dumps([r.get(f) for f in SAME_RUN], sort_keys=True, default=str)
        groups.setdefault(key, []).append(r)
    return [sorted(g, key=seed_of) for g in groups.values()]


def seed_row(group: list[dict]) -> dict:
    """The table row of one group of seeds: a lone record as it is; for several, the first
    seed's fields with :data:`SPREAD_FIELDS` as :class:`Spread`, the times as means over
    the seeds, ``met`` counted and the provenance's distinct values."""
    if len(group) == 1:
        return group[0]
    row = dict(group[0])
    for key in SPREAD_FIELDS:
        values = [r[key] for r in group if r.get(key) is not None]
        row[key] = (
            Spread(statistics.mean(values), statistics.stdev(values), len(values))
            if len(values) > 1
            else (values[0] if values else None)
        )
    for key in TIME_FIELDS:
        values = [r.get(key) for r in group]
        row[key] = None if None in values else statistics.mean(values)
    met = [r.get("met") for r in group]
    if None not in met and len(set(met)) > 1:
        row["met"] = f"{sum(met)} of {len(met)}"
    for key in ("torch", "commit", "date"):
        row[key] = " / ".join(dict.fromkeys(str(r.get(key)) for r in group))
    return row


def bench_columns(rungs: list[dict]) -> tuple[tuple[str, str], ...]:
    """The bench table's columns for these rungs: those measured where possible only if
    some rung measured them."""
    return tuple(
        (key, title)
        for key, title in BENCH_COLUMNS
        if key not in MEASURED_WHERE_POSSIBLE
        or any(r.get(key) is not None for r in rungs)
    )


def read_records(folder: Path) -> list[dict]:
    """Every record in ``folder``, in chapter order."""
    records = [json.loads(p.read_text()) for p in sorted(folder.glob("*.json"))]

    def order(r: dict) -> tuple:
        chapter = r.get("chapter")
        index = CHAPTERS.index(chapter) if chapter in CHAPTERS else len(CHAPTERS)
        return (index, r.get("dataset", ""), r.get("model", ""), r.get("device", ""))

    return sorted(records, key=order)


def _time(record: dict) -> str | None:
    """The run's training time: the median epoch (first epoch apart) where it was timed
    per epoch, else the training's wall time."""
    median, first = record.get("median_epoch_s"), record.get("first_epoch_s")
    if median is not None:
        seconds = f"{_seconds(median)}{NBSP}s/epoch"
        return (
            seconds if first is None else f"{seconds} (first {_seconds(first)}{NBSP}s)"
        )
    total = record.get("train_seconds")
    return None if total is None else f"{total:,.1f}{NBSP}s"


def _seconds(value: float) -> str:
    return f"{value:.2f}" if value < 1 else f"{value:,.1f}"


def _value(key: str, record: dict):
    if key == "time":
        return _time(record)
    if key == "chapter" and record.get("chapter") in CHAPTERS:
        return f"{CHAPTERS.index(record['chapter']) + 1}. {record['chapter']}"
    if key == "provenance":
        return (
            f"torch {record.get('torch')}, {record.get('commit')}, {record.get('date')}"
        )
    if key == "split":  # exercise runs name theirs; the others scored the test split
        return "validation" if "valid" in str(record.get("split", "")) else "test"
    if key == "model" and record.get("differs"):  # a variant, never the recipe's run
        changes = ", ".join(f"{k} {v}" for k, v in record["differs"].items())
        return f"{record['model']} (variant: {changes})"
    return record.get(key)


def _cell(key: str, value) -> str:
    if value is None:
        return "–"
    if key == "met":
        return "yes" if value else "NO"
    if key == "params":
        return f"{value:,}"
    if isinstance(value, Spread):
        spread = f"{value.mean:.2f} ±{NBSP}{value.std:.2f}"
        return f"{spread} ({value.seeds}{NBSP}seeds)" if key == "top1" else spread
    if key in ("top1", "top5", "train_top1"):
        return f"{value:.2f}"
    if key == "images_per_s":
        return f"{value:,.0f}"
    if key in ("epoch_s", "time_to_99_s", "compile_s", "peak_mem_mb") and isinstance(
        value, float
    ):
        return f"{value:.3g}" if value < 10 else f"{value:,.1f}"
    return str(value).replace("|", "/")


class ResultsTable(SphinxDirective):
    """``{results-table}`` lists training runs; with ``:kind: bench``, the benchmark ladders;
    with ``:kind: exercise``, the runs behind the exercises' solutions."""

    has_content = False
    option_spec = {"kind": lambda arg: arg.strip()}

    def run(self) -> list[nodes.Node]:
        folder = Path(self.env.srcdir) / "results"
        for path in sorted(folder.glob("*.json")):
            self.env.note_dependency(str(path))
        kind = self.options.get("kind", "train")
        if kind not in KINDS:
            raise self.error(
                f"results-table: unknown kind {kind!r}; use one of {KINDS}"
            )
        runs = [r for r in read_records(folder) if r.get("kind", "train") == kind]
        if not runs:
            what = {"bench": "benchmarks", "exercise": "exercise runs"}.get(
                kind, "runs"
            )
            return [nodes.paragraph(text=f"No {what} have been recorded yet.")]
        if kind == "bench":
            return bench_tables(runs)
        groups = group_seeds(runs)
        columns = EXERCISE_COLUMNS if kind == "exercise" else COLUMNS
        return [_table(columns, [seed_row(g) for g in groups]), *seed_notes(groups)]


def seed_notes(groups: list[list[dict]]) -> list[nodes.Node]:
    """Under a table, each seed's own figures for every row of several seeds."""
    several = [g for g in groups if len(g) > 1]
    if not several:
        return []
    intro = nodes.paragraph(
        text="A row of several seeds gives their mean ± sample standard deviation and "
        "their mean times; each seed's own figures:"
    )
    items = nodes.bullet_list()
    for group in several:
        first = group[0]
        chapter = first.get("chapter")
        number = CHAPTERS.index(chapter) + 1 if chapter in CHAPTERS else chapter
        what = [f"Chapter {number}", first.get("exercise")]
        what += [f"{_value('model', first)} on {first['dataset']}", first["device"]]
        seeds = "; ".join(_seed_figures(r) for r in group)
        item = nodes.list_item()
        item += nodes.paragraph(text=f"{', '.join(w for w in what if w)}: {seeds}.")
        items += item
    return [intro, items]


def _seed_figures(record: dict) -> str:
    """``seed 1: top-1 99.43%, 5.1 s/epoch (first 7.9 s)`` for one record (with its
    top-5 and train top-1 where recorded)."""
    test = "test top-1" if record.get("train_top1") is not None else "top-1"
    titles = (("train_top1", "train top-1"), ("top1", test), ("top5", "top-5"))
    figures = [
        f"{title} {record[key]:.2f}%"
        for key, title in titles
        if record.get(key) is not None
    ]
    time = _time(record)
    return f"seed {seed_of(record)}: " + ", ".join(figures + ([time] if time else []))


def bench_tables(runs: list[dict]) -> list[nodes.Node]:
    """Each benchmark's heading, then its table of rungs."""
    out: list[nodes.Node] = []
    for r in runs:
        out += [nodes.paragraph(text=_bench_heading(r))]
        out += [_table(bench_columns(r["rungs"]), r["rungs"])]
    return out


def _table(columns, rows) -> nodes.table:
    """A results table: a column per (key, title), a row per record."""
    body = [[_cell(key, _value(key, r)) for key, _ in columns] for r in rows]
    keys = [key for key, _ in columns]
    return text_table([title for _, title in columns], body, "results-table", keys)


def text_table(
    header: list[str], body: list[list[str]], css: str, keys: list[str] | None = None
) -> nodes.table:
    """A docutils table of text cells (built as nodes, so it renders the same under MyST
    and reST), a "NO" in bold; the results page and the instructors' page use it. Each
    cell of a column with a key has the class ``col-<key>`` (the phone layout's CSS)."""
    table = nodes.table(classes=[css])
    group = nodes.tgroup(cols=len(header))
    table += group
    group += [nodes.colspec(colwidth=1) for _ in header]

    def row(cells) -> nodes.row:
        out = nodes.row()
        for i, text in enumerate(cells):
            entry = nodes.entry(classes=[f"col-{keys[i]}"] if keys else [])
            para = nodes.paragraph()
            para += nodes.strong(text=text) if text == "NO" else nodes.Text(text)
            entry += para
            out += entry
        return out

    head, rows = nodes.thead(), nodes.tbody()
    head += row(header)
    for cells in body:
        rows += row(cells)
    group += [head, rows]
    return table


def _bench_heading(record: dict) -> str:
    speed = record.get("speedup")
    return (
        f"{record['dataset']}, {record['model']}, on {record['device']} (torch {record['torch']}, "
        f"commit {record['commit']}, {record['date']}, {record.get('epochs', '?')} epochs per rung): "
        f"best rung '{record.get('best_rung')}', "
        + (f"{speed}x the baseline's images/s." if speed else "no baseline.")
    )


def goal_rows(records: list[dict]) -> list[list[str]]:
    """One row per :data:`GOALS` entry and device: the goal, the mean ± std of the seeds'
    test figures, and whether the means reach the goal (and by how much they miss)."""
    rows = []
    for chapter, model, top1, top5 in GOALS:
        runs = [
            r
            for r in records
            if r.get("kind", "train") == "train"
            and (r.get("chapter"), r.get("model")) == (chapter, model)
        ]
        goal = f"top-1 ≥ {top1:g}%" + ("" if top5 is None else f", top-5 ≥ {top5:g}%")
        if not runs:
            rows.append([chapter, model, goal, "not recorded", "–", "–", "–"])
        for group in group_seeds(runs):
            row = seed_row(group)
            missed = [
                (name, want - _mean(row[key]))
                for key, name, want in (
                    ("top1", "top-1", top1),
                    ("top5", "top-5", top5),
                )
                if want is not None and _mean(row[key]) < want
            ]
            result = _cell("top1", row["top1"])
            if top5 is not None:
                result += f"; top-5 {_cell('top5', row['top5'])}"
            met = "yes" if not missed else "NO"
            how = "; ".join(f"{n} short by {gap:.2f} points" for n, gap in missed)
            rows.append([chapter, model, goal, result, met, how or "–", row["device"]])
    return rows


def _mean(value) -> float:
    return value.mean if isinstance(value, Spread) else float(value)


class GoalsTable(SphinxDirective):
    """``{results-goals}``: the course's accuracy goals (:data:`GOALS`) against the records."""

    has_content = False

    def run(self) -> list[nodes.Node]:
        folder = Path(self.env.srcdir) / "results"
        for path in sorted(folder.glob("*.json")):
            self.env.note_dependency(str(path))
        header = ["chapter", "model", "goal (test split)", "result", "met", "missed by"]
        rows = goal_rows(read_records(folder))
        return [text_table(header + ["device"], rows, "results-table")]


def setup(app):
    app.add_directive("results-table", ResultsTable)
    app.add_directive("results-goals", GoalsTable)
    return {"version": "0.1", "parallel_read_safe": True, "parallel_write_safe": True}
