"""Student versions of the chapters, published with the book: ``student/`` in the site.

At every HTML build the chapters are written without their solution cells and with their
outputs cleared (``scripts/make_student_notebooks.py``), one ``.ipynb`` per chapter plus
``student-notebooks.zip`` with all of them, into ``<site>/student/``. The instructors' page
links them. The build fails, as the script does, if an exercise has no solution.
"""

from __future__ import annotations

import importlib.util
import tempfile
import zipfile
from pathlib import Path

from sphinx.errors import ExtensionError


def _script(srcdir: Path):
    spec = importlib.util.spec_from_file_location(
        "make_student_notebooks", srcdir / "scripts" / "make_student_notebooks.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def write_student_notebooks(app, config) -> None:
    srcdir = Path(app.srcdir)
    extra = Path(tempfile.mkdtemp(prefix="lenet-student-"))
    folder = extra / "student"
    script = _script(srcdir)
    if script.main(["--out", str(folder)]) != 0:
        raise ExtensionError(
            "student notebooks: an exercise lacks its solution (see above)"
        )
    with zipfile.ZipFile(
        folder / "student-notebooks.zip", "w", zipfile.ZIP_DEFLATED
    ) as zf:
        for path in sorted(folder.glob("*.ipynb")):
            zf.write(path, f"lenet5-course-student/{path.name}")
    config.html_extra_path = [*config.html_extra_path, str(extra)]


def setup(app):
    app.connect("config-inited", write_student_notebooks)
    return {"version": "0.1", "parallel_read_safe": True, "parallel_write_safe": True}
