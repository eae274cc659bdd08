"""Every exercise solution's code runs in its chapter: it compiles, its imports resolve, and
every name it uses is defined by the solution itself or by the chapter's code cells (a name
that is neither, like a class the solution forgot to import, is a NameError for a student
who pastes it). Running each solution in full would retrain the chapters' networks, so the
check is static."""

from __future__ import annotations

import ast
import builtins
import importlib
import json
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))
SOLUTION = re.compile(r"^(`{3,})\{solution\}.*?^\1\s*$", re.M | re.S)
PYTHON = re.compile(r"^```python\n(.*?)^```", re.M | re.S)


def solutions(nb: dict) -> list[tuple[str, str]]:
    """(label, code) of every python block inside a solution."""
    found = []
    for cell in nb["cells"]:
        if cell["cell_type"] != "markdown":
            continue
        for block in SOLUTION.finditer("".join(cell["source"])):
            label = block.group(0).split("\n", 1)[0].split("}", 1)[1].strip()
            found += [(label, code) for code in PYTHON.findall(block.group(0))]
    return found


def chapter_code(nb: dict) -> str:
    cells = ["".join(c["source"]) for c in nb["cells"] if c["cell_type"] == "code"]
    lines = "\n\n".join(cells).splitlines()
    # IPython's %magics and !commands are not Python: each becomes a `pass` in its place
    magic = re.compile(r"^(\s*)[%!].*")
    return "\n".join(magic.sub(r"\1pass", line) for line in lines)


def defined(tree: ast.AST) -> set[str]:
    """Every name a piece of code binds, at any depth (a loose, generous reading)."""
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Name) and isinstance(node.ctx, (ast.Store, ast.Del)):
            names.add(node.id)
        elif isinstance(node, (ast.FunctionDef, ast.ClassDef, ast.AsyncFunctionDef)):
            names.add(node.name)
            args = node.args if not isinstance(node, ast.ClassDef) else None
            if args is not None:
                every = args.posonlyargs + args.args + args.kwonlyargs
                every += [a for a in (args.vararg, args.kwarg) if a is not None]
                names |= {a.arg for a in every}
        elif isinstance(node, ast.arg):
            names.add(node.arg)
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            names |= {(a.asname or a.name).split(".")[0] for a in node.names}
        elif isinstance(node, ast.ExceptHandler) and node.name:
            names.add(node.name)
    return names


def check_imports(tree: ast.AST) -> None:
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                importlib.import_module(alias.name)
        elif isinstance(node, ast.ImportFrom) and node.module:
            module = importlib.import_module(node.module)
            for alias in node.names:
                assert hasattr(module, alias.name) or importlib.util.find_spec(
                    f"{node.module}.{alias.name}"
                ), f"{node.module} has no {alias.name}"


CASES = [
    pytest.param(nb, label, code, id=f"{nb.stem[:2]}-{label}-{i}")
    for nb in NOTEBOOKS
    for i, (label, code) in enumerate(solutions(json.loads(nb.read_text())))
]


def test_every_chapter_has_solution_code_to_check():
    assert {c.values[0] for c in CASES} == set(NOTEBOOKS)


@pytest.mark.parametrize("nb, label, code", CASES)
def test_solution_code_compiles_imports_and_names_resolve(nb, label, code):
    tree = ast.parse(code, filename=f"{nb.name}:{label}")
    check_imports(tree)
    chapter = ast.parse(chapter_code(json.loads(nb.read_text())))
    known = defined(chapter) | defined(tree) | set(dir(builtins))
    used = {
        n.id
        for n in ast.walk(tree)
        if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Load)
    }
    assert not used - known, (
        f"{nb.name}, solution {label}: {sorted(used - known)} defined nowhere: "
        "import or define it in the solution"
    )
