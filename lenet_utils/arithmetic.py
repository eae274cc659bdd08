"""The paper's arithmetic: output sizes, parameters, connections and multiply-accumulates.

Every function here is plain integer arithmetic, so it can be checked by hand against
LeCun et al. (1998), and it follows PyTorch exactly: :func:`output_size` gives the shape
that ``nn.Conv2d``, ``nn.MaxPool2d`` or ``nn.AvgPool2d`` really produces, and refuses (with
a ``ValueError`` naming the rule) every layer that PyTorch refuses. :mod:`lenet_utils.tables`
applies the same rules to every layer of a real PyTorch model.

Conventions (the paper's):

* *parameters* are trainable numbers (weights and biases);
* *connections* count every input-to-unit link, the bias link included, so a shared
  weight is one parameter but many connections. A unit's links are counted whether they
  land on the image or on its padding, as the paper and torchinfo do; a pooling unit has
  ``kh * kw`` links (and no bias link in PyTorch's pooling);
* *MACs* (multiply-accumulates) count weight multiplications in convolution and fully
  connected layers; pooling, biases and activations are not counted.

The rule messages live in :data:`RULES`, one template per rule. The interactive calculator
of chapter 1 (``book/_static/lenet-calculator.js``) holds a copy of the same table, so that
the web page and Python say the same thing; ``tests/test_calculator.py`` keeps the two equal.
"""

from __future__ import annotations

import numbers
from typing import Sequence, Union


Size = Union[int, tuple[int, int]]

#: The figures printed in LeCun et al. (1998), section II-B: layer -> (trainable parameters,
#: connections). Reference values to check computed counts against, never used to compute them.
PAPER_1998: dict[str, tuple[int, int]] = {
    "C1": (156, 122_304),
    "S2": (12, 5_880),
    "C3": (1_516, 151_600),
    "S4": (32, 2_000),
    "C5": (48_120, 48_120),
    "F6": (10_164, 10_164),
}

#: The layer kinds :func:`output_size` knows, and the PyTorch module each one stands for.
KINDS: dict[str, str] = {
    "conv": "Conv2d",
    "maxpool": "MaxPool2d",
    "avgpool": "AvgPool2d",
}

#: Every rule a layer can break, as a template filled with ``str.format``-style ``{field}``
#: names (plain fields only, no format specs, so that JavaScript can fill them the same way).
#: Keep in step with ``RULES`` in ``book/_static/lenet-calculator.js`` (a test compares them).
RULES: dict[str, str] = {
    "type": (
        "{name}: {what} must be an int or a pair of ints (height, width), got {value}"
    ),
    "kind": "{name}: kind must be 'conv', 'maxpool' or 'avgpool', got {value}",
    "ceil_mode": (
        "{name}: ceil_mode applies to pooling only (MaxPool2d, AvgPool2d); "
        "a convolution always rounds down"
    ),
    "avgpool_dilation": (
        "{name}: AvgPool2d has no dilation, got {value} ({axis}); "
        "use dilation 1, or MaxPool2d"
    ),
    "size": "{name}: the input {axis} must be at least 1 pixel, got {value}",
    "kernel": "{name}: the kernel {axis} must be at least 1, got {value}",
    "stride": "{name}: stride must be positive, got {value} ({axis})",
    "padding": "{name}: padding cannot be negative, got {value} ({axis})",
    "dilation": "{name}: dilation must be positive, got {value} ({axis})",
    "pool_padding": (
        "{name}: padding {padding} is more than half the kernel {kernel}: PyTorch pads "
        "pooling layers by at most kernel_size // 2 = {half} ({axis})"
    ),
    "fit": (
        "{name}: the kernel spans {span} pixels but the padded input {axis} is "
        "{size} + 2x{padding} = {padded}; use a smaller kernel or dilation, or more padding"
    ),
    "fit_ceil": (
        "{name}: the kernel spans {span} pixels but the padded input {axis} is "
        "{size} + 2x{padding} = {padded}; even with ceil_mode a window may overhang it "
        "by at most stride - 1 = {overhang} pixel(s)"
    ),
    "count": "{name}: {what} must be at least 1, got {value}",
    "groups_divide": (
        "{name}: {what} {value} is not divisible by groups {groups}; "
        "PyTorch splits the channels into equal groups"
    ),
    "exact": (
        "{name}: (W - F + 2P) / S = ({width} - {kernel} + 2x{padding}) / {stride} is not "
        "a whole number: the last {leftover} pixel(s) are not covered, and output_size "
        "rounds down to {general} as PyTorch does"
    ),
}

__all__ = [
    "KINDS",
    "PAPER_1998",
    "RULES",
    "conv_connections",
    "conv_macs",
    "conv_output_size",
    "conv_params",
    "linear_macs",
    "linear_params",
    "output_size",
    "pool_output_size",
    "simple_output_size",
    "sparse_conv_params",
    "subsampling_connections",
    "subsampling_params",
]

_AXES = ("height", "width")


def _broken(rule: str, **fields: object) -> ValueError:
    """The ``ValueError`` for a broken rule, its text filled from :data:`RULES`."""
    return ValueError(RULES[rule].format(**fields))


def _is_int(value: object) -> bool:
    # numpy integers are numbers.Integral; bool is too, but a kernel of True is a mistake.
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def _pair(
    value: object, what: str, name: str, *, single: bool = False
) -> tuple[int, int]:
    """``value`` as ``(height, width)``: an int is square, a pair is (height, width).

    ``single`` also accepts a one-element sequence (PyTorch's pooling layers do).
    """
    if _is_int(value):
        return int(value), int(value)  # type: ignore[call-overload]
    if isinstance(value, (tuple, list)) and all(_is_int(v) for v in value):
        if len(value) == 2:
            return int(value[0]), int(value[1])
        if single and len(value) == 1:
            return int(value[0]), int(value[0])
    raise _broken("type", name=name, what=what, value=repr(value))


def _count(value: object, what: str, name: str) -> int:
    """A channel, unit or group count: an int of at least 1."""
    if not _is_int(value):
        raise ValueError(f"{name}: {what} must be an int, got {value!r}")
    if value < 1:  # type: ignore[operator]
        raise _broken("count", name=name, what=what, value=int(value))  # type: ignore[call-overload]
    return int(value)  # type: ignore[call-overload]


def output_size(
    size: Size,
    kernel_size: Size,
    stride: Size | None = None,
    padding: Size = 0,
    dilation: Size = 1,
    ceil_mode: bool = False,
    *,
    kind: str = "conv",
    name: str = "layer",
) -> Size:
    """Spatial output size of a convolution or pooling layer, exactly as PyTorch computes it.

    Arguments follow PyTorch's order and names (``nn.Conv2d``, ``nn.MaxPool2d``,
    ``nn.AvgPool2d``); each is an int (square) or an ``(height, width)`` pair. ``kind`` is
    ``"conv"``, ``"maxpool"`` or ``"avgpool"``; ``stride=None`` means PyTorch's default:
    1 for a convolution, the kernel for pooling. Along each axis::

        out = floor((W + 2P - D(F - 1) - 1) / S) + 1

    With ``ceil_mode=True`` (pooling only) ``floor`` becomes ``ceil``, except that a last
    window starting in the right-hand padding is dropped, as PyTorch does. Ints give an int;
    a pair in any argument gives an ``(h, w)`` pair.

    Raises ``ValueError`` with the layer's ``name`` and the rule from :data:`RULES` for every
    layer PyTorch refuses: sizes, kernels, strides and dilations below 1, negative padding,
    pooling padding over ``kernel_size // 2``, dilation in ``AvgPool2d``, ``ceil_mode`` on a
    convolution, and a kernel wider than the padded input. PyTorch builds a layer from a
    zero-pixel input or a one-element kernel tuple in some cases; this refuses the former
    and accepts the latter for pooling only, as PyTorch does.
    """
    if kind not in KINDS:
        raise _broken("kind", name=name, value=repr(kind))
    pooling = kind != "conv"
    if stride is None:
        stride = kernel_size if pooling else 1
    args = {
        "size": size,
        "kernel_size": kernel_size,
        "stride": stride,
        "padding": padding,
        "dilation": dilation,
    }
    pairs = {
        what: _pair(value, what, name, single=pooling and what != "size")
        for what, value in args.items()
    }
    if ceil_mode not in (True, False):
        raise ValueError(f"{name}: ceil_mode must be True or False, got {ceil_mode!r}")
    if ceil_mode and not pooling:
        raise _broken("ceil_mode", name=name)
    if kind == "avgpool":
        for axis, d in zip(_AXES, pairs["dilation"]):
            if d != 1:
                raise _broken("avgpool_dilation", name=name, value=d, axis=axis)
    # Rule by rule over both axes, so that a stride of 0 is reported before a kernel that
    # does not fit, whichever axis each is on.
    for (what, value), lowest in zip(pairs.items(), (1, 1, 1, 0, 1)):
        rule = "size" if what == "size" else what.removesuffix("_size")
        for axis, v in zip(_AXES, value):
            if v < lowest:
                raise _broken(rule, name=name, axis=axis, value=v)
    if pooling:
        # PyTorch's pool2d_shape_check: pooling pads by at most half the kernel (the
        # dilated span would allow more, but the check uses the kernel itself).
        for axis, k, p in zip(_AXES, pairs["kernel_size"], pairs["padding"]):
            if p > k // 2:
                raise _broken(
                    "pool_padding",
                    name=name,
                    padding=p,
                    kernel=k,
                    half=k // 2,
                    axis=axis,
                )
    out = tuple(
        _output_1d(
            *(pairs[what][i] for what in args),
            ceil_mode=bool(ceil_mode),
            name=name,
            axis=_AXES[i],
        )
        for i in range(2)
    )
    if all(_is_int(v) for v in args.values()):
        return out[0]
    return out  # type: ignore[return-value]


def _output_1d(
    size: int,
    kernel: int,
    stride: int,
    padding: int,
    dilation: int,
    *,
    ceil_mode: bool,
    name: str,
    axis: str,
) -> int:
    """One axis of :func:`output_size`, its arguments already checked one by one."""
    span = dilation * (kernel - 1) + 1  # how many input pixels one window covers
    padded = size + 2 * padding
    fit = dict(name=name, span=span, axis=axis, size=size, padding=padding)
    if not ceil_mode:
        if span > padded:
            raise _broken("fit", padded=padded, **fit)
        return (padded - span) // stride + 1
    # ceil_mode: a window may overhang the padded input by up to stride - 1 pixels.
    if span > padded + stride - 1:
        raise _broken("fit_ceil", padded=padded, overhang=stride - 1, **fit)
    out = -(-(padded - span) // stride) + 1  # ceil division
    # PyTorch's pooling_output_shape: the last window must start inside the image or the
    # left padding, not in the right-hand padding.
    if (out - 1) * stride >= size + padding:
        out -= 1
    return out


def conv_output_size(
    size: Size,
    kernel_size: Size,
    stride: Size = 1,
    padding: Size = 0,
    dilation: Size = 1,
    *,
    name: str = "conv",
) -> Size:
    """Output size of an ``nn.Conv2d``: :func:`output_size` with ``kind="conv"``."""
    return output_size(size, kernel_size, stride, padding, dilation, name=name)


def pool_output_size(
    size: Size,
    kernel_size: Size,
    stride: Size | None = None,
    padding: Size = 0,
    dilation: Size = 1,
    ceil_mode: bool = False,
    *,
    kind: str = "maxpool",
    name: str = "pool",
) -> Size:
    """Output size of a pooling layer (``nn.MaxPool2d`` by default); the stride defaults
    to the kernel, as in PyTorch. :func:`output_size` with a pooling ``kind``."""
    if kind == "conv":
        raise _broken("kind", name=name, value="'conv' (use conv_output_size)")
    return output_size(
        size, kernel_size, stride, padding, dilation, ceil_mode, kind=kind, name=name
    )


def simple_output_size(
    width: int,
    kernel_size: int,
    stride: int = 1,
    padding: int = 0,
    *,
    name: str = "layer",
) -> int:
    """The form most courses quote, ``(W - F + 2P) / S + 1``, for a convolution.

    It is :func:`output_size` without dilation (``D = 1``) in the case where the division is
    exact, so that the floor changes nothing. When it is not exact, the last pixels are
    not covered by any window; this raises ``ValueError`` saying so (PyTorch rounds down
    silently; :func:`output_size` gives that size).
    """
    general = output_size(width, kernel_size, stride, padding, name=name)
    steps, leftover = divmod(width - kernel_size + 2 * padding, stride)
    if leftover:
        raise _broken(
            "exact",
            name=name,
            width=width,
            kernel=kernel_size,
            padding=padding,
            stride=stride,
            leftover=leftover,
            general=general,
        )
    return steps + 1


# ----------------------------------------------------------------------------------------
# Parameters, connections, multiply-accumulates
# ----------------------------------------------------------------------------------------


def _check_groups(
    in_channels: int, out_channels: int, groups: int, name: str
) -> tuple[int, int, int]:
    in_channels = _count(in_channels, "in_channels", name)
    out_channels = _count(out_channels, "out_channels", name)
    groups = _count(groups, "groups", name)
    for what, value in (("in_channels", in_channels), ("out_channels", out_channels)):
        if value % groups:
            raise _broken(
                "groups_divide", name=name, what=what, value=value, groups=groups
            )
    return in_channels, out_channels, groups


def conv_params(
    in_channels: int,
    out_channels: int,
    kernel_size: Size,
    *,
    bias: bool = True,
    groups: int = 1,
    name: str = "conv",
) -> int:
    """Trainable parameters of an ``nn.Conv2d``: ``out * (in / groups) * kh * kw`` weights,
    plus ``out`` biases.

    Raises ``ValueError`` for counts below 1 and for channels not divisible by ``groups``.
    (PyTorch builds a convolution with no input channels; it computes nothing, so this
    refuses it.)
    """
    in_channels, out_channels, groups = _check_groups(
        in_channels, out_channels, groups, name
    )
    kh, kw = _pair(kernel_size, "kernel_size", name)
    return out_channels * (in_channels // groups) * kh * kw + (
        out_channels if bias else 0
    )


def sparse_conv_params(
    table: Sequence[Sequence[int]], kernel_size: Size, *, bias: bool = True
) -> int:
    """Parameters of a convolution where output map ``j`` sees only the input maps ``table[j]``.

    This is the paper's C3: each of 16 maps reads 3, 4 or 6 of S2's 6 maps (Table I).
    """
    kh, kw = _pair(kernel_size, "kernel_size", "sparse conv")
    return sum(len(inputs) * kh * kw + (1 if bias else 0) for inputs in table)


def linear_params(
    in_features: int, out_features: int, *, bias: bool = True, name: str = "linear"
) -> int:
    """Trainable parameters of a fully connected layer: ``out * in`` weights + ``out`` biases."""
    in_features = _count(in_features, "in_features", name)
    out_features = _count(out_features, "out_features", name)
    return out_features * in_features + (out_features if bias else 0)


def subsampling_params(channels: int) -> int:
    """The paper's S2/S4: one trainable coefficient and one bias per map."""
    return 2 * channels


def conv_connections(params: int, out_size: Size) -> int:
    """Connections of a convolution: every output position repeats all its kernels' links.

    ``params`` is the layer's parameter count (weights + biases), because each weight and
    each bias is one link per output position. Valid for dense, grouped and sparse layers.
    """
    oh, ow = _pair(out_size, "output size", "conv")
    return params * oh * ow


def subsampling_connections(
    channels: int, kernel_size: Size, out_size: Size, *, bias: bool = True
) -> int:
    """Connections of a pooling or subsampling layer: ``kh * kw`` inputs per unit, plus a
    bias link for the paper's trainable subsampling (``bias=False`` for PyTorch's pooling)."""
    kh, kw = _pair(kernel_size, "kernel_size", "pool", single=True)
    oh, ow = _pair(out_size, "output size", "pool")
    return channels * oh * ow * (kh * kw + (1 if bias else 0))


def conv_macs(
    in_channels: int,
    out_channels: int,
    kernel_size: Size,
    out_size: Size,
    *,
    groups: int = 1,
    name: str = "conv",
) -> int:
    """Multiply-accumulates of an ``nn.Conv2d``: each output value reads
    ``(in / groups) * kh * kw`` inputs, one weight multiplication each."""
    in_channels, out_channels, groups = _check_groups(
        in_channels, out_channels, groups, name
    )
    kh, kw = _pair(kernel_size, "kernel_size", name)
    oh, ow = _pair(out_size, "output size", name)
    return (in_channels // groups) * kh * kw * out_channels * oh * ow


def linear_macs(in_features: int, out_features: int) -> int:
    """Multiply-accumulates of a fully connected layer."""
    return in_features * out_features
