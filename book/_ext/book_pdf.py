"""The book offline: every HTML build also prints the book to PDF, whole and per chapter.

Each page of ``_toc.yml`` is printed by headless Chromium (the browser the book's browser
check already uses), so the PDF shows exactly what the web page shows: stored outputs,
figures, typeset maths. ``book/_static/course.css`` holds the print rules: no navigation
chrome, code and outputs wrapped instead of cut, and the interactive calculator replaced by a
note that points to the web page. The pages are merged with pypdf, one bookmark per page, into
``_build/html/pdf/lenet5-course.pdf``; each chapter is also ``pdf/<chapter>.pdf``. The intro and
instructors' pages link them.

Without Chromium or pypdf the build says so in one line and carries on: the web book does
not depend on the PDF. ``$BOOK_CHROMIUM`` names the browser when it is not on ``PATH``.
"""

from __future__ import annotations

import html
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import yaml
from sphinx.util import logging

logger = logging.getLogger(__name__)

BOOK = "lenet5-course.pdf"
BROWSERS = ("chromium", "chromium-browser", "google-chrome")
#: Chromium's flags for printing: the typesetting of maths runs before the page is printed
#: (virtual time lets MathJax finish without a fixed sleep).
FLAGS = (
    "--headless=new", "--no-sandbox", "--disable-gpu", "--no-pdf-header-footer",
    "--run-all-compositor-stages-before-draw", "--virtual-time-budget=20000",
)  # fmt: skip


def chromium() -> str | None:
    return os.environ.get("BOOK_CHROMIUM") or next(
        (path for name in BROWSERS if (path := shutil.which(name))), None
    )


def toc_pages(root: Path) -> list[str]:
    """The book's pages in ``_toc.yml`` order: the root, then every chapter of every part."""
    toc = yaml.safe_load((root / "_toc.yml").read_text())
    pages = [toc["root"]]
    for part in toc.get("parts", []):
        pages += [chapter["file"] for chapter in part.get("chapters", [])]
    return pages


def print_page(browser: str, page: Path, pdf: Path) -> None:
    """One HTML page of the build printed to ``pdf``; a failure names the page."""
    cmd = [browser, *FLAGS, f"--print-to-pdf={pdf}", page.resolve().as_uri()]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=180)
    if proc.returncode or not pdf.is_file():
        raise RuntimeError(
            f"Chromium could not print {page.name}: {proc.stderr[-500:]}"
        )


def build_pdf(html_dir: Path, root: Path, browser: str) -> Path:
    """Print every page, then merge them with a bookmark each; returns the book's PDF."""
    from pypdf import PdfWriter

    out = html_dir / "pdf"
    out.mkdir(exist_ok=True)
    writer = PdfWriter()
    with tempfile.TemporaryDirectory() as tmp:
        for page in toc_pages(root):
            pdf = Path(tmp) / f"{Path(page).name}.pdf"
            print_page(browser, html_dir / f"{page}.html", pdf)
            if page.startswith("notebooks/"):
                shutil.copyfile(pdf, out / pdf.name)
            writer.append(str(pdf), outline_item=page_title(html_dir / f"{page}.html"))
    book = out / BOOK
    with book.open("wb") as f:
        writer.write(f)
    return book


def page_title(page: Path) -> str:
    """The page's title, as its ``<title>`` gives it, without the book's name."""
    text = page.read_text(encoding="utf-8")
    start, end = text.find("<title>") + len("<title>"), text.find("</title>")
    title = html.unescape(text[start:end]).split(" — ")[0].strip()
    return title or page.stem


def on_build_finished(app, exception) -> None:
    if exception is not None or app.builder.format != "html":
        return
    browser = chromium()
    try:
        import pypdf  # noqa: F401
    except ImportError:
        browser = None
    if browser is None:
        logger.info(
            "book PDF: skipped, it needs Chromium and pypdf (pip install pypdf)"
        )
        return
    book = build_pdf(Path(app.outdir), Path(app.srcdir), browser)
    logger.info(f"book PDF: {book}")


def setup(app):
    app.connect("build-finished", on_build_finished)
    return {"version": "0.1", "parallel_read_safe": True, "parallel_write_safe": True}
