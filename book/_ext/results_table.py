"""Sphinx directive ``results-table``: renders every JSON record in ``results/`` as one table.

The records are written by ``lenet_utils.training.record_result`` (training runs) and by the
benchmark (``kind: "bench"``); the page is rebuilt from them on every book build, so it cannot
drift from what the runs recorded.
"""

from __future__ import annotations

import json
from pathlib import Path

from docutils import nodes
from docutils.statemachine import StringList
from sphinx.util.docutils import SphinxDirective

COLUMNS = [
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
    ("torch", "torch"),
    ("commit", "commit"),
    ("date", "date"),
]


def _cell(key: str, value) -> str:
    if value is None:
        return "–"
    if key == "met":
        return "yes" if value else "**no**"
    if key == "params":
        return f"{value:,}"
    if key in ("top1", "top5"):
        return f"{value:.2f}"
    if key == "images_per_s":
        return f"{value:,.0f}"
    if key in ("epoch_s", "time_to_99_s", "compile_s", "peak_mem_mb") and isinstance(value, float):
        return f"{value:.3g}" if value < 10 else f"{value:,.1f}"
    return str(value).replace("|", "/")


class ResultsTable(SphinxDirective):
    """``{results-table}`` lists training runs; with ``:kind: bench``, the benchmark ladders."""

    has_content = False
    option_spec = {"kind": lambda arg: arg.strip()}

    def run(self) -> list[nodes.Node]:
        folder = Path(self.env.srcdir) / "results"
        records = []
        for path in sorted(folder.glob("*.json")):
            self.env.note_dependency(str(path))
            records.append(json.loads(path.read_text()))
        kind = self.options.get("kind", "train")
        runs = [r for r in records if r.get("kind", "train") == kind]
        if not runs:
            return [nodes.paragraph(text=f"No {'benchmarks' if kind == 'bench' else 'runs'} have been recorded yet.")]
        if kind == "bench":
            lines = []
            for r in runs:
                lines += _bench_lines(r)
        else:
            runs.sort(key=lambda r: (r["chapter"], r["dataset"], r["model"]))
            lines = _list_table(COLUMNS, runs)
        container = nodes.container(classes=["results-table"])
        self.state.nested_parse(StringList(lines, source=str(folder)), self.content_offset, container)
        return [container]


BENCH_COLUMNS = [
    ("rung", "rung"),
    ("batch_size", "batch"),
    ("precision", "precision"),
    ("images_per_s", "images/s"),
    ("epoch_s", "s/epoch"),
    ("time_to_99_s", "s to 99%"),
    ("compile_s", "warm-up s"),
    ("peak_mem_mb", "peak MB"),
    ("top1", "top-1 %"),
]


def _list_table(columns, rows) -> list[str]:
    lines = [".. list-table::", "   :header-rows: 1", ""]
    lines.append("   * - " + "\n     - ".join(title for _, title in columns))
    for r in rows:
        lines.append("   * - " + "\n     - ".join(_cell(key, r.get(key)) or "–" for key, _ in columns))
    return lines + [""]


def _bench_lines(record: dict) -> list[str]:
    speed = record.get("speedup")
    head = (f"**{record['dataset']}, {record['model']}** on {record['device']} (torch {record['torch']}, "
            f"commit {record['commit']}, {record['date']}, {record.get('epochs', '?')} epochs per rung): "
            f"best rung *{record.get('best_rung')}*, " + (f"{speed}x the baseline's images/s." if speed else "."))
    return [head, ""] + _list_table(BENCH_COLUMNS, record["rungs"])


def setup(app):
    app.add_directive("results-table", ResultsTable)
    return {"version": "0.1", "parallel_read_safe": True, "parallel_write_safe": True}
