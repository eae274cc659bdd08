"""The per-layer tables: one layer's figures and every layer of a real model, checked
against PyTorch itself (Hypothesis draws the layers, as in ``test_arithmetic.py``) and
against torchinfo."""

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st
from torch import nn
from torchinfo import summary

from lenet_utils import arithmetic as ar
from lenet_utils import tables as tb
from lenet_utils.models import LeNet5
from rules import VARIANTS, as_pair, examples, geometries, ours, run_real, variant
from rules import one_thread  # noqa: F401 (an autouse fixture: imported, it applies)

PAPER = ar.PAPER_1998  # the paper's printed (parameters, connections) per layer


def test_the_paper_figures_of_non_square_pooling():
    rows = tb.layer_table(
        [("C1", nn.Conv2d(1, 6, 5)), ("S2", nn.MaxPool2d((2, 3)))], (1, 1, 32, 32)
    )
    # 6 maps x 14 x 9 units x (2 x 3) links; counting the first side only gave 3,024.
    assert rows[1].output_shape == (1, 6, 14, 9) and rows[1].connections == 4_536


def check_against_pytorch(cfg: dict) -> bool:
    """Compare one configuration with the real layer; True if PyTorch accepted it."""
    layer, real = run_real(cfg)
    if real is None:  # PyTorch refuses it <=> we refuse it, naming the layer
        with pytest.raises(ValueError, match=r"^L: "):
            ours(cfg)
        return False
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


@examples(1000)
@given(geometries(impossible=False))
def test_counts_of_possible_layers_are_pytorchs(geometry):
    for kind, ceil_mode in VARIANTS:
        check_against_pytorch(variant(geometry, kind, ceil_mode))


@examples(300)
@given(geometries())
def test_impossible_layers_are_refused_as_pytorch_refuses_them(geometry):
    for kind, ceil_mode in VARIANTS:
        check_against_pytorch(variant(geometry, kind, ceil_mode))


def test_grouped_biasless_convolution():
    counts = tb.layer_counts(6, 14, 5, out_channels=16, groups=2, bias=False, name="C3")
    assert counts == ((16, 10, 10), 1_200, 120_000, 120_000)


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


def test_layer_counts_checks_in_the_calculators_order():
    # Chapter 1's page shows the first broken rule; layer_counts states the same one:
    # the channels first, then the groups, then the geometry of output_size.
    with pytest.raises(ValueError, match=r"^C1: in_channels must be at least 1, got 0"):
        tb.layer_counts(0, -4, 0, out_channels=6, name="C1")
    with pytest.raises(ValueError, match=r"^C1: in_channels 6 is not divisible"):
        tb.layer_counts(6, -4, 0, out_channels=8, groups=4, name="C1")
    with pytest.raises(ValueError, match=r"^C1: the input height must be at least 1"):
        tb.layer_counts(1, -4, 0, out_channels=6, name="C1")
    with pytest.raises(ValueError, match=r"^C1: a convolution needs out_channels"):
        tb.layer_counts(1, 28, 5, name="C1")
    with pytest.raises(TypeError, match=r"^C1: bias must be True or False, got 'no'"):
        tb.layer_counts(1, 28, 5, out_channels=6, bias="no", name="C1")
