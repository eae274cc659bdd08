"""The book builds with zero warnings and shows the notebooks' stored outputs."""

import json
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))


def test_toc_lists_every_notebook():
    toc = (ROOT / "_toc.yml").read_text()
    assert NOTEBOOKS, "no notebooks found"
    for nb in NOTEBOOKS:
        assert f"notebooks/{nb.stem}" in toc, f"{nb.name} is not in _toc.yml"


@pytest.mark.parametrize("nb", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_is_stored_executed_without_errors(nb):
    cells = json.loads(nb.read_text())["cells"]
    code = [c for c in cells if c["cell_type"] == "code" and c["source"]]
    assert all(c["execution_count"] is not None for c in code), (
        f"{nb.name} has unexecuted cells"
    )
    errors = [o for c in code for o in c["outputs"] if o["output_type"] == "error"]
    assert not errors, f"{nb.name} stores error outputs: {[e['ename'] for e in errors]}"
    first = "".join(code[0]["source"])
    assert "google.colab" in first and "%pip install" in first and "setup()" in first, (
        "first code cell must install lenet_utils in Colab and print the hardware"
    )
    assert "torch" not in first.split("%pip install", 1)[1].split("\n", 1)[0], (
        "never reinstall torch over Colab's"
    )
    hw = "".join("".join(o.get("text", "")) for o in code[0]["outputs"])
    assert hw.startswith("Hardware: "), (
        f"{nb.name}: first cell must print the hardware line"
    )
    text = "\n".join(
        "".join(c["source"]) for c in cells if c["cell_type"] == "markdown"
    )
    assert "**Time:**" in text and "**Prerequisites:**" in text, (
        f"{nb.name}: state goals, prerequisites and time"
    )
    assert text.count("{exercise}") >= 3, f"{nb.name}: needs at least three exercises"
    assert text.count("{exercise}") == text.count("{solution}"), (
        f"{nb.name}: every exercise needs a solution"
    )


def test_book_builds_and_renders_stored_outputs(built_book):
    assert (built_book / "book" / "intro.html").exists()
    for nb in NOTEBOOKS:
        page = (built_book / "notebooks" / f"{nb.stem}.html").read_text()
        assert "Hardware: " in page, f"{nb.stem}: stored outputs are not rendered"
        assert "data:image/png" in page or "_images/" in page, (
            f"{nb.stem}: figures are missing"
        )
        assert "solution" in page and "dropdown" in page, (
            f"{nb.stem}: solutions are not hidden dropdowns"
        )


def test_book_renders_math_and_citations(built_book):
    page = (built_book / "notebooks" / "01_paper_arithmetic.html").read_text()
    assert r"\lfloor" in page  # the output-size formula reaches MathJax
    assert "LeCun" in page  # {cite} resolved against book/references.bib
    refs = (built_book / "book" / "references.html").read_text()
    assert "gradient-based learning applied to document recognition" in refs.lower()


def test_results_page_is_a_table_of_every_record(built_book):
    import html as html_lib
    import re

    page = html_lib.unescape((built_book / "book" / "results.html").read_text())
    assert (
        ".. list-table" not in page and page.count("<table") >= 2
    )  # the runs and the benchmark
    cells = re.findall(r"<td[^>]*>(.*?)</td>", page, flags=re.S)
    text = " | ".join(re.sub(r"<[^>]+>", "", c).strip() for c in cells)
    # a run of several seeds is one row (their mean); each seed's figures are listed below
    notes = re.findall(r"<li>(.*?)</li>", page, flags=re.S)
    text += " | " + " | ".join(re.sub(r"<[^>]+>", "", n).strip() for n in notes)
    text = text.replace(
        "\u2019", "'"
    )  # Sphinx's smart quotes: the paper's, not paper’s
    for path in sorted((ROOT / "results").glob("*.json")):
        record = json.loads(path.read_text())
        if record.get("kind") == "bench":
            for rung in record["rungs"]:
                assert f"{rung['images_per_s']:,.0f}" in text, (
                    f"{path.name}: {rung['rung']} missing"
                )
        else:
            assert f"{record['top1']:.2f}" in text and record["model"] in text, (
                f"{path.name} missing"
            )


def test_student_notebooks_are_published_with_the_book(built_book):
    import zipfile

    folder = built_book / "student"
    names = sorted(p.name for p in folder.glob("*.ipynb"))
    assert names == [nb.name for nb in NOTEBOOKS]
    with zipfile.ZipFile(folder / "student-notebooks.zip") as zf:
        members = sorted(Path(n).name for n in zf.namelist())
        assert members == names
        for name in zf.namelist():
            text = zf.read(name).decode()
            assert "{exercise}" in text and "{solution}" not in text
    page = (built_book / "book" / "instructors.html").read_text()
    assert 'href="../student/student-notebooks.zip"' in page


def chapter_heading(nb: Path) -> str:
    first = "".join(json.loads(nb.read_text())["cells"][0]["source"])
    return first.splitlines()[0].lstrip("# ").strip()


def test_the_book_is_also_a_pdf_with_a_bookmark_per_page(built_book):
    pypdf = pytest.importorskip(
        "pypdf", reason="the book's PDF needs pypdf: pip install -e '.[dev]'"
    )
    book = built_book / "pdf" / "lenet5-course.pdf"
    if not book.exists():
        pytest.skip("the book's PDF is printed by Chromium, which is not installed")
    reader = pypdf.PdfReader(book)

    def plain(text: str) -> str:  # Sphinx's smart quotes: ’ for '
        return " ".join(text.replace("\u2019", "'").split())

    # a chapter's bookmark is its numbered title ("4. Training on MNIST")
    bookmarks = [re.sub(r"^\d+\. ", "", plain(item.title)) for item in reader.outline]
    toc = (ROOT / "_toc.yml").read_text()
    assert len(bookmarks) == toc.count("file:") + 1  # the root, then every page
    text = " ".join(plain(page.extract_text()) for page in reader.pages)
    for nb in NOTEBOOKS:
        title = chapter_heading(nb)
        assert title in bookmarks, f"no bookmark for {title!r}: {bookmarks}"
        assert title in text, f"{title!r} is not in the PDF's text"
        assert (built_book / "pdf" / f"{nb.stem}.pdf").is_file(), nb.stem
    assert "No padding, stride 1" in text  # a figure's caption, chapter 1
    assert "calculator needs a browser" in text  # the note in the calculator's place
    assert "drawing box needs a browser" in text  # and in chapter 4's drawing box's
    assert "Skip to main content" not in text  # no navigation chrome
    for page, link in (
        ("intro", "../pdf/lenet5-course.pdf"),
        ("instructors", "../pdf/"),
    ):
        html = next(built_book.rglob(f"{page}.html")).read_text()
        assert f'href="{link}' in html, f"{page}.html does not link the PDF"
