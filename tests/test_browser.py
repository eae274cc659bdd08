"""Open every page of the built book in headless Chromium and check what a reader would see.

One survey visits every page four times: light and dark colour modes, at 1280 px (desktop) and
400 px (phone). The tests below read its findings:

- every page loads cleanly: no console error, every image loaded, no internal link or #anchor
  leading nowhere, no TeX left unrendered by MathJax;
- axe-core finds no serious or critical WCAG 2.0/2.1 A/AA violation, colour contrast included, in
  either mode and at either width;
- exactly one search control is visible;
- no page scrolls sideways at 400 px (wide code scrolls inside its own box; wide tables become
  cards);
- nothing in the article scrolls sideways in its own box at 1280 px: no code block, stored
  output or table (code is formatted to 88 characters, and outputs wrap);
- at 400 px only code and display math may scroll in their own boxes: prose, stored outputs,
  tables and figures may not;
- the results table fits its column at 1280 px;
- no chapter is taller than ``MAX_CHAPTER_HEIGHT`` at 1280 px.

Screenshots of the top of every page (and, on pages with figures, of the first figure), for every
mode and width, go to ``_build/browser-check/<mode>-<width>/``; ``report.txt`` and
``report.json`` beside them list the problems, page heights and axe results (CI uploads the
folder).

The survey waits for what a page does after it loads before judging it: MathJax's typesetting,
every image (lazy ones made eager), web fonts, and two animation frames for the layout to settle.
Console messages that a page logs after it was judged are collected when the browser leaves it,
and are charged to that page.

Needs Chromium, chromedriver and selenium, a local MathJax named by ``BOOK_MATHJAX_STATIC`` and
axe-core named by ``BOOK_AXE_JS`` (``.ci/run`` installs all of them). Without them the tests are
skipped, unless ``LENET_REQUIRE_BROWSER=1`` (set by CI), where a missing piece is a failure.
``BOOK_BUILT_HTML`` reuses an existing build (see ``book_html`` in ``conftest.py``).
"""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path
from urllib.parse import unquote, urljoin, urlsplit

import pytest

ROOT = Path(__file__).resolve().parents[1]
SHOTS = ROOT / "_build" / "browser-check"
CHAPTERS = sorted(p.stem for p in (ROOT / "notebooks").glob("*.ipynb"))

MODES = ("light", "dark")
WIDTHS = (1280, 400)
WINDOW_HEIGHT = 1400
MAX_CHAPTER_HEIGHT = 30_000  # px at 1280 px wide
AXE_TAGS = ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa"]
AXE_FAILING = ("serious", "critical")
IMAGE_TIMEOUT_MS = 20_000

RAW_TEX = re.compile(
    r"\$\$|\\\(|\\\[|\\(?:frac|lfloor|rfloor|sum|times|mathrm|text|cdot|underbrace|tanh|log)\b"
)
REDIRECT = re.compile(
    r'<meta\s+http-equiv="refresh"\s+content="\d+;\s*url=([^"]+)"', re.IGNORECASE
)

VISIBLE_TEXT = """
const clone = document.querySelector('main, .bd-article, body').cloneNode(true);
clone.querySelectorAll('pre, code, script, style, textarea, mjx-container, .MathJax, .highlight').forEach(e => e.remove());
return clone.textContent;
"""
LINKS = "return [...document.querySelectorAll('a[href]')].map(a => a.href);"
MATH_STATE = """
return {math: document.querySelectorAll('.math, div.math, span.math').length,
        rendered: document.querySelectorAll('mjx-container').length};
"""
# Everything a page still does after its load event, awaited in order: MathJax's first typeset
# (which adds its own web fonts), every image, the web fonts, then two frames for the layout.
# Returns MathJax's state and the images that failed to load.
SETTLE = """
const [timeoutMs, done] = [arguments[0], arguments[arguments.length - 1]];
const frame = () => new Promise(r => requestAnimationFrame(() => r()));
const loaded = img => {
  if (img.loading === 'lazy') img.loading = 'eager';  // load it now, wherever it sits
  if (img.complete) return Promise.resolve();
  return new Promise(resolve => {
    img.addEventListener('load', resolve, {once: true});
    img.addEventListener('error', resolve, {once: true});
    setTimeout(resolve, timeoutMs);
  });
};
(async () => {
  let math = 'none';
  if (window.MathJax && MathJax.startup && MathJax.startup.promise) {
    math = await MathJax.startup.promise.then(() => 'ok', e => 'error: ' + e);
  }
  const images = [...document.images];
  await Promise.all(images.map(loaded));
  // Decoded before the screenshot; a broken image rejects, and is reported below.
  await Promise.all(images.map(i => i.decode().catch(() => null)));
  await document.fonts.ready;
  await frame(); await frame();
  const broken = images.filter(i => !(i.complete && i.naturalWidth > 0))
                       .map(i => i.currentSrc || i.src);
  return {math, broken};
})().then(done, e => done({math: 'error: ' + e, broken: []}));
"""
AXE_RUN = """
const [tags, done] = [arguments[0], arguments[arguments.length - 1]];
const context = arguments.length > 2 ? arguments[1] : document;  // a CSS selector, or the page
axe.run(context, {runOnly: {type: 'tag', values: tags}, resultTypes: ['violations']})
  .then(r => done(r.violations.map(v => ({
      id: v.id, impact: v.impact, help: v.help,
      nodes: v.nodes.length,
      targets: v.nodes.slice(0, 3).map(n => n.target.join(' '))}))))
  .catch(e => done('axe failed: ' + e));
"""
# Search controls a reader can see (the search dialog itself and the search page's own form
# are not controls that open search).
VISIBLE_SEARCH = """
return [...document.querySelectorAll('.search-button__button, .search-button-field, form.bd-search')]
  .filter(e => !e.closest('dialog, .bd-search-container'))
  .filter(e => e.getClientRects().length && getComputedStyle(e).visibility !== 'hidden')
  .map(e => e.className);
"""
RESULTS_TABLES = """
return [...document.querySelectorAll('table.results-table')].map(t => ({
  table: t.scrollWidth, room: t.parentElement.clientWidth,
  container: t.parentElement.scrollWidth - t.parentElement.clientWidth}));
"""
# How far the page itself scrolls sideways, and what sticks out (for the report). An element
# inside a box that scrolls or clips on its own (a code block) or inside a fixed drawer (the
# phone's table of contents) cannot widen the page, so the report leaves it out and names the
# element that does.
SIDEWAYS = """
const root = document.documentElement, room = root.clientWidth;
const contained = e => {
  for (let a = e; a && a !== root; a = a.parentElement) {
    const s = getComputedStyle(a);
    if (s.position === 'fixed' || (a !== e && s.overflowX !== 'visible')) return true;
  }
  return false;
};
// An element sticks out when its box does, or when its own text does (a long word in a
// heading); a box that scrolls its content (a code block) only by its box.
const sticks = e => {
  const box = e.getBoundingClientRect();
  const own = getComputedStyle(e).overflowX === 'visible' ? box.left + e.scrollWidth : 0;
  return Math.max(box.right, own) > room + 1;
};
const out = [...document.querySelectorAll('.bd-main *')].filter(e => sticks(e) && !contained(e));
// The innermost of them: its ancestors stick out only because it does.
const wide = out.filter(e => !out.some(o => o !== e && e.contains(o)))
  .slice(0, 3).map(e => e.tagName.toLowerCase() + '.' + String(e.className).split(' ')[0]
                        + ' "' + e.textContent.trim().slice(0, 40) + '"');
return {excess: root.scrollWidth - room, wide};
"""
# Every box in the article that scrolls sideways (more content than room), with what it holds:
# code (a code cell or a code block), output (a stored text output), table, figure, math, or
# prose. Its text is the block's own (a pandas table without its <style>), to name it. Folded
# content (an exercise's solution, a closed <details>) is measured as a reader who opens it sees
# it: opened, without transitions, for the measurement, and folded again.
SCROLL_BOXES = """
const kind = e => {
  const has = sel => e.querySelector(sel) || e.closest(sel);
  if (e.closest('mjx-container')) return 'math';
  if (has('table')) return 'table';
  if (e.closest('.cell_output')) return has('img, svg, canvas, video') ? 'figure' : 'output';
  if (has('pre')) return 'code';
  if (has('img, svg, canvas, video, figure')) return 'figure';
  return 'prose';
};
const describe = e => {
  const named = e.matches('pre, table') ? e : (e.querySelector('pre, table') || e);
  const cell = e.closest('.cell');
  let section = e.closest('section'), heading = null;
  for (; section && !heading; section = section.parentElement.closest('section')) {
    heading = section.querySelector(':scope > :is(h1, h2, h3, h4)');
  }
  return {kind: kind(e), px: e.scrollWidth - e.clientWidth,
          cell: cell ? cells.indexOf(cell) + 1 : null,
          section: heading ? heading.textContent.trim().replace(/#$/, '')
                             + (e.closest('.solution') ? ', a solution' : '') : null,
          text: named.textContent.trim().replace(/\\s+/g, ' ').slice(0, 60)};
};
const cells = [...document.querySelectorAll('.bd-article .cell')];
const still = document.createElement('style');
still.textContent = '* { transition: none !important; }';
document.head.append(still);
const folded = [...document.querySelectorAll('.bd-article .toggle-hidden')];
const closed = [...document.querySelectorAll('.bd-article details:not([open])')];
folded.forEach(e => e.classList.remove('toggle-hidden'));
closed.forEach(d => { d.open = true; });
try {
  return [...document.querySelectorAll('.bd-article *:not(pre *)')]
    .filter(e => ['auto', 'scroll'].includes(getComputedStyle(e).overflowX)
                 && e.scrollWidth > e.clientWidth + 1)
    .map(describe);
} finally {
  folded.forEach(e => e.classList.add('toggle-hidden'));
  closed.forEach(d => { d.open = false; });
  document.body.offsetHeight;  // folded again before transitions return: none runs
  still.remove();
}
"""
# What may scroll sideways in its own box, by width: nothing at 1280 px; only code and display
# math on a phone (a line of code must not wrap, an equation cannot). Tables must fit at 400 px:
# a wide one becomes cards (book/_static/course.js, and the calculator's own CSS).
MAY_SCROLL = {1280: (), 400: ("code", "math")}
FIRST_FIGURE = """
const img = [...document.querySelectorAll('.bd-article img')]
  .find(i => i.naturalWidth > 100 && i.getClientRects().length);
if (!img) return false;
img.scrollIntoView({block: 'center'});
return true;
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


class Survey:
    """What the browser found on every page, in every mode and at every width."""

    def __init__(self, browser, base: str, html: Path, axe: Path | None) -> None:
        self.browser, self.base, self.html = browser, base, html
        self.axe = axe.read_text() if axe else None
        self.problems: list[str] = []  # loading problems, any pass
        self.heights: dict[str, int] = {}  # page -> px at 1280, light
        self.violations: dict[str, dict[str, list]] = {}  # page -> pass -> axe
        self.search: dict[str, dict[str, list]] = {}  # page -> pass -> controls
        self.tables: dict[str, list] = {}  # page -> results tables at 1280
        self.sideways: dict[str, dict] = {}  # "page [pass]" -> excess px, at 400
        self.scrolling: dict[int, dict[str, list]] = {}  # width -> page -> boxes, light
        self.ids: dict = {}
        self.checked = 0

    def drain_console(self, where: str) -> None:
        for entry in self.browser.get_log("browser"):
            if entry["level"] == "SEVERE":
                self.problems.append(
                    f"{where}: console error: {entry['message'][:300]}"
                )

    def leave(self, where: str) -> None:
        """Go to a blank page; what the page logged until it unloaded is charged to it."""
        self.browser.get("about:blank")
        self.drain_console(where)

    def set_pass(self, mode: str, width: int) -> None:
        self.browser.set_window_size(width, WINDOW_HEIGHT)
        inner = self.browser.execute_script("return window.innerWidth")
        if inner != width:
            self.problems.append(f"the window is {inner} px wide, not {width} px")
        # The theme reads the reader's choice from localStorage before it paints (no flash).
        self.browser.get(f"{self.base}/search.html")
        self.browser.execute_script(
            "localStorage.setItem('mode', arguments[0]);"
            "localStorage.setItem('theme', arguments[0]);",
            mode,
        )
        self.leave(f"search.html [{mode} {width}px, setting the mode]")

    def run(self) -> None:
        shutil.rmtree(SHOTS, ignore_errors=True)  # no stale screenshots from older runs
        SHOTS.mkdir(parents=True)
        all_pages = pages(self.html)
        for mode in MODES:
            for width in WIDTHS:
                self.set_pass(mode, width)
                shots = SHOTS / f"{mode}-{width}"
                shots.mkdir(exist_ok=True)
                for page in all_pages:
                    self.visit(page, mode, width, shots)
        self.checked = len(all_pages)

    def visit(self, page: Path, mode: str, width: int, shots: Path) -> None:
        b, rel = self.browser, page.relative_to(self.html).as_posix()
        where = f"{rel} [{mode} {width}px]"
        first_pass = (mode, width) == (MODES[0], WIDTHS[0])
        redirect = REDIRECT.search(page.read_text(errors="replace")[:2000])
        url = f"{self.base}/{rel}"
        b.get(url)
        if redirect:
            self.follow(redirect.group(1), url, where)
            self.leave(where)
            return
        state = b.execute_async_script(SETTLE, IMAGE_TIMEOUT_MS)
        if str(state["math"]).startswith("error"):
            self.problems.append(f"{where}: MathJax failed ({state['math']})")
        for src in state["broken"]:
            self.problems.append(f"{where}: image did not load: {src}")
        mode_now = b.execute_script("return document.documentElement.dataset.theme")
        if mode_now != mode:
            self.problems.append(f"{where}: page shows the {mode_now} theme")
        if first_pass:
            self.check_content(rel, where)
        if mode == MODES[0]:  # the layout is the same in both modes
            boxes = b.execute_script(SCROLL_BOXES)
            if boxes:
                self.scrolling.setdefault(width, {})[rel] = boxes
        if width < 1000:
            found = b.execute_script(SIDEWAYS)
            if found["excess"] > 0:
                self.sideways[where] = found
        self.search.setdefault(rel, {})[f"{mode}-{width}"] = b.execute_script(
            VISIBLE_SEARCH
        )
        if self.axe:
            if not b.execute_script("return typeof axe !== 'undefined'"):
                b.execute_script(self.axe)
            found = b.execute_async_script(AXE_RUN, AXE_TAGS)
            if isinstance(found, str):
                self.problems.append(f"{where}: {found}")
                found = []
            self.violations.setdefault(rel, {})[f"{mode}-{width}"] = found
        name = rel.replace("/", "__").removesuffix(".html")
        b.execute_script("window.scrollTo(0, 0);")
        b.save_screenshot(str(shots / f"{name}.png"))
        if b.execute_script(FIRST_FIGURE):
            b.execute_async_script(
                "const done = arguments[0];"
                "requestAnimationFrame(() => requestAnimationFrame(() => done()));"
            )
            b.save_screenshot(str(shots / f"{name}--figure.png"))
        self.leave(where)

    def follow(self, target: str, url: str, where: str) -> None:
        """A redirect page: it must land on an existing page."""
        from selenium.common.exceptions import TimeoutException
        from selenium.webdriver.support.ui import WebDriverWait

        expected = urljoin(url, target)
        why = link_problem(expected, self.base, self.html, self.ids)
        if why:
            self.problems.append(f"{where}: redirect to {target}: {why}")
            return
        try:
            WebDriverWait(self.browser, 15).until(lambda d: d.current_url == expected)
        except TimeoutException:
            self.problems.append(
                f"{where}: did not forward to {target} (stayed at {self.browser.current_url})"
            )

    def check_content(self, rel: str, where: str) -> None:
        """Links, math and layout: the same in every mode, so checked in the first pass."""
        b = self.browser
        for url in sorted(set(b.execute_script(LINKS))):
            why = link_problem(url, self.base, self.html, self.ids)
            if why:
                self.problems.append(f"{where}: broken link {url}: {why}")
        math = b.execute_script(MATH_STATE)
        if math["math"] and not math["rendered"]:
            self.problems.append(
                f"{where}: {math['math']} math elements but nothing rendered by MathJax"
            )
        raw = RAW_TEX.findall(b.execute_script(VISIBLE_TEXT) or "")
        if raw:
            self.problems.append(
                f"{where}: raw TeX left on the page: {sorted(set(raw))[:5]}"
            )
        self.heights[rel] = b.execute_script(
            "return document.documentElement.scrollHeight"
        )
        tables = b.execute_script(RESULTS_TABLES)
        if tables:
            self.tables[rel] = tables

    def serious(self) -> list[str]:
        lines = []
        for rel, passes in sorted(self.violations.items()):
            for name, found in passes.items():
                for v in found:
                    if v["impact"] in AXE_FAILING:
                        lines.append(
                            f"{rel} [{name}]: {v['impact']} {v['id']} ({v['help']}) on "
                            f"{v['nodes']} element(s), e.g. {v['targets']}"
                        )
        return lines

    def write_report(self) -> None:
        lines = ["Problems:", *(self.problems or ["none"]), "", "Axe (per pass):"]
        if not self.axe:
            lines.append("not run: no axe-core (set BOOK_AXE_JS)")
        for rel, passes in sorted(self.violations.items()):
            summary = "; ".join(
                f"{name}: "
                + (
                    ", ".join(f"{v['impact']} {v['id']} x{v['nodes']}" for v in found)
                    or "0"
                )
                for name, found in passes.items()
            )
            lines.append(f"{rel}: {summary}")
        lines += ["", "Page heights at 1280 px (light):"]
        lines += [f"{h:>8,} px  {rel}" for rel, h in sorted(self.heights.items())]
        lines += ["", "Results tables at 1280 px:", json.dumps(self.tables)]
        lines += ["", "Pages scrolling sideways on a phone:", json.dumps(self.sideways)]
        for width, found in sorted(self.scrolling.items()):
            lines += ["", f"Boxes scrolling sideways at {width} px (light):"]
            lines += [
                f"{rel} {place(box)}: {box['kind']}, {box['px']} px: {box['text']!r}"
                for rel, boxes in sorted(found.items())
                for box in boxes
            ]
        (SHOTS / "report.txt").write_text("\n".join(lines) + "\n")
        (SHOTS / "problems.txt").write_text(
            "\n".join(self.problems) + "\n" if self.problems else "none\n"
        )
        (SHOTS / "report.json").write_text(
            json.dumps(
                {
                    "problems": self.problems,
                    "heights": self.heights,
                    "axe": self.violations,
                    "search": self.search,
                    "results_tables": self.tables,
                    "sideways": self.sideways,
                    "scrolling": self.scrolling,
                },
                indent=1,
            )
        )


@pytest.fixture(scope="module")
def survey(request, browser, book_server, book_html) -> Survey:
    try:
        axe = request.getfixturevalue("axe_js")
    except (pytest.skip.Exception, pytest.fail.Exception):
        axe = None  # the other checks still run; the accessibility test reports why
    found = Survey(browser, book_server, book_html, axe)
    try:
        found.run()
    finally:
        found.write_report()
    return found


def test_every_page_loads_cleanly(survey):
    assert survey.checked >= 10, f"only {survey.checked} pages found in {survey.html}"
    assert not survey.problems, "\n".join(survey.problems)


def test_no_serious_accessibility_violations(survey, axe_js):
    assert survey.violations, "axe ran on no page"
    serious = survey.serious()
    assert not serious, (
        f"{len(serious)} serious or critical WCAG 2 A/AA violations (axe-core); fix the theme "
        "configuration or book/_static/course.css:\n" + "\n".join(serious)
    )


def test_one_search_control_is_visible(survey):
    wrong = [
        f"{rel} [{name}]: {controls}"
        for rel, passes in sorted(survey.search.items())
        for name, controls in passes.items()
        if len(controls) != 1
    ]
    assert not wrong, (
        "every page should show exactly one search control:\n" + "\n".join(wrong)
    )


def test_no_page_scrolls_sideways_on_a_phone(survey):
    wrong = [
        f"{where}: {found['excess']} px too wide, e.g. {found['wide']}"
        for where, found in sorted(survey.sideways.items())
    ]
    assert not wrong, (
        "pages wider than a 400 px phone screen (let the element wrap, or scroll in its own "
        "box; see book/_static/course.css):\n" + "\n".join(wrong)
    )


def place(box: dict) -> str:
    """Where a scrolling box is on its page: its code cell, else its section."""
    if box["cell"]:
        return f"code cell {box['cell']}"
    return f"in {box['section']!r}" if box["section"] else "outside any section"


def wide_boxes(survey, width: int) -> list[str]:
    """One line per page where a box that may not scroll sideways at ``width`` does."""
    lines = []
    for rel, boxes in sorted(survey.scrolling.get(width, {}).items()):
        wrong = [b for b in boxes if b["kind"] not in MAY_SCROLL[width]]
        if wrong:
            first = wrong[0]
            lines.append(
                f"{rel}: {len(wrong)} box(es) scroll sideways; the first ({place(first)}, "
                f"{first['kind']}, {first['px']} px too wide): {first['text']!r}"
            )
    return lines


FIT = {  # width: what must fit there, and how to fix a box that does not
    1280: "code blocks, outputs or tables that scroll sideways at 1280 px: format code to 88 "
    "characters, print long messages and reprs on several lines, narrow the table",
    400: "at 400 px only code and display math may scroll sideways in their own boxes; "
    "prose, outputs, tables and figures must fit",
}


@pytest.mark.parametrize("width", FIT)
def test_nothing_scrolls_sideways_that_may_not(survey, width):
    assert survey.heights, "no page was surveyed"
    wrong = wide_boxes(survey, width)
    assert not wrong, (
        f"{FIT[width]} (every box is listed in _build/browser-check/report.txt):\n"
        + "\n".join(wrong)
    )


def test_results_table_fits_at_1280(survey):
    tables = survey.tables.get("book/results.html")
    assert tables, "book/results.html shows no table.results-table"
    for t in tables:
        assert t["table"] <= t["room"] and t["container"] <= 0, (
            f"a results table is {t['table']} px wide in {t['room']} px at 1280 px: readers "
            "must scroll sideways; fix table.results-table in book/_static/course.css"
        )


@pytest.mark.parametrize("chapter", CHAPTERS)
def test_chapter_height(survey, chapter):
    rel = f"notebooks/{chapter}.html"
    assert rel in survey.heights, f"{rel} was not surveyed"
    height = survey.heights[rel]
    assert height <= MAX_CHAPTER_HEIGHT, (
        f"{rel} is {height:,} px tall at 1280 px (limit {MAX_CHAPTER_HEIGHT:,}): shorten "
        "its stored outputs (e.g. progress bars) or split the chapter"
    )
