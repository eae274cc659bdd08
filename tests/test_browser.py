"""Open every page of the built book in headless Chromium and check what a reader would see.

Fails on: a JavaScript error, an image that does not load, an internal link (or #anchor) that
leads nowhere, and TeX that MathJax left unrendered. Saves one screenshot per page under
``_build/browser-check/`` for review.

Needs Chromium, chromedriver and selenium (``.ci/run`` installs them) and, offline, a local
MathJax named by ``BOOK_MATHJAX_STATIC``. Without them the test is skipped, unless
``LENET_REQUIRE_BROWSER=1`` (set by CI), where a missing piece is a failure.
"""

import re
from pathlib import Path
from urllib.parse import unquote, urlsplit


ROOT = Path(__file__).resolve().parents[1]
SHOTS = ROOT / "_build" / "browser-check"

RAW_TEX = re.compile(
    r"\$\$|\\\(|\\\[|\\(?:frac|lfloor|rfloor|sum|times|mathrm|text|cdot|underbrace|tanh|log)\b"
)

VISIBLE_TEXT = """
const clone = document.querySelector('main, .bd-article, body').cloneNode(true);
clone.querySelectorAll('pre, code, script, style, textarea, mjx-container, .MathJax, .highlight').forEach(e => e.remove());
return clone.textContent;
"""
BROKEN_IMAGES = """
return [...document.images].filter(i => !(i.complete && i.naturalWidth > 0)).map(i => i.currentSrc || i.src);
"""
LINKS = "return [...document.querySelectorAll('a[href]')].map(a => a.href);"
MATH_STATE = """
return {math: document.querySelectorAll('.math, div.math, span.math').length,
        rendered: document.querySelectorAll('mjx-container').length};
"""
WAIT_MATHJAX = """
const done = arguments[arguments.length - 1];
if (window.MathJax && MathJax.startup && MathJax.startup.promise) {
  MathJax.startup.promise.then(() => done('ok')).catch(e => done('error: ' + e));
} else { done('none'); }
"""


def pages(html: Path) -> list[Path]:
    skip = ("_static", "_sources", "_images", "_sphinx_design_static")
    return sorted(
        p for p in html.rglob("*.html") if not p.relative_to(html).parts[0] in skip
    )


def link_problem(url: str, base: str, html: Path, ids: dict) -> str | None:
    """Why an internal link is broken, or None."""
    parts = urlsplit(url)
    if not url.startswith(base) or parts.scheme not in ("http", "https"):
        return None  # external, mailto, javascript: not checked here (no network)
    path = html / unquote(parts.path).lstrip("/")
    if path.is_dir():
        path = path / "index.html"
    if not path.exists():
        return f"missing target {parts.path}"
    if parts.fragment and path.suffix == ".html":
        if path not in ids:
            ids[path] = set(
                re.findall(r'\sid="([^"]+)"', path.read_text(errors="replace"))
            )
        if unquote(parts.fragment) not in ids[path]:
            return f"missing anchor #{parts.fragment} in {parts.path}"
    return None


def test_every_page_in_a_real_browser(browser, book_server, built_book):
    html = built_book
    SHOTS.mkdir(parents=True, exist_ok=True)
    problems, ids, checked = [], {}, 0
    for page in pages(html):
        rel = page.relative_to(html).as_posix()
        browser.get(f"{book_server}/{rel}")
        state = browser.execute_async_script(WAIT_MATHJAX)
        if state.startswith("error"):
            problems.append(f"{rel}: MathJax failed ({state})")
        browser.execute_script("window.scrollTo(0, document.body.scrollHeight);")
        browser.execute_script("window.scrollTo(0, 0);")
        for entry in browser.get_log("browser"):
            if entry["level"] == "SEVERE":
                problems.append(f"{rel}: console error: {entry['message'][:300]}")
        for src in browser.execute_script(BROKEN_IMAGES):
            problems.append(f"{rel}: image did not load: {src}")
        for url in set(browser.execute_script(LINKS)):
            why = link_problem(url, book_server, html, ids)
            if why:
                problems.append(f"{rel}: broken link {url}: {why}")
        math = browser.execute_script(MATH_STATE)
        if math["math"] and not math["rendered"]:
            problems.append(
                f"{rel}: {math['math']} math elements but nothing rendered by MathJax"
            )
        raw = RAW_TEX.findall(browser.execute_script(VISIBLE_TEXT) or "")
        if raw:
            problems.append(f"{rel}: raw TeX left on the page: {sorted(set(raw))[:5]}")
        browser.save_screenshot(
            str(SHOTS / (rel.replace("/", "__").removesuffix(".html") + ".png"))
        )
        checked += 1
    assert checked >= 10, f"only {checked} pages found in {html}"
    # Kept beside the screenshots (CI uploads both), so an intermittent failure can be read later.
    (SHOTS / "problems.txt").write_text(
        "\n".join(problems) + "\n" if problems else "none\n"
    )
    assert not problems, "\n".join(problems)
