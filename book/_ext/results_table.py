"""Sphinx directive ``results-table``: renders every JSON record in ``results/`` as one table.

The records are written by ``lenet_utils.records.record_result`` (training runs and, with
``kind: "bench"``, the benchmark), in its schema; the page's columns are defined here. The
page is rebuilt from them on every book build, so it cannot drift from what the runs
recorded.
"""

from __future__ import annotations

import json

from pathlib import Path

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
    ("train_seconds", "train s"),
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
    ("top1", "test top-1 %"),
    ("train_seconds", "train s"),
    ("device", "device"),
    ("provenance", "run (torch, commit, date)"),
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


def _value(key: str, record: dict):
    if key == "chapter" and record.get("chapter") in CHAPTERS:
        return f"{CHAPTERS.index(record['chapter']) + 1}. {record['chapter']}"
    if key == "provenance":
        return (
            f"torch {record.get('torch')}, {record.get('commit')}, {record.get('date')}"
        )
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
        if kind == "exercise":
            return [_table(EXERCISE_COLUMNS, runs)]
        if kind == "bench":
            return bench_tables(runs)
        return [_table(COLUMNS, runs)]


def bench_tables(runs: list[dict]) -> list[nodes.Node]:
    """Each benchmark's heading, then its table of rungs."""
    out: list[nodes.Node] = []
    for r in runs:
        out += [nodes.paragraph(text=_bench_heading(r))]
        out += [_table(bench_columns(r["rungs"]), r["rungs"])]
    return out


def _table(columns, rows) -> nodes.table:
    """A docutils table (built as nodes, so it renders the same under MyST and reST)."""
    table = nodes.table(classes=["results-table"])
    group = nodes.tgroup(cols=len(columns))
    table += group
    group += [nodes.colspec(colwidth=1) for _ in columns]

    def row(cells) -> nodes.row:
        out = nodes.row()
        for text in cells:
            entry = nodes.entry()
            para = nodes.paragraph()
            para += nodes.strong(text=text) if text == "NO" else nodes.Text(text)
            entry += para
            out += entry
        return out

    head, body = nodes.thead(), nodes.tbody()
    head += row(title for _, title in columns)
    for r in rows:
        body += row(_cell(key, _value(key, r)) for key, _ in columns)
    group += [head, body]
    return table


def _bench_heading(record: dict) -> str:
    speed = record.get("speedup")
    return (
        f"{record['dataset']}, {record['model']}, on {record['device']} (torch {record['torch']}, "
        f"commit {record['commit']}, {record['date']}, {record.get('epochs', '?')} epochs per rung): "
        f"best rung '{record.get('best_rung')}', "
        + (f"{speed}x the baseline's images/s." if speed else "no baseline.")
    )


def setup(app):
    app.add_directive("results-table", ResultsTable)
    return {"version": "0.1", "parallel_read_safe": True, "parallel_write_safe": True}
