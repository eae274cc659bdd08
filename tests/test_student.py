"""Every exercise has a solution, and the student versions contain none."""

import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))
import make_student_notebooks as student  # noqa: E402

NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_every_exercise_has_exactly_one_solution(path):
    assert student.check(nbformat.read(path, as_version=4), path.name) == []


def test_student_versions_have_no_solutions_and_no_outputs(tmp_path):
    proc = subprocess.run(
        [
            sys.executable,
            str(ROOT / "scripts" / "make_student_notebooks.py"),
            "--out",
            str(tmp_path),
        ],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 0, proc.stderr
    written = sorted(tmp_path.glob("*.ipynb"))
    assert [p.name for p in written] == [p.name for p in NOTEBOOKS]
    for path in written:
        nb = nbformat.read(path, as_version=4)
        text = "\n".join(c.source for c in nb.cells)
        assert "{solution}" not in text and "{exercise}" in text
        assert all(
            not c.get("outputs") and c.get("execution_count") is None
            for c in nb.cells
            if c.cell_type == "code"
        )
        original = nbformat.read(ROOT / "notebooks" / path.name, as_version=4)
        kept = [
            c.source
            for c in original.cells
            if "solution" not in c.metadata.get("tags", [])
        ]
        assert [c.source for c in nb.cells] == kept  # nothing else removed or reordered


def test_a_missing_solution_stops_the_script(tmp_path):
    nb = nbformat.v4.new_notebook()
    nb.cells = [
        nbformat.v4.new_markdown_cell(f"```{{exercise}}\n:label: ex-{i}\n\nQ{i}\n```")
        for i in range(3)
    ]
    sol = nbformat.v4.new_markdown_cell(
        "```{solution} ex-0\n:class: dropdown\n\nA\n```"
    )
    sol.metadata["tags"] = ["solution"]
    nb.cells.append(sol)
    bad = tmp_path / "bad.ipynb"
    nbformat.write(nb, bad)
    out = tmp_path / "out"
    assert student.main([str(bad), "--out", str(out)]) == 1
    assert not out.exists()  # nothing half-written
    problems = student.check(nb, "bad.ipynb")
    assert "bad.ipynb: exercise ex-1 has 0 solutions, expected 1" in problems
