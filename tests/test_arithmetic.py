"""The paper's numbers, asserted exactly, and the formulas checked against PyTorch itself."""

import itertools

import pytest
import torch
from torch import nn

from lenet_utils import arithmetic as ar
from lenet_utils.models import C3_TABLE, LeNet5

# LeCun et al. (1998), section II-B: (trainable parameters, connections) per layer.
PAPER = ar.PAPER_1998  # the paper's printed (parameters, connections) per layer


def paper_counts() -> dict[str, tuple[int, int]]:
    """Every layer's figures from the formulas alone, walking sizes from the 32x32 input."""
    s = 32
    c1_out = ar.conv_output_size(s, 5, layer="C1")
    c1 = ar.conv_params(1, 6, 5)
    s2_out = ar.pool_output_size(c1_out, 2, layer="S2")
    c3_out = ar.conv_output_size(s2_out, 5, layer="C3")
    c3 = ar.sparse_conv_params(C3_TABLE, 5)
    s4_out = ar.pool_output_size(c3_out, 2, layer="S4")
    c5_out = ar.conv_output_size(s4_out, 5, layer="C5")
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
    for kind in ("conv", "pool", "conv", "pool", "conv"):
        fn = ar.conv_output_size if kind == "conv" else ar.pool_output_size
        sizes.append(fn(sizes[-1], 5 if kind == "conv" else 2))
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


def test_simple_form_matches_general_form():
    for w, f, p, s in itertools.product(
        range(5, 40), (1, 2, 3, 5), (0, 1, 2), (1, 2, 3)
    ):
        if w + 2 * p < f or (w - f + 2 * p) % s:
            continue
        assert ar.simple_output_size(w, f, p, s) == ar.output_size(w, f, s, p)


def test_simple_form_refuses_fractional_steps():
    with pytest.raises(ValueError, match="not a whole number"):
        ar.simple_output_size(32, 5, 0, 2)  # (32 - 5) / 2 = 13.5


# Odd configurations: the formula must agree with the shape PyTorch really produces.
CONV_CASES = [
    # (size, kernel, stride, padding, dilation)
    (32, 5, 1, 0, 1),
    (28, 5, 1, 2, 1),
    (31, 4, 3, 1, 1),
    (17, 3, 2, 0, 2),
    ((29, 40), (3, 7), (2, 3), (1, 2), (1, 2)),
    ((9, 64), (9, 1), 1, 0, 1),
    (7, 3, 5, 2, 3),
    (1, 1, 1, 0, 1),
]


@pytest.mark.parametrize("size,kernel,stride,padding,dilation", CONV_CASES)
def test_conv_output_size_matches_torch(size, kernel, stride, padding, dilation):
    conv = nn.Conv2d(2, 3, kernel, stride=stride, padding=padding, dilation=dilation)
    h, w = (size, size) if isinstance(size, int) else size
    got = conv(torch.zeros(1, 2, h, w)).shape[-2:]
    expected = ar.conv_output_size(size, kernel, stride, padding, dilation)
    expected = (expected, expected) if isinstance(expected, int) else expected
    assert tuple(got) == expected


@pytest.mark.parametrize("ceil_mode", [False, True])
@pytest.mark.parametrize(
    "size,kernel,stride,padding",
    [(28, 2, 2, 0), (11, 3, 2, 1), (10, 3, None, 0), (15, 4, 3, 2)],
)
def test_pool_output_size_matches_torch(size, kernel, stride, padding, ceil_mode):
    for pool in (nn.MaxPool2d, nn.AvgPool2d):
        layer = pool(kernel, stride=stride, padding=padding, ceil_mode=ceil_mode)
        got = layer(torch.zeros(1, 1, size, size)).shape[-1]
        assert got == ar.pool_output_size(
            size, kernel, stride, padding, ceil_mode=ceil_mode
        )


@pytest.mark.parametrize(
    "args,kwargs,message",
    [
        (
            (28, 30),
            {},
            r"C9: a kernel spanning 30 pixels does not fit the padded input height 28",
        ),
        ((28, 5, 0), {}, r"C9: stride must be positive, got 0"),
        ((-4, 3), {}, r"C9: input height must be positive, got -4"),
        ((28, 5, 1, -1), {}, r"C9: padding cannot be negative, got -1"),
        ((28, 0), {}, r"C9: kernel height must be positive, got 0"),
        ((28, 3, 1, 0, 0), {}, r"C9: dilation must be positive, got 0"),
        (
            ((28, 6), (5, 7)),
            {},
            r"C9: a kernel spanning 7 pixels does not fit the padded input width 6",
        ),
    ],
)
def test_impossible_layers_raise_with_name_and_numbers(args, kwargs, message):
    with pytest.raises(ValueError, match=message):
        ar.output_size(*args, layer="C9", **kwargs)


def test_kernel_that_fits_exactly_is_allowed():
    assert ar.output_size(5, 3, 1, 0, 2) == 1  # dilated 3x3 spans exactly 5 pixels


def test_bad_argument_type_is_reported():
    with pytest.raises(ValueError, match="kernel must be an int or a pair"):
        ar.output_size(28, (3, 3, 3))


def test_macs_total_is_about_042_million():
    rows = ar.layer_table(LeNet5(), (1, 1, 32, 32))
    assert sum(r.macs for r in rows) == 416_520
    by = {r.layer: r for r in rows}
    assert (
        by["C1"].macs == 117_600
        and by["C3"].macs == 240_000
        and by["C5"].macs == 48_000
    )


@pytest.mark.parametrize("variant", ["modern", "classic"])
@pytest.mark.parametrize("input_size", [28, 32])
def test_layer_table_of_the_model(variant, input_size):
    rows = ar.layer_table(
        LeNet5(variant, input_size=input_size), (2, 1, input_size, input_size)
    )
    by = {r.layer: r for r in rows}
    assert [r.layer for r in rows] == ["C1", "S2", "C3", "S4", "C5", "F6", "output"]
    # Layers whose wiring matches the paper reproduce its figures exactly.
    for name in ("C1", "C5", "F6"):
        assert (by[name].params, by[name].connections) == PAPER[name]
    assert (by["C3"].params, by["C3"].connections) == (2_416, 241_600)  # dense C3
    assert (
        by["S2"].params == 0 and by["S2"].connections == 6 * 14 * 14 * 4
    )  # no bias link
    assert by["C1"].output_shape == (2, 6, 28, 28) and by["C5"].output_shape == (
        2,
        120,
        1,
        1,
    )
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

    rows = ar.layer_table(
        [("A1", nn.Conv2d(1, 1, 3)), ("B2", Sparse()), ("flat", nn.Flatten())],
        (1, 1, 8, 8),
    )
    assert [(r.layer, r.connections, r.macs) for r in rows] == [
        ("A1", 10 * 36, 9 * 36),
        ("B2", 7, 11),
    ]
    assert rows[1].params == 2 * 9 + 2  # its children's parameters, counted once
    text = ar.format_table(rows)
    assert text.splitlines()[2].split()[:2] == ["A1", "Conv2d"]
    assert text.splitlines()[-1].split() == ["total", "30", "367", "335"]
