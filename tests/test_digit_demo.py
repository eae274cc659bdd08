"""Chapter 4's "draw a digit" box: the recorded LeNet-5 in the reader's browser.

Without a browser: the page's model file holds exactly the weights chapter 4 kept, with the
record they came from, and the page weight the box adds stays under 1 MB.

In headless Chromium (the session fixtures of conftest.py, on the built book):
- the JavaScript network's logits match torch's on 1,000 MNIST test digits within 1e-4, every
  prediction agrees, and so does the accuracy;
- the JavaScript preprocessing (a drawing to an MNIST digit) matches a reference written here
  in numpy, on off-centre, thin, thick and small digits;
- strokes drawn with mouse events, and with touch at 400 px, give a visible answer; a drawn 3
  and a drawn 7 are read correctly; an empty box gives a message, never a guess;
- axe-core finds no serious or critical violation in the box, light and dark, at 1280 and
  400 px, with an answer shown. Screenshots go to ``_build/browser-check/digit/``.
"""

from __future__ import annotations

import base64
import json
import math
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from lenet_utils.pipeline import normalize
from lenet_utils.readers import STATS

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))
import export_digit_model as export  # noqa: E402

PAGE = "notebooks/04_mnist.html"
STATIC = ROOT / "book" / "_static"
SHOTS = ROOT / "_build" / "browser-check" / "digit"


def page_model() -> dict:
    text = export.PAGE_MODEL.read_text()
    return json.loads(text[text.index("{") : text.rindex("}") + 1])


def test_the_page_model_is_the_recorded_model():
    raw, record = page_model(), json.loads(export.RECORD.read_text())
    for key in ("model", "seed", "top1", "commit", "date", "device"):
        assert raw["record"][key] == record[key], f"{key}: page model and record differ"
    blob = np.frombuffer(base64.b64decode(raw["weights"]), dtype="<f4")
    kept = export.tensors(export.load_model())
    assert [name for name, _ in raw["tensors"]] == [name for name, _ in kept]
    at = 0
    for (name, shape), (_, t) in zip(raw["tensors"], kept):
        n = t.numel()
        assert list(t.shape) == shape, name
        assert np.array_equal(blob[at : at + n], t.numpy().ravel()), name
        at += n
    assert at == blob.size
    labels = raw["samples"]["labels"]
    assert sorted(set(labels)) == list(range(10))
    assert len(base64.b64decode(raw["samples"]["images"])) == 784 * len(labels)


def test_the_box_adds_under_a_megabyte():
    files = [STATIC / "digit-demo.js", STATIC / "digit-demo.css", export.PAGE_MODEL]
    total = sum(f.stat().st_size for f in files)
    assert total <= 1_000_000, f"the drawing box adds {total:,} bytes to the page"


# ----------------------------------------------------------------------------------------
# The preprocessing, written again in numpy: area-averaging matrices, then centre of mass
# ----------------------------------------------------------------------------------------


def area_matrix(n: int, m: int) -> np.ndarray:
    """(m, n): each of m target pixels' share of each of n source pixels."""
    scale = n / m
    a = np.arange(m)[:, None] * scale
    s = np.arange(n)[None, :]
    overlap = np.minimum(a + scale, s + 1) - np.maximum(a, s)
    return np.clip(overlap, 0, None) / scale


def reference(ink: np.ndarray) -> np.ndarray | None:
    """MNIST's normalisation: fit a 20x20 box, then centre of mass at the 28x28 centre."""
    ys, xs = np.nonzero(ink > 0)
    if not len(ys):
        return None
    crop = ink[ys.min() : ys.max() + 1, xs.min() : xs.max() + 1]
    h, w = crop.shape
    s = 20 / max(h, w)
    th, tw = max(1, math.floor(h * s + 0.5)), max(1, math.floor(w * s + 0.5))
    small = area_matrix(h, th) @ crop @ area_matrix(w, tw).T
    cy = (np.arange(th) + 0.5) @ small.sum(1) / small.sum()
    cx = (np.arange(tw) + 0.5) @ small.sum(0) / small.sum()
    oy = min(max(math.floor(14 - cy + 0.5), 0), 28 - th)
    ox = min(max(math.floor(14 - cx + 0.5), 0), 28 - tw)
    out = np.zeros((28, 28))
    out[oy : oy + th, ox : ox + tw] = small
    return out


def drawing(kind: str) -> np.ndarray:
    """A 280x280 drawing: a 7 drawn off-centre, thin, thick, small, or a 0."""
    from PIL import Image, ImageDraw

    img = Image.new("L", (280, 280))
    pen = ImageDraw.Draw(img)
    shapes = {
        "off-centre": ([(10, 10), (120, 10), (50, 150)], 20),
        "thin": ([(80, 40), (200, 40), (120, 240)], 4),
        "thick": ([(70, 40), (210, 40), (120, 240)], 48),
        "small": ([(200, 200), (240, 200), (215, 260)], 10),
    }
    if kind == "zero":
        pen.ellipse((90, 40, 190, 240), outline=200, width=18)
    else:
        points, width = shapes[kind]
        pen.line(points, fill=255, width=width, joint="curve")
    return np.asarray(img, dtype=np.float64) / 255


def test_the_reference_keeps_mnist_proportions():
    digit = reference(drawing("thin"))
    rows, cols = np.nonzero(digit.sum(1))[0], np.nonzero(digit.sum(0))[0]
    assert rows.max() - rows.min() + 1 == 20  # the taller side fills the 20-pixel box
    assert cols.max() - cols.min() + 1 < 20
    centre = (np.arange(28) + 0.5) @ digit.sum(1) / digit.sum()
    assert abs(centre - 14) <= 0.5


@pytest.mark.parametrize("kind, unprepared", [("small", 5), ("off-centre", 6)])
def test_a_drawing_needs_mnist_preparation(kind, unprepared):
    """Chapter 4's claim: shrunk straight to 28x28 these 7s are misread; prepared, not."""
    model, ink = export.load_model(), drawing(kind)
    shrunk = ink.reshape(28, 10, 28, 10).mean(axis=(1, 3))
    digits = torch.tensor(np.stack([reference(ink), shrunk]), dtype=torch.float32)
    with torch.no_grad():
        read = model(normalize(255 * digits[:, None], *STATS["mnist"])).argmax(1)
    assert read.tolist() == [7, unprepared]


# ----------------------------------------------------------------------------------------
# In the browser
# ----------------------------------------------------------------------------------------

# selenium is imported where it is used: without it, the browser fixture skips these tests and
# the ones above still run.
CSS = "css selector"  # selenium's By.CSS_SELECTOR
ROOT_SEL = "[data-digit-demo]"
# Strokes in the box's own coordinates (0-1): a 7 and a 3, as a person draws them.
SEVEN = [[(0.28, 0.22), (0.72, 0.22), (0.45, 0.82)]]
THREE = [
    [(0.32, 0.2), (0.6, 0.18), (0.68, 0.3), (0.6, 0.44), (0.45, 0.48)],
    [(0.45, 0.48), (0.65, 0.55), (0.7, 0.7), (0.58, 0.82), (0.3, 0.8)],
]


@pytest.fixture(scope="module")
def page(browser, book_server):
    browser.set_window_size(1280, 1400)
    browser.get(f"{book_server}/{PAGE}")
    ok = browser.execute_async_script(
        "const done = arguments[arguments.length - 1];"
        "window.lenetDigit.load().then(() => done(true), (e) => done(String(e)));"
    )
    assert ok is True, f"the drawing box's network did not load: {ok}"
    return browser


def js(browser, code: str, *args):
    return browser.execute_async_script(
        "const done = arguments[arguments.length - 1];"
        f"Promise.resolve().then(async () => {{ {code} }}).then(done, (e) => done('error: ' + e));",
        *args,
    )


def test_javascript_logits_match_torch_on_1000_test_digits(page):
    check = np.load(export.CHECK_SET)
    images, labels = check["images"], check["labels"]
    assert images.shape == (1000, 28, 28)
    logits = js(
        page,
        "const m = await window.lenetDigit.load();"
        "return arguments[0].map((im) => window.lenetDigit.forward(m, "
        "im.map((v) => v / 255)).logits);",
        images.reshape(1000, -1).tolist(),
    )
    assert not isinstance(logits, str), logits
    ours = torch.tensor(logits)
    model = export.load_model()
    with torch.no_grad():
        theirs = model(normalize(torch.from_numpy(images)[:, None], *STATS["mnist"]))
    assert (ours - theirs).abs().max().item() < 1e-4
    assert torch.equal(ours.argmax(1), theirs.argmax(1))
    acc_js = (ours.argmax(1) == torch.from_numpy(labels)).float().mean().item()
    acc_torch = (theirs.argmax(1) == torch.from_numpy(labels)).float().mean().item()
    assert acc_js == acc_torch and acc_js > 0.98


@pytest.mark.parametrize("kind", ["off-centre", "thin", "thick", "small", "zero"])
def test_preprocessing_matches_the_reference(page, kind):
    ink = drawing(kind)
    ours = js(
        page,
        "const out = window.lenetDigit.preprocess(arguments[0], 280, 280);"
        "return out && Array.from(out);",
        ink.ravel().tolist(),
    )
    assert not isinstance(ours, str), ours
    np.testing.assert_allclose(
        np.array(ours).reshape(28, 28), reference(ink), atol=1e-9
    )


def test_an_empty_drawing_is_no_digit(page):
    assert (
        js(page, "return window.lenetDigit.preprocess(new Array(400).fill(0), 20, 20);")
        is None
    )


def box(browser):
    return browser.find_element(CSS, ROOT_SEL + " canvas.digit-demo__canvas")


def clear(browser):
    button = browser.find_element(CSS, ROOT_SEL + " .digit-demo__button")
    browser.execute_script("arguments[0].scrollIntoView({block: 'center'})", button)
    button.click()


def stroke_path(canvas, stroke) -> list[tuple[int, int]]:
    """A stroke as offsets from the canvas's centre in px, in small steps as a hand moves."""
    w, h = canvas.size["width"], canvas.size["height"]
    points = [stroke[0]]
    for a, b in zip(stroke, stroke[1:]):
        steps = np.linspace(0, 1, 8)[1:]
        points += [(a[0] + t * (b[0] - a[0]), a[1] + t * (b[1] - a[1])) for t in steps]
    return [(int((x - 0.5) * w), int((y - 0.5) * h)) for x, y in points]


def draw_with_mouse(browser, strokes):
    from selenium.webdriver.common.action_chains import ActionChains

    canvas = box(browser)
    browser.execute_script("arguments[0].scrollIntoView({block: 'center'})", canvas)
    for stroke in strokes:
        first, *rest = stroke_path(canvas, stroke)
        chain = ActionChains(browser, duration=10)
        chain.move_to_element_with_offset(canvas, *first).click_and_hold()
        for at in rest:
            chain.move_to_element_with_offset(canvas, *at)
        chain.release().perform()


def draw_with_touch(browser, strokes):
    from selenium.webdriver.common.actions import interaction
    from selenium.webdriver.common.actions.action_builder import ActionBuilder
    from selenium.webdriver.common.actions.pointer_input import PointerInput

    canvas = box(browser)
    browser.execute_script("arguments[0].scrollIntoView({block: 'center'})", canvas)
    for stroke in strokes:
        first, *rest = stroke_path(canvas, stroke)
        finger = PointerInput(interaction.POINTER_TOUCH, "finger")
        actions = ActionBuilder(browser, mouse=finger, duration=10)
        actions.pointer_action.move_to(canvas, *first).pointer_down()
        for at in rest:
            actions.pointer_action.move_to(canvas, *at)
        actions.pointer_action.pointer_up()
        actions.perform()


def answer(browser) -> tuple[str, str]:
    """The large digit and the status line, once the answer is shown."""
    for _ in range(50):
        status = browser.find_element(CSS, ROOT_SEL + " .digit-demo__status")
        if "reads" in status.text or "empty" in status.text:
            break
        browser.execute_script("return new Promise((r) => setTimeout(r, 100))")
    top = browser.find_element(CSS, ROOT_SEL + " [data-out=top]")
    return top.text, status.text


def shot(browser, name: str) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    browser.execute_script(
        "document.querySelector(arguments[0]).scrollIntoView({block: 'start'})",
        ROOT_SEL,
    )
    browser.save_screenshot(str(SHOTS / f"{name}.png"))


@pytest.mark.parametrize("digit, strokes", [("7", SEVEN), ("3", THREE)])
def test_a_digit_drawn_with_the_mouse_is_read(page, digit, strokes):
    clear(page)
    draw_with_mouse(page, strokes)
    top, status = answer(page)
    shot(page, f"drawn-{digit}-1280")
    assert top == digit and f"reads {digit}" in status, (top, status)
    assert page.find_element(CSS, ROOT_SEL + " .digit-demo__best").is_displayed()


def test_an_empty_box_gives_a_message_not_a_guess(page):
    draw_with_mouse(page, SEVEN)
    clear(page)
    top, status = answer(page)
    assert top == "\u2013" and "empty" in status
    assert not page.find_elements(CSS, ROOT_SEL + " .digit-demo__best")


def test_a_test_image_is_read_from_the_keyboard(page):
    buttons = page.find_elements(CSS, ROOT_SEL + " .digit-demo__button")
    pick = next(b for b in buttons if b.text == "Pick a test image")
    pick.send_keys("\n")  # focus and Enter: no mouse
    top, status = answer(page)
    assert status.startswith("Test image") and top in "0123456789", status


def test_touch_draws_at_400_px(page):
    page.set_window_size(400, 1400)
    try:
        width = page.execute_script(
            "return document.querySelector(arguments[0]).getBoundingClientRect().right",
            ROOT_SEL + " canvas",
        )
        assert width <= 400, f"the box reaches {width} px in a 400 px window"
        clear(page)
        draw_with_touch(page, SEVEN)
        top, status = answer(page)
        shot(page, "drawn-7-400-touch")
        assert top == "7", (top, status)
        clear(page)
        draw_with_touch(page, THREE)
        top, status = answer(page)
        shot(page, "drawn-3-400-touch")
        assert top == "3", (top, status)
    finally:
        page.set_window_size(1280, 1400)


@pytest.mark.parametrize("mode", ["light", "dark"])
@pytest.mark.parametrize("width", [1280, 400])
def test_no_serious_accessibility_violation_in_the_box(page, axe_js, mode, width):
    from test_browser import AXE_FAILING, AXE_RUN, AXE_TAGS

    page.set_window_size(width, 1400)
    try:
        page.execute_script(
            "document.documentElement.dataset.theme = arguments[0];"
            "document.documentElement.dataset.mode = arguments[0];",
            mode,
        )
        clear(page)
        draw_with_mouse(page, SEVEN)
        answer(page)
        if not page.execute_script("return typeof axe !== 'undefined'"):
            page.execute_script(axe_js.read_text())
        found = page.execute_async_script(AXE_RUN, AXE_TAGS, ROOT_SEL)
        assert not isinstance(found, str), found
        shot(page, f"axe-{mode}-{width}")
        serious = [v for v in found if v["impact"] in AXE_FAILING]
        assert not serious, serious
    finally:
        page.set_window_size(1280, 1400)
