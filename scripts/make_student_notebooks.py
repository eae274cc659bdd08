"""Write student versions of the chapters: solutions removed, outputs cleared.

    python scripts/make_student_notebooks.py [--out _build/student] [notebooks/*.ipynb ...]

An exercise is a markdown cell with an ``{exercise}`` directive and a ``:label:``; its solution is
a markdown cell tagged ``solution`` holding ``{solution} <label>``. The script checks that every
exercise has exactly one solution and every solution an exercise, and writes nothing otherwise.
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

import nbformat

ROOT = Path(__file__).resolve().parents[1]
EXERCISE = re.compile(r"\{exercise\}[^\n]*\n:label:\s*(\S+)")
SOLUTION = re.compile(r"\{solution\}\s+(\S+)")


def check(nb: nbformat.NotebookNode, name: str) -> list[str]:
    """Problems with a notebook's exercises and solutions (empty when all is well)."""
    exercises, solutions, problems = [], [], []
    for cell in nb.cells:
        if cell.cell_type != "markdown":
            continue
        exercises += EXERCISE.findall(cell.source)
        found = SOLUTION.findall(cell.source)
        if found and "solution" not in cell.metadata.get("tags", []):
            problems.append(
                f"{name}: the solution to {found[0]} is not in a cell tagged 'solution'"
            )
        solutions += found
    for label in exercises:
        if solutions.count(label) != 1:
            problems.append(
                f"{name}: exercise {label} has {solutions.count(label)} solutions, expected 1"
            )
    for label in set(solutions) - set(exercises):
        problems.append(f"{name}: solution {label} has no exercise")
    if len(exercises) < 3:
        problems.append(f"{name}: {len(exercises)} exercises, at least 3 expected")
    return problems


def student_version(nb: nbformat.NotebookNode) -> nbformat.NotebookNode:
    """A copy without solution cells, with every output and execution count cleared."""
    out = nbformat.from_dict(nb)
    out.cells = [c for c in out.cells if "solution" not in c.metadata.get("tags", [])]
    for cell in out.cells:
        if cell.cell_type == "code":
            cell.outputs, cell.execution_count = [], None
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "notebooks", nargs="*", type=Path, help="default: notebooks/*.ipynb"
    )
    parser.add_argument("--out", type=Path, default=ROOT / "_build" / "student")
    args = parser.parse_args(argv)
    paths = args.notebooks or sorted((ROOT / "notebooks").glob("*.ipynb"))
    books = {p: nbformat.read(p, as_version=4) for p in paths}
    problems = [msg for p, nb in books.items() for msg in check(nb, p.name)]
    if problems:
        print(
            "no student notebooks written:\n  " + "\n  ".join(problems), file=sys.stderr
        )
        return 1
    args.out.mkdir(parents=True, exist_ok=True)
    for path, nb in books.items():
        nbformat.write(student_version(nb), args.out / path.name)
    print(f"wrote {len(books)} student notebooks to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
