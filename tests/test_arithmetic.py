"""The paper's numbers, asserted exactly, and the formulas checked against PyTorch itself.

The property-based tests (Hypothesis) build thousands of random real layers in every run:
convolutions and both poolings, non-square tuples, dilation, ceil_mode, groups, no bias,
input sizes that do not divide evenly, and layers PyTorch refuses. They are derandomised,
so CI sees the same examples every time.
"""

import collections
import itertools
import warnings

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from torch import nn
from torchinfo import summary

from lenet_utils import arithmetic as ar
from lenet_utils import tables as tb
from rules import rule_of
from lenet_utils.models import C3_TABLE, LeNet5

PAPER = ar.PAPER_1998  # the paper's printed (parameters, connections) per layer


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """Tiny layers run several times faster on one thread than on a pool of them (which
    waits for its threads on every call); restored afterwards for the other tests."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def examples(n: int) -> settings:
    """``n`` examples, the same in every run (for CI), with no example database left
    behind and no per-example deadline (the first torch call of a run is slow)."""
    return settings(
        max_examples=n,
        derandomize=True,
        database=None,
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
    )


def paper_counts() -> dict[str, tuple[int, int]]:
    """Every layer's figures from the formulas alone, walking sizes from the 32x32 input."""
    s = 32
    c1_out = ar.conv_output_size(s, 5, name="C1")
    c1 = ar.conv_params(1, 6, 5)
    s2_out = ar.pool_output_size(c1_out, 2, name="S2")
    c3_out = ar.conv_output_size(s2_out, 5, name="C3")
    c3 = ar.sparse_conv_params(C3_TABLE, 5)
    s4_out = ar.pool_output_size(c3_out, 2, name="S4")
    c5_out = ar.conv_output_size(s4_out, 5, name="C5")
    c5 = ar.conv_params(16, 120, 5)
    f6 = ar.linear_params(120, 84)
    return {
        "C1": (c1, ar.conv_connections(c1, c1_out)),
        "S2": (ar.subsampling_params(6), ar.subsampling_connections(6, 2, s2_out)),
        "C3": (c3, ar.conv_connections(c3, c3_out)),
        "S4": (ar.subsampling_params(16), ar.subsampling_connections(16, 2, s4_out)),
        "C5": (c5, ar.conv_connections(c5, c5_out)),
        "F6": (f6, f6),
    }


@pytest.mark.parametrize("layer", list(PAPER))
def test_paper_figures_exactly(layer):
    assert paper_counts()[layer] == PAPER[layer]


def test_paper_sizes_chain():
    sizes = [32]
    for kind in ("conv", "maxpool", "conv", "avgpool", "conv"):
        sizes.append(ar.output_size(sizes[-1], 5 if kind == "conv" else 2, kind=kind))
    assert sizes == [32, 28, 14, 10, 5, 1]


def test_paper_total_is_60000_parameters():
    # The paper's trainable total: 60,000 (with the RBF output, which has no trainable parameters).
    assert sum(p for p, _ in paper_counts().values()) == 60_000


def test_c3_table_structure_matches_paper_text():
    """Six maps read 3 contiguous S2 maps, six read 4 contiguous, three 4 discontinuous, one all 6."""
    sizes = [len(t) for t in C3_TABLE]
    assert sizes == [3] * 6 + [4] * 9 + [6]

    def contiguous(maps):  # contiguous modulo 6 (wrap-around)
        return any(
            set(maps) == {(start + k) % 6 for k in range(len(maps))}
            for start in range(6)
        )

    assert all(contiguous(t) for t in C3_TABLE[:12])
    assert not any(contiguous(t) for t in C3_TABLE[12:15])
    assert C3_TABLE[15] == (0, 1, 2, 3, 4, 5)
    assert [t[0] for t in C3_TABLE[:6]] == [0, 1, 2, 3, 0, 0]  # maps 4, 5 wrap around
    assert C3_TABLE[0] == (0, 1, 2) and C3_TABLE[13] == (1, 2, 4, 5)


def test_full_c3_is_the_tutorials_2416():
    assert ar.conv_params(6, 16, 5) == 2_416
    assert ar.conv_params(6, 16, 5) - ar.sparse_conv_params(C3_TABLE, 5) == 900


# ----------------------------------------------------------------------------------------
# Output sizes: the special form, the examples of issue #11, and the error messages
# ----------------------------------------------------------------------------------------


def test_simple_form_is_the_general_form_when_exact():
    for w, f, s, p in itertools.product(
        range(5, 40), (1, 2, 3, 5), (1, 2, 3), (0, 1, 2)
    ):
        if w + 2 * p < f or (w - f + 2 * p) % s:
            continue
        assert ar.simple_output_size(w, f, s, p) == ar.output_size(w, f, s, p)
    # PyTorch's argument order: (width, kernel_size, stride, padding).
    assert ar.simple_output_size(28, 5, 1, 2) == 28
    assert ar.simple_output_size(28, 4, 2, 1) == 14


def test_simple_form_refuses_fractional_steps():
    with pytest.raises(ValueError) as err:
        ar.simple_output_size(32, 5, 2, 0, name="C1")  # (32 - 5) / 2 = 13.5
    assert str(err.value) == (
        "C1: (W - F + 2P) / S = (32 - 5 + 2x0) / 2 is not a whole number: the last 1 "
        "pixel(s) are not covered, and output_size rounds down to 14 as PyTorch does"
    )


def test_ceil_mode_drops_a_last_window_in_the_right_padding():
    # Issue #11: ceil((11 + 2 - 3) / 3) + 1 = 5, but the fifth window would start at 12,
    # inside the right-hand padding, and PyTorch drops it.
    real = nn.MaxPool2d(3, stride=3, padding=1, ceil_mode=True)(
        torch.zeros(1, 1, 11, 11)
    )
    assert real.shape[-1] == 4
    assert ar.output_size(11, 3, 3, 1, ceil_mode=True, kind="maxpool") == 4
    assert ar.pool_output_size(11, 3, 3, 1, ceil_mode=True, kind="avgpool") == 4


def test_ceil_mode_lets_a_window_overhang_the_input():
    # A 3-pixel window on 2 pixels: floor mode refuses it, ceil mode gives one output.
    assert nn.MaxPool2d(3, 2, ceil_mode=True)(torch.zeros(1, 1, 2, 2)).shape[-1] == 1
    assert ar.output_size(2, 3, 2, ceil_mode=True, kind="maxpool") == 1
    with pytest.raises(ValueError, match="spans 3 pixels"):
        ar.output_size(2, 3, 2, kind="maxpool")


def test_pooling_stride_defaults_to_the_kernel():
    assert ar.output_size(28, 2, kind="maxpool") == 14 == ar.pool_output_size(28, 2)
    assert ar.output_size(28, 2) == 27  # a convolution's stride defaults to 1
    assert ar.pool_output_size(10, (2, 3)) == (5, 3)


def test_the_paper_figures_of_non_square_pooling():
    rows = tb.layer_table(
        [("C1", nn.Conv2d(1, 6, 5)), ("S2", nn.MaxPool2d((2, 3)))], (1, 1, 32, 32)
    )
    # 6 maps x 14 x 9 units x (2 x 3) links; counting the first side only gave 3,024.
    assert rows[1].output_shape == (1, 6, 14, 9) and rows[1].connections == 4_536


MESSAGES = [
    # (args, kwargs, the exact message)
    (
        (4, 5),
        {"name": "C5"},
        "C5: the kernel spans 5 pixels but the padded input height is 4 + 2x0 = 4; "
        "use a smaller kernel or dilation, or more padding",
    ),
    (
        ((28, 6), (5, 3), 1, 0, (1, 3)),
        {"name": "C9"},
        "C9: the kernel spans 7 pixels but the padded input width is 6 + 2x0 = 6; "
        "use a smaller kernel or dilation, or more padding",
    ),
    ((28, 5, (1, 0)), {"name": "C1"}, "C1: stride must be positive, got 0 (width)"),
    ((-4, 3), {"name": "C1"}, "C1: the input height must be at least 1 pixel, got -4"),
    ((28, 5, 1, -1), {"name": "C1"}, "C1: padding cannot be negative, got -1 (height)"),
    ((28, (3, 0)), {"name": "C1"}, "C1: the kernel width must be at least 1, got 0"),
    ((28, 3, 1, 0, 0), {"name": "C1"}, "C1: dilation must be positive, got 0 (height)"),
    (
        (11, 3, 1, 2),
        {"name": "S2", "kind": "maxpool"},
        "S2: padding 2 is more than half the kernel 3: PyTorch pads pooling layers by at "
        "most kernel_size // 2 = 1 (height)",
    ),
    (
        (2, 5, 2, 0, 1, True),
        {"name": "S2", "kind": "avgpool"},
        "S2: the kernel spans 5 pixels but the padded input height is 2 + 2x0 = 2; even "
        "with ceil_mode a window may overhang it by at most stride - 1 = 1 pixel(s)",
    ),
    (
        (28, 2, 2, 0, 1, True),
        {"name": "C1"},
        "C1: ceil_mode applies to pooling only (MaxPool2d, AvgPool2d); a convolution "
        "always rounds down",
    ),
    (
        (28, 2, 2, 0, (1, 2)),
        {"name": "S2", "kind": "avgpool"},
        "S2: AvgPool2d has no dilation, got 2 (width); use dilation 1, or MaxPool2d",
    ),
    (
        (28, 5),
        {"name": "C1", "kind": "pool"},
        "C1: kind must be 'conv', 'maxpool' or 'avgpool', got 'pool'",
    ),
    (
        (28, (3, 3, 3)),
        {"name": "C1"},
        "C1: kernel_size must be an int or a pair of ints (height, width), got (3, 3, 3)",
    ),
    (
        (28.0, 5),
        {"name": "C1"},
        "C1: size must be an int or a pair of ints (height, width), got 28.0",
    ),
    (
        (28, "5"),
        {"name": "C1"},
        "C1: kernel_size must be an int or a pair of ints (height, width), got '5'",
    ),
    (
        (28, True),
        {"name": "C1"},
        "C1: kernel_size must be an int or a pair of ints (height, width), got True",
    ),
]


@pytest.mark.parametrize("args,kwargs,message", MESSAGES)
def test_impossible_layers_raise_the_rule(args, kwargs, message):
    with pytest.raises(ValueError) as err:
        ar.output_size(*args, **kwargs)
    assert str(err.value) == message


def test_rules_are_checked_in_a_fixed_order():
    # A zero stride on the width is reported before a kernel too big for the height.
    with pytest.raises(ValueError, match="stride must be positive, got 0 .width."):
        ar.output_size(4, (9, 1), (1, 0))


def test_messages_come_from_the_rule_table():
    fields = dict(
        name="N", what="W", value=7, axis="A", padding=2, kernel=3, half=1, span=9
    )
    fields.update(size=4, padded=8, overhang=1, groups=2, width=5, stride=2)
    fields.update(leftover=1, general=3)
    for rule, template in ar.RULES.items():
        text = template.format(**fields)
        assert text.startswith("N: ") and "{" not in text, rule


def test_kernel_that_fits_exactly_is_allowed():
    assert ar.output_size(5, 3, 1, 0, 2) == 1  # dilated 3x3 spans exactly 5 pixels


def test_numpy_integers_are_accepted_and_lists_are_pairs():
    i64, i32 = np.int64, np.int32
    got = ar.output_size(i64(28), i32(5), i64(1), i64(2), kind="maxpool")
    assert got == 28 and type(got) is int
    assert ar.output_size([29, 40], [3, 7]) == (27, 34)
    assert ar.conv_params(i64(6), i64(16), i32(5), groups=i64(2)) == 1_216
    # PyTorch's pooling reads a one-element kernel tuple as square; its Conv2d does not.
    assert ar.output_size(9, (3,), kind="maxpool") == (3, 3)
    with pytest.raises(ValueError, match="must be an int or a pair"):
        ar.output_size(9, (3,))


# ----------------------------------------------------------------------------------------
# Property-based: random real layers against the arithmetic
# ----------------------------------------------------------------------------------------


def values(lo: int, hi: int) -> list:
    """Ints in [lo, hi] and (h, w) pairs of them, about half of each."""
    ints = list(range(lo, hi + 1))
    return ints * len(ints) + list(itertools.product(ints, ints))


def dims(lo: int, hi: int, bad: tuple[int, ...] = ()) -> st.SearchStrategy:
    """One of :func:`values`, or with ``bad`` about one in ten a refused value.

    One ``sampled_from`` per argument: drawing is most of the time these tests take, and
    a single draw is much cheaper than a tuple of draws.
    """
    good = values(lo, hi)
    refused = [*bad, *((lo, b) for b in bad), *((b, hi) for b in bad)]
    if not refused:
        return st.sampled_from(good)
    ratio = 9 * len(refused) / len(good)  # copies of ``good`` for 9 good to 1 refused
    copies, refused_copies = max(1, round(ratio)), max(1, round(1 / ratio))
    return st.sampled_from(good * copies + refused * refused_copies)


def as_pair(v):
    return (v, v) if isinstance(v, int) else tuple(v)


# A drawn geometry is tried as every layer kind (5 configurations an example):
# (kind, ceil_mode); AvgPool2d has no dilation, so it gets 1.
VARIANTS = [
    ("conv", False),
    ("maxpool", False),
    ("maxpool", True),
    ("avgpool", False),
    ("avgpool", True),
]


@st.composite
def geometries(draw, *, impossible: bool = True):
    """Random arguments for a conv or pooling layer and its input (a dict)."""
    if impossible:  # below 1 (0 for padding), or too big for the pooling padding rule
        kernel = dims(1, 7, (0, -1))
        stride = st.one_of(dims(1, 6, (0, -2)), st.none())
        padding = dims(0, 4, (-1,))
        dilation = dims(1, 3, (0, -1))
    else:
        kernel, stride, padding, dilation = (
            dims(1, 7),
            dims(1, 6),
            dims(0, 3),
            dims(1, 3),
        )
    groups = draw(st.sampled_from([1, 1, 2, 3]))
    return dict(
        size=draw(dims(1, 23)),
        kernel_size=draw(kernel),
        stride=draw(stride) if impossible else draw(st.one_of(stride, st.none())),
        padding=draw(padding),
        dilation=draw(dilation),
        groups=groups,
        in_channels=groups * draw(st.sampled_from([1, 2, 3])),
        out_channels=groups * draw(st.sampled_from([1, 2, 3])),
        bias=draw(st.booleans()),
    )


def variant(geometry: dict, kind: str, ceil_mode: bool) -> dict:
    cfg = dict(geometry, kind=kind, ceil_mode=ceil_mode)
    if kind == "avgpool":
        cfg["dilation"] = 1
    if kind == "conv" and cfg["stride"] is None:
        cfg["stride"] = 1  # nn.Conv2d takes no None; output_size reads None as 1 too
    return cfg


def real_layer(cfg) -> nn.Module:
    geometry = dict(
        stride=cfg["stride"], padding=cfg["padding"], ceil_mode=cfg["ceil_mode"]
    )
    if cfg["kind"] == "avgpool":
        return nn.AvgPool2d(cfg["kernel_size"], **geometry)
    if cfg["kind"] == "maxpool":
        return nn.MaxPool2d(cfg["kernel_size"], dilation=cfg["dilation"], **geometry)
    return nn.Conv2d(
        cfg["in_channels"],
        cfg["out_channels"],
        cfg["kernel_size"],
        stride=cfg["stride"],
        padding=cfg["padding"],
        dilation=cfg["dilation"],
        groups=cfg["groups"],
        bias=cfg["bias"],
    )


def run_real(cfg):
    """(layer, output) of the real PyTorch layer, or (None, None) if PyTorch refuses it."""
    h, w = as_pair(cfg["size"])
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # e.g. "Initializing zero-element tensors"
            layer = real_layer(cfg)
            with torch.no_grad():
                return layer, layer(torch.zeros(1, cfg["in_channels"], h, w))
    except (RuntimeError, ValueError):
        return None, None


def ours(cfg) -> tb.LayerCounts:
    extra = (
        dict(out_channels=cfg["out_channels"], groups=cfg["groups"], bias=cfg["bias"])
        if cfg["kind"] == "conv"
        else {}
    )
    return tb.layer_counts(
        cfg["in_channels"],
        cfg["size"],
        cfg["kernel_size"],
        cfg["stride"],
        cfg["padding"],
        cfg["dilation"],
        cfg["ceil_mode"],
        kind=cfg["kind"],
        name="L",
        **extra,
    )


def check_against_pytorch(cfg) -> bool:
    """Compare one configuration with the real layer; True if PyTorch accepted it."""
    layer, real = run_real(cfg)
    args = [cfg[k] for k in ("size", "kernel_size", "stride", "padding", "dilation")]
    if real is None:  # PyTorch refuses it <=> we refuse it, naming the layer
        with pytest.raises(ValueError, match=r"^L: "):
            ar.output_size(*args, cfg["ceil_mode"], kind=cfg["kind"], name="L")
        with pytest.raises(ValueError, match=r"^L: "):
            ours(cfg)
        return False
    got = ar.output_size(*args, cfg["ceil_mode"], kind=cfg["kind"], name="L")
    assert as_pair(got) == tuple(real.shape[-2:])
    # An int comes back when every argument was an int.
    assert isinstance(got, int) == all(
        isinstance(a, int) for a in args if a is not None
    )
    counts = ours(cfg)
    assert counts.output_shape == tuple(real.shape[1:])
    units = real.numel()  # output values (batch of 1)
    if cfg["kind"] == "conv":
        per_unit = layer.weight[0].numel()  # (in / groups) x kh x kw weights per value
        assert counts.params == sum(p.numel() for p in layer.parameters())
        assert counts.macs == units * per_unit
        assert counts.connections == units * (per_unit + (layer.bias is not None))
    else:
        kh, kw = as_pair(layer.kernel_size)
        assert counts == (counts.output_shape, 0, units * kh * kw, 0)
    return True


@examples(1200)
@given(geometries())
def test_layers_are_pytorchs_and_impossible_ones_refused(geometry):
    for kind, ceil_mode in VARIANTS:
        check_against_pytorch(variant(geometry, kind, ceil_mode))


@examples(1000)
@given(geometries(impossible=False))
def test_counts_of_possible_layers_are_pytorchs(geometry):
    for kind, ceil_mode in VARIANTS:
        check_against_pytorch(variant(geometry, kind, ceil_mode))


def test_the_random_layers_reach_every_case():
    """The strategies are not vacuous: many layers run, many are refused, for each rule."""
    seen = collections.Counter()

    @examples(300)
    @given(geometries())
    def tally(geometry):
        for kind, ceil_mode in VARIANTS:
            cfg = variant(geometry, kind, ceil_mode)
            try:
                ours(cfg)
                seen["possible"] += 1
            except ValueError as err:
                seen[rule_of(str(err))] += 1

    tally()
    # Hypothesis versions draw differently (6.100 reached one rule only 10 times in 300
    # examples), so each rule must be reached, not a share of them.
    assert seen["possible"] >= 30, seen
    for case in ("kernel", "stride", "padding", "dilation", "pool_padding"):
        assert seen[case] >= 5, seen
    assert seen["fit"] + seen["fit_ceil"] >= 5, seen


@examples(100)
@given(geometries(impossible=False))
def test_conv_connections_and_macs_are_torchinfos_mult_adds(geometry):
    # torchinfo counts a convolution's mult-adds as (weights + biases) x output positions:
    # that is exactly our connections (the bias link included), and our MACs are the same
    # without the one bias add per output value.
    cfg = variant(geometry, "conv", False)
    layer, real = run_real(cfg)
    assume(real is not None)
    h, w = as_pair(cfg["size"])
    info = summary(layer, input_size=(1, cfg["in_channels"], h, w), verbose=0)
    counts = ours(cfg)
    assert counts.connections == info.total_mult_adds
    assert counts.macs == info.total_mult_adds - (real.numel() if cfg["bias"] else 0)
    assert counts.params == info.trainable_params


@examples(100)
@given(st.integers(1, 50), st.integers(1, 50), st.booleans())
def test_linear_counts_are_torchinfos_mult_adds(n_in, n_out, bias):
    layer = nn.Linear(n_in, n_out, bias=bias)
    info = summary(layer, input_size=(1, n_in), verbose=0)
    params = ar.linear_params(n_in, n_out, bias=bias)
    assert params == info.trainable_params == info.total_mult_adds
    (row,) = tb.layer_table([("F6", layer)], (1, n_in))
    assert (row.params, row.connections, row.macs) == (params, params, n_in * n_out)


@examples(300)
@given(geometries(impossible=False))
def test_layer_table_counts_every_layer_with_the_same_rules(geometry):
    for kind, ceil_mode in VARIANTS:
        cfg = variant(geometry, kind, ceil_mode)
        layer, real = run_real(cfg)
        if real is None:
            continue
        h, w = as_pair(cfg["size"])
        (row,) = tb.layer_table([("S2", layer)], (1, cfg["in_channels"], h, w))
        counts = ours(cfg)
        assert row.layer == "S2" and row.kind == type(layer).__name__
        assert row.output_shape == (1, *counts.output_shape)
        assert (row.params, row.connections, row.macs) == counts[1:]


@examples(400)
@given(st.integers(-1, 6), st.integers(-1, 6), st.integers(-1, 4), st.booleans())
def test_conv_params_refuses_what_conv2d_refuses(c_in, c_out, groups, bias):
    # Zero channels: PyTorch builds such a convolution (it computes nothing); we refuse it.
    assume(c_in >= 1 and c_out >= 1 or groups < 1)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            real = nn.Conv2d(c_in, c_out, 3, groups=groups, bias=bias)
    except (RuntimeError, ValueError):
        real = None
    if real is None:
        with pytest.raises(ValueError, match=r"^C3: (groups|in_|out_)"):
            ar.conv_params(c_in, c_out, 3, groups=groups, bias=bias, name="C3")
    else:
        params = sum(p.numel() for p in real.parameters())
        assert ar.conv_params(c_in, c_out, 3, groups=groups, bias=bias) == params


@pytest.mark.parametrize(
    "args,kwargs,message",
    [
        ((6, 16, 5), {"groups": 0}, "C3: groups must be at least 1, got 0"),
        (
            (6, 16, 5),
            {"groups": 4},
            "C3: in_channels 6 is not divisible by groups 4; PyTorch splits the "
            "channels into equal groups",
        ),
        (
            (6, 15, 5),
            {"groups": 2},
            "C3: out_channels 15 is not divisible by groups 2; PyTorch splits the "
            "channels into equal groups",
        ),
        ((0, 16, 5), {}, "C3: in_channels must be at least 1, got 0"),
    ],
)
def test_conv_params_errors(args, kwargs, message):
    with pytest.raises(ValueError) as err:
        ar.conv_params(*args, name="C3", **kwargs)
    assert str(err.value) == message


def test_grouped_and_biasless_convolutions():
    assert ar.conv_params(6, 16, (5, 3), groups=2, bias=False) == 16 * 3 * 15
    assert ar.conv_macs(6, 16, (5, 3), (10, 12), groups=2) == 3 * 15 * 16 * 120
    counts = tb.layer_counts(6, 14, 5, out_channels=16, groups=2, bias=False, name="C3")
    assert counts == ((16, 10, 10), 1_200, 120_000, 120_000)


# ----------------------------------------------------------------------------------------
# Whole models
# ----------------------------------------------------------------------------------------


def test_macs_total_is_about_042_million():
    rows = tb.layer_table(LeNet5(), (1, 1, 32, 32))
    assert sum(r.macs for r in rows) == 416_520
    by = {r.layer: r for r in rows}
    assert (by["C1"].macs, by["C3"].macs, by["C5"].macs) == (117_600, 240_000, 48_000)


@pytest.mark.parametrize("variant", ["modern", "classic"])
@pytest.mark.parametrize("input_size", [28, 32])
def test_layer_table_of_the_model(variant, input_size):
    rows = tb.layer_table(
        LeNet5(variant, input_size=input_size), (2, 1, input_size, input_size)
    )
    by = {r.layer: r for r in rows}
    assert [r.layer for r in rows] == ["C1", "S2", "C3", "S4", "C5", "F6", "output"]
    # Layers whose wiring matches the paper reproduce its figures exactly.
    for name in ("C1", "C5", "F6"):
        assert (by[name].params, by[name].connections) == PAPER[name]
    assert (by["C3"].params, by["C3"].connections) == (2_416, 241_600)  # dense C3
    assert by["S2"].params == 0 and by["S2"].connections == 6 * 14 * 14 * 4  # no bias
    assert by["C1"].output_shape == (2, 6, 28, 28)
    assert by["C5"].output_shape == (2, 120, 1, 1)
    assert sum(r.params for r in rows) == sum(
        p.numel() for p in LeNet5(variant).parameters()
    )


def test_layer_table_accepts_a_layer_list_and_self_counting_modules():
    class Sparse(nn.Module):
        def __init__(self):
            super().__init__()
            self.inner = nn.Conv2d(1, 2, 3)

        def forward(self, x):
            return self.inner(x)

        def lenet_counts(self, in_shape, out_shape):
            return 7, 11

    rows = tb.layer_table(
        [("A1", nn.Conv2d(1, 1, 3)), ("B2", Sparse()), ("flat", nn.Flatten())],
        (1, 1, 8, 8),
    )
    assert [(r.layer, r.connections, r.macs) for r in rows] == [
        ("A1", 10 * 36, 9 * 36),
        ("B2", 7, 11),
    ]
    assert rows[1].params == 2 * 9 + 2  # its children's parameters, counted once


def test_table_frame_is_readable():
    frame = tb.table_frame(tb.layer_table(LeNet5(), (1, 1, 32, 32)))
    assert list(frame.index) == ["C1", "S2", "C3", "S4", "C5", "F6", "output"]
    assert frame.loc["C1", "input_shape"] == "1x32x32"
    assert frame.loc["C1", "output_shape"] == "6x28x28"
    assert frame.loc["F6", "output_shape"] == "84"
    assert all(
        str(frame[c].dtype) == "int64" for c in ("params", "connections", "macs")
    )
    assert int(frame["params"].sum()) == 61_706
