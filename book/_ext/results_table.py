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
    return str(value).replace("|", "/")


class ResultsTable(SphinxDirective):
    has_content = False
    option_spec: dict = {}

    def run(self) -> list[nodes.Node]:
        folder = Path(self.env.srcdir) / "results"
        records = []
        for path in sorted(folder.glob("*.json")):
            self.env.note_dependency(str(path))
            records.append(json.loads(path.read_text()))
        runs = [r for r in records if r.get("kind", "train") == "train"]
        if not runs:
            para = nodes.paragraph(text="No runs have been recorded yet.")
            return [para]
        runs.sort(key=lambda r: (r["chapter"], r["dataset"], r["model"]))
        lines = [".. list-table::", "   :header-rows: 1", ""]
        lines.append("   * - " + "\n     - ".join(title for _, title in COLUMNS))
        for r in runs:
            lines.append("   * - " + "\n     - ".join(_cell(key, r.get(key)) or "–" for key, _ in COLUMNS))
        container = nodes.container(classes=["results-table"])
        self.state.nested_parse(StringList(lines, source=str(folder)), self.content_offset, container)
        return [container]


def setup(app):
    app.add_directive("results-table", ResultsTable)
    return {"version": "0.1", "parallel_read_safe": True, "parallel_write_safe": True}
