"""Shared fixtures: one book build, one headless Chromium and one local web server per session."""

import functools
import http.server
import importlib.util
import os
import shutil
import subprocess
import sys
import threading
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = (
    shutil.which("chromium")
    or shutil.which("chromium-browser")
    or shutil.which("google-chrome")
)
DRIVER = shutil.which("chromedriver")


@pytest.fixture(scope="session")
def built_book(tmp_path_factory) -> Path:
    """Build the book once, with warnings as errors; returns the HTML folder."""
    pytest.importorskip(
        "jupyter_book",
        reason="the book build needs Jupyter Book: pip install -e '.[dev]'",
    )
    out = tmp_path_factory.mktemp("book")
    jb = shutil.which("jupyter-book") or f"{sys.executable} -m jupyter_book"
    cmd = [
        *jb.split(),
        "build",
        str(ROOT),
        "--path-output",
        str(out),
        "-W",
        "-n",
        "--keep-going",
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT)
    assert proc.returncode == 0, (
        f"jupyter-book build failed:\n{proc.stdout[-4000:]}\n{proc.stderr[-4000:]}"
    )
    assert "warning" not in proc.stderr.lower(), proc.stderr[-4000:]
    return out / "_build" / "html"


def require(condition: bool, what: str) -> None:
    if not condition:
        if os.environ.get("LENET_REQUIRE_BROWSER"):
            pytest.fail(f"browser check cannot run: {what}")
        pytest.skip(f"browser check skipped: {what}")


@pytest.fixture(scope="session")
def browser():
    require(
        CHROMIUM is not None and DRIVER is not None,
        "chromium and chromedriver are not installed",
    )
    try:
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service
    except ImportError:
        require(False, "selenium is not installed")
    require(
        bool(os.environ.get("BOOK_MATHJAX_STATIC")),
        "BOOK_MATHJAX_STATIC (a local MathJax) is not set",
    )
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--disable-dev-shm-usage",
        "--window-size=1280,1400",
    ):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(DRIVER), options=options)
    driver.set_script_timeout(60)
    yield driver
    driver.quit()


@pytest.fixture(scope="session")
def axe_js() -> Path:
    """axe-core's browser bundle: ``$BOOK_AXE_JS``, else the copy ``.ci/run`` installs."""
    named = os.environ.get("BOOK_AXE_JS")
    path = (
        Path(named)
        if named
        else ROOT / ".ci" / "node" / "node_modules" / "axe-core" / "axe.min.js"
    )
    require(
        path.is_file(),
        f"no axe-core at {path} (npm install --prefix .ci/node axe-core@4, or set "
        "BOOK_AXE_JS to its axe.min.js)",
    )
    return path


@pytest.fixture(scope="session")
def book_html(request) -> Path:
    """The HTML folder the browser check opens: ``$BOOK_BUILT_HTML`` when set, else a fresh build.

    Set ``BOOK_BUILT_HTML`` to an existing build's ``_build/html`` (e.g. from ``jupyter-book build
    . --path-output /tmp/book``) to rerun the browser check many times without rebuilding.
    """
    prebuilt = os.environ.get("BOOK_BUILT_HTML")
    if not prebuilt:
        return request.getfixturevalue("built_book")
    html = Path(prebuilt)
    if not (html / "book" / "intro.html").is_file():
        pytest.fail(
            f"BOOK_BUILT_HTML={prebuilt} holds no built book (no book/intro.html); point it at "
            "a build's _build/html folder, or unset it to build the book here"
        )
    return html


@pytest.fixture(scope="session")
def book_server(book_html):
    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args) -> None:  # keep the test output readable
            pass

    handler = functools.partial(Quiet, directory=str(book_html))
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()


@pytest.fixture
def load_script(monkeypatch):
    """A loader of ``scripts/<name>.py`` as a module, in ``sys.modules`` while the test runs
    (dataclasses look their module up there)."""

    def load(name: str):
        spec = importlib.util.spec_from_file_location(
            name, ROOT / "scripts" / f"{name}.py"
        )
        module = importlib.util.module_from_spec(spec)
        monkeypatch.setitem(sys.modules, name, module)
        spec.loader.exec_module(module)
        return module

    return load
