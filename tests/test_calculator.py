"""Chapter 1's interactive layer calculator, driven in headless Chromium.

Every figure and every error text the page shows is compared with ``lenet_utils.arithmetic``
computed here in Python: hundreds of random layers typed into the calculator's own fields
(seeded), thousands more through the ``window.lenetCalculator.compute`` function that the
page uses, edits of the LeNet-5 builder against ``tables.layer_table`` of the same PyTorch model,
and the messages for input the page cannot read. Uses the session fixtures of conftest.py
(the whole book is built once, with warnings as errors).
"""

from __future__ import annotations

import random
from collections import OrderedDict

import pytest
import torch
from torch import nn

pytest.importorskip(
    "selenium", reason="the browser check needs selenium: pip install -e '.[dev]'"
)
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.common.keys import Keys  # noqa: E402

from lenet_utils import arithmetic as ar
from lenet_utils import tables as tb
from rules import ours, rule_of

PAGE = "notebooks/01_paper_arithmetic.html"
ROOT = "[data-lenet-calculator]"
LAYER = ROOT + " .lenet-calc__layer"
BUILDER = ROOT + " .lenet-calc__builder"


@pytest.fixture(scope="module")
def page(browser, book_server):
    browser.get(f"{book_server}/{PAGE}")
    ready = browser.execute_script(
        "return !!(window.lenetCalculator && document.querySelector(arguments[0]))",
        LAYER,
    )
    assert ready, "the calculator did not start on chapter 1's page"
    return browser


def shape(dims) -> str:
    return " × ".join(str(d) for d in dims)


# ----------------------------------------------------------------------------------------
# Random layers: Python's answer
# ----------------------------------------------------------------------------------------


def expected(cfg: dict) -> dict:
    """What the page must show for ``cfg`` (numbers and flags), from lenet_utils."""
    kind = cfg["kind"]
    try:  # the page's ceil_mode checkbox is off for a convolution
        ceil_mode = cfg["ceil_mode"] and kind != "conv"
        c = ours({**cfg, "ceil_mode": ceil_mode}, name=ar.LAYER_KINDS[kind])
    except ValueError as err:
        return {"rule": str(err)}
    return {
        "output": shape(c.output_shape),
        "params": f"{c.params:,}",
        "connections": f"{c.connections:,}",
        "macs": f"{c.macs:,}",
    }


def random_dims(rng: random.Random, lo: int, hi: int, bad: tuple[int, ...] = ()):
    """An int or an (h, w) pair; about one in twelve from ``bad`` (an impossible value)."""

    def one():
        return rng.choice(bad) if bad and rng.random() < 0.08 else rng.randint(lo, hi)

    return one() if rng.random() < 0.5 else (one(), one())


def as_text(rng: random.Random, value) -> str:
    """The way a reader might type it: "3", " 3 ", "3,5", "3, 5", "3x5", "(3, 5)"..."""
    if isinstance(value, int):
        return rng.choice(["{}", " {} ", "{}"]).format(value)
    h, w = value
    return rng.choice(["{},{}", "{}, {}", "{}x{}", "({}, {})", "{} × {}"]).format(h, w)


def random_layer(rng: random.Random) -> dict:
    """A random layer: about half of them chosen to be possible, the rest anything."""
    kind = rng.choice(["conv", "maxpool", "avgpool"])
    if rng.random() < 0.5:
        groups = rng.choice([1, 1, 1, 2, 3, 4, 0])
        return dict(
            kind=kind,
            size=random_dims(rng, 1, 40, (0, -3)),
            in_channels=rng.choice([1, 2, 3, 4, 6, 8, 12, 0]),
            out_channels=rng.choice([1, 2, 4, 6, 16, 120, 0]),
            groups=groups,
            bias=rng.random() < 0.7,
            kernel_size=random_dims(rng, 1, 7, (0, -1)),
            stride=random_dims(rng, 1, 4, (0, -2)),
            padding=random_dims(rng, 0, 3, (-1,)),
            dilation=random_dims(rng, 1, 3, (0,)) if rng.random() < 0.7 else 1,
            ceil_mode=rng.random() < 0.5,
        )
    groups = rng.choice([1, 1, 2, 3])
    kernel = random_dims(rng, 1, 7)
    kh, kw = (kernel, kernel) if isinstance(kernel, int) else kernel
    padding = (rng.randint(0, kh // 2), rng.randint(0, kw // 2))
    return dict(
        kind=kind,
        size=random_dims(rng, 8, 40),
        in_channels=groups * rng.randint(1, 4),
        out_channels=groups * rng.randint(1, 8),
        groups=groups,
        bias=rng.random() < 0.7,
        kernel_size=kernel,
        stride=random_dims(rng, 1, 4),
        padding=padding if rng.random() < 0.5 else min(padding),
        dilation=random_dims(rng, 1, 2) if kind != "avgpool" else 1,
        ceil_mode=rng.random() < 0.5,
    )


# ----------------------------------------------------------------------------------------
# The page's answer
# ----------------------------------------------------------------------------------------

# Sets the calculator's fields, one configuration at a time, as a reader would (an input
# event after the values change), and reads back what the page shows.
DRIVE_FIELDS = """
const [selector, configs] = arguments;
const root = document.querySelector(selector);
const form = root.querySelector('form');
const result = root.querySelector('[data-out="result"]');
const text = (key) => {
  const node = result.querySelector('[data-out="' + key + '"]');
  return node ? node.textContent : null;
};
return configs.map((fields) => {
  let last = null;
  for (const [key, value] of Object.entries(fields)) {
    last = form.querySelector('[data-field="' + key + '"]');
    if (last.type === 'checkbox') last.checked = value; else last.value = value;
  }
  last.dispatchEvent(new Event('input', {bubbles: true}));
  return {rule: text('rule'), error: text('error'), output: text('output'),
          params: text('params'), connections: text('connections'),
          macs: text('macs'), all: result.textContent};
});
"""


def fields_of(cfg: dict, rng: random.Random) -> dict:
    """The configuration as the strings (and ticks) the page's fields hold."""
    return {
        "kind": cfg["kind"],
        "size": as_text(rng, cfg["size"]),
        "in_channels": str(cfg["in_channels"]),
        "out_channels": str(cfg["out_channels"]),
        "groups": str(cfg["groups"]),
        "bias": cfg["bias"],
        "kernel_size": as_text(rng, cfg["kernel_size"]),
        "stride": as_text(rng, cfg["stride"]),
        "padding": as_text(rng, cfg["padding"]),
        "dilation": as_text(rng, cfg["dilation"]),
        "ceil_mode": cfg["ceil_mode"],
    }


def check_shown(shown: dict, want: dict, cfg: dict) -> None:
    assert shown["all"].strip(), f"blank result for {cfg}"
    for bad in ("NaN", "undefined", "null", "Infinity"):
        assert bad not in shown["all"], f"{bad} shown for {cfg}: {shown['all']}"
    if "rule" in want:
        assert shown["rule"] == want["rule"], cfg
        assert shown["output"] is None, cfg
    else:
        assert shown["rule"] is None and shown["error"] is None, (cfg, shown)
        got = {k: shown[k] for k in ("output", "params", "connections", "macs")}
        assert got == want, cfg


def test_rule_table_is_pythons(page):
    assert page.execute_script("return window.lenetCalculator.RULES") == ar.RULES
    assert page.execute_script("return window.lenetCalculator.KINDS") == ar.LAYER_KINDS


def test_random_layers_typed_into_the_fields_match_python(page):
    rng = random.Random(11)
    configs = [random_layer(rng) for _ in range(300)]
    shown = page.execute_script(
        DRIVE_FIELDS, LAYER, [fields_of(c, rng) for c in configs]
    )
    wants = [expected(c) for c in configs]
    for cfg, got, want in zip(configs, shown, wants):
        check_shown(got, want, cfg)
    # Not vacuous: both kinds of answer, and every rule the page can reach, appear.
    rules = {rule_of(w["rule"]) for w in wants if "rule" in w}
    assert sum("rule" not in w for w in wants) >= 100
    assert rules >= {
        "size",
        "kernel",
        "stride",
        "padding",
        "dilation",
        "pool_padding",
        "fit",
        "count",
        "groups_divide",
        "avgpool_dilation",
    }, rules


def test_thousands_of_layers_through_compute_match_python(page):
    """The function behind the fields, on more layers (conv with ceil_mode included)."""
    rng = random.Random(12)
    configs = [random_layer(rng) for _ in range(3000)]
    for cfg in configs:
        cfg["name"] = rng.choice(["C1", "S2", "C3", "layer"])
        if rng.random() < 0.1:
            cfg["stride"] = None  # PyTorch's default: 1, or the kernel for pooling
    got = page.execute_script(
        "return arguments[0].map(c => window.lenetCalculator.compute(c));", configs
    )
    seen = set()
    for cfg, shown in zip(configs, got):
        kind = cfg["kind"]
        extra = {}
        if kind == "conv":
            extra = dict(
                out_channels=cfg["out_channels"],
                groups=cfg["groups"],
                bias=cfg["bias"],
            )
        args = [cfg[k] for k in ("size", "kernel_size", "stride", "padding")]
        try:
            c = tb.layer_counts(
                cfg["in_channels"],
                *args,
                cfg["dilation"],
                cfg["ceil_mode"],
                kind=kind,
                name=cfg["name"],
                **extra,
            )
        except ValueError as err:
            assert shown == {"ok": False, "error": str(err)}, cfg
            seen.add(rule_of(str(err)))
            continue
        assert shown == {
            "ok": True,
            "output_shape": list(c.output_shape),
            "params": str(c.params),
            "connections": str(c.connections),
            "macs": str(c.macs),
        }, cfg
    assert "ceil_mode" in seen and "fit_ceil" in seen, seen


def test_big_layers_are_counted_exactly(page):
    # Beyond 2**53 a JavaScript number loses digits; the page counts in BigInt.
    cfg = dict(
        kind="conv",
        name="big",
        in_channels=4096,
        out_channels=4096,
        size=(1_000_000, 1_000_000),
        kernel_size=7,
        stride=1,
        padding=3,
        dilation=1,
        groups=1,
        bias=True,
        ceil_mode=False,
    )
    got = page.execute_script(
        "return window.lenetCalculator.compute(arguments[0])", cfg
    )
    c = tb.layer_counts(4096, (10**6, 10**6), 7, 1, 3, out_channels=4096, name="big")
    assert (got["connections"], got["macs"]) == (str(c.connections), str(c.macs))
    assert c.macs > 2**53


#: The calculator's fields for C1, a layer PyTorch accepts; each bad-input case changes some.
GOOD_LAYER = dict(
    kind="conv",
    size="32",
    in_channels="1",
    out_channels="6",
    groups="1",
    kernel_size="5",
    stride="1",
    padding="0",
    dilation="1",
)

BAD_INPUT = [
    (
        {"kernel_size": ""},
        "Kernel: the field is empty; enter a whole number such as 3, "
        "or two (height,width) such as 3,5.",
    ),
    (
        {"stride": "two"},
        "Stride: “two” is not a whole number such as 3, or two "
        "(height,width) such as 3,5.",
    ),
    (
        {"padding": "1.5"},
        "Padding: “1.5” is not a whole number such as 3, or two "
        "(height,width) such as 3,5.",
    ),
    ({"in_channels": "3,3"}, "Channels: “3,3” is not a whole number such as 3."),
    (
        {"out_channels": " "},
        "Output maps: the field is empty; enter a whole number such as 3.",
    ),
    (
        {"size": "1,2,3"},
        "Size: “1,2,3” is not a whole number such as 3, or two "
        "(height,width) such as 3,5.",
    ),
    (
        {"size": "99999999"},
        "Size: 99999999 is too large for this calculator (at most 1,000,000).",
    ),
]


@pytest.mark.parametrize("fields,message", BAD_INPUT)
def test_bad_input_gets_a_visible_message(page, fields, message):
    (shown,) = page.execute_script(DRIVE_FIELDS, LAYER, [dict(GOOD_LAYER, **fields)])
    assert shown["error"] == message
    assert shown["output"] is None and "NaN" not in shown["all"]
    visible = page.find_element(By.CSS_SELECTOR, LAYER + ' [data-out="error"]')
    assert visible.is_displayed() and visible.text == message


@pytest.mark.parametrize(
    "fields,message",
    [
        ({"stride": "0"}, "Conv2d: stride must be positive, got 0 (height)"),
        ({"size": "-4,8"}, "Conv2d: the input height must be at least 1 pixel, got -4"),
        (
            {"kind": "maxpool", "padding": "2", "kernel_size": "3"},
            "MaxPool2d: padding 2 is more than half the kernel 3: PyTorch pads pooling "
            "layers by at most kernel_size // 2 = 1 (height)",
        ),
        (
            {"kind": "avgpool", "dilation": "1,2", "kernel_size": "2", "stride": "2"},
            "AvgPool2d: AvgPool2d has no dilation, got 2 (width); use dilation 1, or "
            "MaxPool2d",
        ),
        (
            {"size": "4", "kernel_size": "5"},
            "Conv2d: the kernel spans 5 pixels but the padded input height is 4 + 2x0 = 4; "
            "use a smaller kernel or dilation, or more padding",
        ),
    ],
)
def test_impossible_layers_show_pythons_rule(page, fields, message):
    (shown,) = page.execute_script(DRIVE_FIELDS, LAYER, [dict(GOOD_LAYER, **fields)])
    assert shown["rule"] == message
    assert shown["error"].startswith("Impossible layer.")


def test_typing_and_the_keyboard_work(page):
    """A sample through real key presses: typing, Tab between fields, arrows on the type."""
    good = dict(GOOD_LAYER, bias=True, ceil_mode=False)
    page.execute_script(DRIVE_FIELDS, LAYER, [good])
    layer = page.find_element(By.CSS_SELECTOR, LAYER)
    kernel = layer.find_element(By.CSS_SELECTOR, '[data-field="kernel_size"]')
    kernel.send_keys(Keys.CONTROL, "a")
    kernel.send_keys("3,5")
    kernel.send_keys(Keys.TAB)  # to the stride
    active = page.switch_to.active_element
    assert active.get_attribute("data-field") == "stride"
    active.send_keys(Keys.BACKSPACE, "2")
    out = layer.find_element(By.CSS_SELECTOR, '[data-out="output"]').text
    assert out == shape((6, *ar.output_size(32, (3, 5), 2)))  # 6 × 15 × 14

    kind = layer.find_element(By.CSS_SELECTOR, '[data-field="kind"]')
    kind.send_keys(Keys.ARROW_DOWN)  # Convolution -> Max pooling
    assert kind.get_attribute("value") == "maxpool"
    figures = layer.find_element(By.CSS_SELECTOR, '[data-out="params"]').text
    assert figures == "0"
    out = layer.find_element(By.CSS_SELECTOR, '[data-out="output"]').text
    assert out == shape((1, *ar.output_size(32, (3, 5), 2, kind="maxpool")))
    # Pooling: the convolution's fields are disabled and out of the Tab order.
    disabled = {
        e.get_attribute("data-field")
        for e in layer.find_elements(By.CSS_SELECTOR, "[data-field]:disabled")
    }
    assert disabled == {"out_channels", "groups", "bias"}
    ceil = layer.find_element(By.CSS_SELECTOR, '[data-field="ceil_mode"]')
    ceil.send_keys(Keys.SPACE)  # ticks it
    assert ceil.is_selected()


def test_results_are_announced_and_every_field_is_labelled(page):
    found = page.execute_script(
        """
        const root = document.querySelector(arguments[0]);
        const fields = [...root.querySelectorAll('input, select, button')];
        const unlabelled = fields.filter(f => !(f.labels && f.labels.length)
            && !f.getAttribute('aria-label') && !(f.tagName === 'BUTTON' && f.textContent));
        const live = [...root.querySelectorAll('[aria-live]')].map(
            e => e.getAttribute('data-out'));
        return {n: fields.length, unlabelled: unlabelled.map(f => f.outerHTML), live};
        """,
        ROOT,
    )
    assert found["n"] >= 30 and found["unlabelled"] == []
    assert sorted(found["live"]) == ["result", "summary"]


# ----------------------------------------------------------------------------------------
# The LeNet-5 builder
# ----------------------------------------------------------------------------------------

LENET = {  # the builder's starting values: the modern LeNet-5
    "in_channels": 1,
    "size": 32,
    "C1": dict(kind="conv", maps=6, kernel_size=5, stride=1, padding=0),
    "S2": dict(kind="maxpool", kernel_size=2, stride=2, padding=0),
    "C3": dict(kind="conv", maps=16, kernel_size=5, stride=1, padding=0),
    "S4": dict(kind="maxpool", kernel_size=2, stride=2, padding=0),
    "C5": dict(kind="conv", maps=120, kernel_size=5, stride=1, padding=0),
    "F6": dict(kind="linear", units=84),
    "output": dict(kind="linear", units=10),
}
LAYERS = ["C1", "S2", "C3", "S4", "C5", "F6", "output"]

DRIVE_BUILDER = """
const [selector, edits] = arguments;
const root = document.querySelector(selector);
root.querySelector('button').click();  // reset to the modern LeNet-5
for (const [layer, key, value] of edits) {
  const input = layer === 'input'
    ? root.querySelector('.lenet-calc__inline [data-field="' + key + '"]')
    : root.querySelector('[data-layer="' + layer + '"][data-field="' + key + '"]');
  input.value = value;
  input.dispatchEvent(new Event('input', {bubbles: true}));
}
const cells = (tr) => {
  const out = {};
  for (const td of tr.querySelectorAll('[data-out]')) out[td.dataset.out] = td.textContent;
  return out;
};
const rows = {};
for (const tr of root.querySelectorAll('tr[data-row]')) rows[tr.dataset.row] = cells(tr);
rows.summary = root.querySelector('[data-out="summary"]').textContent;
return rows;
"""


def net_with(edits) -> dict:
    net = {k: (dict(v) if isinstance(v, dict) else v) for k, v in LENET.items()}
    for layer, key, value in edits:
        if layer == "input":
            net[key] = value
        else:
            net[layer][key] = value
    return net


def torch_model(net) -> tuple[nn.Module, tuple[int, ...]]:
    """The same network in PyTorch, and its input size (batch of 1)."""
    h, w = (net["size"],) * 2 if isinstance(net["size"], int) else net["size"]
    layers: list[tuple[str, nn.Module]] = []
    channels, flat = net["in_channels"], None
    for name in LAYERS:
        spec = net[name]
        if spec["kind"] == "conv":
            geometry = (spec["kernel_size"], spec["stride"], spec["padding"])
            layers.append((name, nn.Conv2d(channels, spec["maps"], *geometry)))
            layers.append((f"act{name}", nn.ReLU()))
            channels = spec["maps"]
        elif spec["kind"] == "maxpool":
            geometry = (spec["kernel_size"], spec["stride"], spec["padding"])
            layers.append((name, nn.MaxPool2d(*geometry)))
        else:
            if flat is None:  # the features so far, flattened
                probe = nn.Sequential(*(m for _, m in layers))
                flat = probe(torch.zeros(1, net["in_channels"], h, w)).numel()
                layers.append(("flatten", nn.Flatten()))
            layers.append((name, nn.Linear(flat, spec["units"])))
            flat = spec["units"]
    return nn.Sequential(OrderedDict(layers)), (1, net["in_channels"], h, w)


def field_text(value) -> str:
    return str(value) if isinstance(value, int) else "{},{}".format(*value)


BUILDER_EDITS = [
    [],  # the modern LeNet-5 as it starts: chapter 1's table, 61,706 parameters
    [("input", "size", 28), ("C1", "padding", 2)],  # raw MNIST, padded inside C1
    [("C3", "maps", 32)],
    [("C1", "kernel_size", (3, 5)), ("C1", "padding", (1, 2))],
    [
        ("input", "in_channels", 3),
        ("input", "size", (64, 48)),
        ("S2", "kernel_size", 3),
        ("S2", "stride", 3),
        ("F6", "units", 200),
    ],
    [
        ("input", "size", 64),  # C5 ends 2x2: F6 reads 120 x 2 x 2 = 480
        ("C1", "stride", 2),
        ("C1", "padding", 2),
        ("S2", "padding", 1),
        ("output", "units", 100),
    ],
]


@pytest.mark.parametrize("edits", BUILDER_EDITS, ids=lambda e: repr(e)[:60])
def test_builder_edits_match_layer_table_of_the_same_model(page, edits):
    net = net_with(edits)
    page_edits = [(layer, key, field_text(v)) for layer, key, v in edits]
    shown = page.execute_script(DRIVE_BUILDER, BUILDER, page_edits)
    model, input_size = torch_model(net)
    rows = tb.layer_table(model, input_size)
    assert [r.layer for r in rows] == LAYERS
    for r in rows:
        assert shown[r.layer] == {
            "output": "×".join(map(str, r.output_shape[1:])),  # tight: 6×28×28
            "params": f"{r.params:,}",
            "connections": f"{r.connections:,}",
            "macs": f"{r.macs:,}",
        }, r.layer
    totals = [
        sum(getattr(r, k) for r in rows) for k in ("params", "connections", "macs")
    ]
    assert shown["total"] == dict(
        zip(("params", "connections", "macs"), (f"{t:,}" for t in totals))
    )
    assert shown["summary"] == (
        f"Total: {totals[0]:,} parameters, {totals[1]:,} connections, "
        f"{totals[2]:,} multiply-accumulates."
    )
    if not edits:  # chapter 1's table of LeNet5()
        from lenet_utils.models import LeNet5

        assert totals == [
            61_706,
            sum(r.connections for r in tb.layer_table(LeNet5(), (1, 1, 32, 32))),
            416_520,
        ]


IMPOSSIBLE_EDITS = [
    # (edits, the layer that breaks, Python's rule for it)
    ([("C5", "kernel_size", 7)], "C5", lambda: ar.output_size(5, 7, 1, 0, name="C5")),
    (
        [("S2", "padding", 2)],
        "S2",
        lambda: ar.output_size(28, 2, 2, 2, kind="maxpool", name="S2"),
    ),
    ([("C1", "stride", 0)], "C1", lambda: ar.output_size(32, 5, 0, name="C1")),
    (
        [("input", "size", (32, 12))],
        "C3",
        lambda: ar.output_size((14, 4), 5, 1, 0, name="C3"),
    ),
]


@pytest.mark.parametrize(
    "edits,culprit,rule", IMPOSSIBLE_EDITS, ids=lambda e: str(e)[:40]
)
def test_builder_shows_the_rule_of_an_impossible_layer(page, edits, culprit, rule):
    with pytest.raises(ValueError) as err:
        rule()
    message = str(err.value)
    net = net_with(edits)
    with pytest.raises((RuntimeError, ValueError)):  # PyTorch refuses the same network
        model, input_size = torch_model(net)
        model(torch.zeros(input_size))
    page_edits = [(layer, key, field_text(v)) for layer, key, v in edits]
    shown = page.execute_script(DRIVE_BUILDER, BUILDER, page_edits)
    assert shown[culprit] == {"error": message}
    later = LAYERS[LAYERS.index(culprit) + 1 :]
    for name in later:
        assert shown[name] == {"blocked": f"— (needs a possible {culprit})"}
    assert shown["summary"] == "No total: " + message
    assert "NaN" not in str(shown)


def test_builder_bad_input_and_reset(page):
    shown = page.execute_script(DRIVE_BUILDER, BUILDER, [("C3", "maps", "lots")])
    assert shown["summary"] == "C3 maps: “lots” is not a whole number such as 3."
    shown = page.execute_script(DRIVE_BUILDER, BUILDER, [])  # the reset button
    assert shown["total"]["params"] == "61,706"


def test_other_pages_are_left_alone(browser, book_server):
    browser.get(f"{book_server}/book/intro.html")
    state = browser.execute_script(
        "return [typeof window.lenetCalculator, "
        "document.querySelectorAll('.lenet-calc, [data-lenet-calculator]').length]"
    )
    assert state == ["object", 0]
