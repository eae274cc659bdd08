"""The paper's arithmetic: output sizes, parameters, connections and multiply-accumulates.

Plain integers, following PyTorch exactly: a layer it refuses raises a ``ValueError``
stating the rule (:data:`RULES`). As in the paper, *connections* count every input-to-unit
link, bias included (a shared weight is one parameter but many connections)."""

from __future__ import annotations

import numbers
from typing import Sequence, Union

Size = Union[int, tuple[int, int]]

#: LeCun et al. (1998), section II-B: layer -> (parameters, connections), to check against.
PAPER_1998: dict[str, tuple[int, int]] = {
    "C1": (156, 122_304),
    "S2": (12, 5_880),
    "C3": (1_516, 151_600),
    "S4": (32, 2_000),
    "C5": (48_120, 48_120),
    "F6": (10_164, 10_164),
}

#: The layer kinds :func:`output_size` knows, each with its PyTorch module (the one list).
LAYER_KINDS: dict[str, str] = {
    "conv": "Conv2d",
    "maxpool": "MaxPool2d",
    "avgpool": "AvgPool2d",
}

#: Every rule a layer can break, in plain ``{field}`` templates that JavaScript fills too:
#: ``book/_static/lenet-calculator.js`` has a copy (a test compares).
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
    "LAYER_KINDS", "PAPER_1998", "checked_count", "checked_groups", "conv_connections",
    "conv_macs", "conv_output_size", "conv_params", "linear_macs", "linear_params",
    "output_size", "output_size_and_formula", "pool_output_size", "pytorch_stride",
    "simple_output_size", "sparse_conv_params", "subsampling_connections",
    "subsampling_params",
]  # fmt: skip

_AXES = ("height", "width")
#: output_size's geometry arguments, in the order their rules are checked.
_GEOMETRY = ("size", "kernel_size", "stride", "padding", "dilation")


class _WrongType(TypeError, ValueError):
    """A wrong type: a ``TypeError``, and a ``ValueError`` like every rule a layer breaks."""


def _broken(rule: str, **fields: object) -> ValueError:
    """The error for a broken rule, its text filled from :data:`RULES`."""
    error = _WrongType if rule == "type" else ValueError
    return error(RULES[rule].format(**fields))


def _is_int(value: object) -> bool:
    """Whether ``value`` is an int, numpy's included; a bool is not (a kernel of True?)."""
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def _pair(value: object, what: str, name: str, single: bool = False) -> tuple[int, int]:
    """``(height, width)`` from an int, a pair, or if ``single`` a 1-element list (pooling)."""
    pair = (value, value) if _is_int(value) else value
    if isinstance(pair, (tuple, list)) and all(_is_int(v) for v in pair):
        if len(pair) == 2 or (single and len(pair) == 1):
            return int(pair[0]), int(pair[-1])
    raise _broken("type", name=name, what=what, value=repr(value))


def _at_least(what: str, v: object, name: str, single: bool = False) -> tuple[int, int]:
    """The geometry argument ``what`` as a pair (:func:`_pair`), each at least its lowest."""
    pair = _pair(v, what, name, single)
    rule, lowest = what.removesuffix("_size"), 0 if what == "padding" else 1
    for axis, value in zip(_AXES, pair):
        if value < lowest:
            raise _broken(rule, name=name, axis=axis, value=value)
    return pair


def _positions(out_size: object, name: str) -> int:
    """``oh * ow`` of an output size (what :func:`output_size` gives), each at least 1."""
    pair = _pair(out_size, "output size", name)
    for axis, value in zip(_AXES, pair):
        checked_count(value, f"output {axis}", name)
    return pair[0] * pair[1]


def _flag(value: object, what: str, name: str) -> bool:
    """A switch such as ``bias`` or ``ceil_mode``: True or False (1 and 0 pass too)."""
    if value not in (True, False):
        raise _WrongType(f"{name}: {what} must be True or False, got {value!r}")
    return bool(value)


def checked_count(value: object, what: str, name: str = "layer") -> int:
    """``value`` as a count: an int of at least 1, else a ``ValueError`` naming ``what``."""
    if not _is_int(value):
        raise _WrongType(f"{name}: {what} must be an int, got {value!r}")
    if value < 1:  # type: ignore[operator]
        raise _broken("count", name=name, what=what, value=int(value))  # type: ignore[call-overload]
    return int(value)  # type: ignore[call-overload]


def checked_groups(
    in_channels: object, out_channels: object, groups: object, name: str = "conv"
) -> tuple[int, int, int]:
    """The three as ints, checked: counts, and channels that split into ``groups`` groups."""
    in_channels = checked_count(in_channels, "in_channels", name)
    out_channels = checked_count(out_channels, "out_channels", name)
    groups = checked_count(groups, "groups", name)
    for what, value in (("in_channels", in_channels), ("out_channels", out_channels)):
        if value % groups:
            fields = dict(what=what, value=value, groups=groups)
            raise _broken("groups_divide", name=name, **fields)
    return in_channels, out_channels, groups


def pytorch_stride(stride: Size | None, kernel_size: Size, kind: str = "conv") -> Size:
    """``stride``, or if None PyTorch's default: 1 (convolution) or the kernel (pooling)."""
    return stride if stride is not None else (1 if kind == "conv" else kernel_size)


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

    Per axis ``floor((W + 2P - D(F - 1) - 1) / S) + 1`` (``ceil`` with ``ceil_mode``); each
    argument, as in PyTorch, is an int or a ``(height, width)`` pair (then so is the result).
    ``kind`` is a key of :data:`LAYER_KINDS`. Raises ``ValueError`` for every layer PyTorch
    refuses, and for an input of zero pixels."""
    geometry = [size, kernel_size, stride, padding, dilation]
    return output_size_and_formula(geometry, ceil_mode, kind=kind, name=name)[0]


def output_size_and_formula(
    geometry: Sequence[Size | None],
    ceil_mode: bool = False,
    *,
    kind: str = "conv",
    name: str = "layer",
) -> tuple[Size, Size]:
    """(:func:`output_size`, the formula's) for output_size's first five arguments; less
    where PyTorch drops a last ``ceil_mode`` window starting in the right-hand padding."""
    geometry = list(geometry)
    if kind not in LAYER_KINDS:
        raise _broken("kind", name=name, value=repr(kind))
    pooling = kind != "conv"
    geometry[2] = pytorch_stride(geometry[2], geometry[1], kind)
    pairs = {
        what: _pair(value, what, name, single=pooling and what != "size")
        for what, value in zip(_GEOMETRY, geometry)
    }
    ceil_mode = _flag(ceil_mode, "ceil_mode", name)
    if ceil_mode and not pooling:
        raise _broken("ceil_mode", name=name)
    for axis, d in zip(_AXES, pairs["dilation"]):
        if kind == "avgpool" and d != 1:
            raise _broken("avgpool_dilation", name=name, value=d, axis=axis)
    # Rule by rule over both axes, so that a stride of 0 is reported before a kernel that
    # does not fit, whichever axis each is on.
    for what, pair in pairs.items():
        _at_least(what, pair, name)
    # PyTorch's pool2d_shape_check: pooling pads by at most half the kernel (the dilated
    # span would allow more, but the check uses the kernel itself).
    for axis, k, p in zip(_AXES, pairs["kernel_size"], pairs["padding"]):
        if pooling and p > k // 2:
            fields = dict(padding=p, kernel=k, half=k // 2, axis=axis)
            raise _broken("pool_padding", name=name, **fields)
    outputs = []  # (output size, the formula's) of each axis
    for axis, one_axis in zip(_AXES, zip(*pairs.values())):
        size, kernel, stride, padding, dilation = one_axis
        span = dilation * (kernel - 1) + 1  # how many input pixels one window covers
        padded = size + 2 * padding
        # ceil_mode rounds up: a last window may overhang the padded input by stride - 1.
        overhang = stride - 1 if ceil_mode else 0
        if span > padded + overhang:
            rule = "fit_ceil" if ceil_mode else "fit"
            fields = dict(span=span, size=size, padding=padding, padded=padded)
            raise _broken(rule, name=name, axis=axis, overhang=overhang, **fields)
        formula = (padded - span + overhang) // stride + 1
        # PyTorch's pooling_output_shape: the last window must start inside the image or
        # the left padding, not in the right-hand padding.
        dropped = ceil_mode and (formula - 1) * stride >= size + padding
        outputs.append((formula - dropped, formula))
    if all(_is_int(v) for v in geometry):
        return outputs[0]
    return tuple(zip(*outputs))  # ((h, w), (h_formula, w_formula))


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
    """Output size of a pooling layer (``nn.MaxPool2d`` by default): :func:`output_size`."""
    if kind == "conv":
        raise _broken("kind", name=name, value="'conv' (use conv_output_size)")
    return output_size(
        size, kernel_size, stride, padding, dilation, ceil_mode, kind=kind, name=name
    )


def simple_output_size(
    width: Size,
    kernel_size: Size,
    stride: Size = 1,
    padding: Size = 0,
    *,
    name: str = "layer",
) -> Size:
    """The form most courses quote, ``(W - F + 2P) / S + 1``: :func:`output_size`, or a
    ``ValueError`` naming the pixels no window covers if the division is not exact."""
    general = output_size(width, kernel_size, stride, padding, name=name)  # checks all
    args = [_pair(v, "", name) for v in (width, kernel_size, stride, padding, general)]
    for w, f, s, p, out in zip(*args):
        leftover = (w - f + 2 * p) % s
        if leftover:
            fields = dict(width=w, kernel=f, stride=s, padding=p, general=out)
            raise _broken("exact", name=name, leftover=leftover, **fields)
    return general


def conv_params(
    in_channels: int,
    out_channels: int,
    kernel_size: Size,
    *,
    bias: bool = True,
    groups: int = 1,
    name: str = "conv",
) -> int:
    """Trainable parameters of an ``nn.Conv2d``: ``out * (in / groups) * kh * kw`` weights
    plus ``out`` biases. Refuses 0 input channels (PyTorch builds it; it computes nothing)."""
    c_in, c_out, groups = checked_groups(in_channels, out_channels, groups, name)
    kh, kw = _at_least("kernel_size", kernel_size, name)
    biases = c_out if _flag(bias, "bias", name) else 0
    return c_out * (c_in // groups) * kh * kw + biases


def sparse_conv_params(
    table: Sequence[Sequence[int]],
    kernel_size: Size,
    *,
    bias: bool = True,
    name: str = "sparse conv",
) -> int:
    """Parameters of a convolution where output map ``j`` sees only the input maps
    ``table[j]``: the paper's C3, whose 16 maps read 3, 4 or 6 of S2's 6 (Table I)."""
    kh, kw = _at_least("kernel_size", kernel_size, name)
    biases = len(table) if _flag(bias, "bias", name) else 0
    checked_count(len(table), "output maps", name)
    weights = 0
    for j, maps in enumerate(table):
        if not isinstance(maps, (tuple, list)) or not all(map(_is_int, maps)):
            raise _WrongType(f"{name}: table[{j}] must list input maps, got {maps!r}")
        weights += checked_count(len(maps), f"table[{j}]'s input maps", name) * kh * kw
    return weights + biases


def linear_params(
    in_features: int, out_features: int, *, bias: bool = True, name: str = "linear"
) -> int:
    """Trainable parameters of a fully connected layer: ``out * in`` weights + ``out`` biases."""
    in_features = checked_count(in_features, "in_features", name)
    out_features = checked_count(out_features, "out_features", name)
    biases = out_features if _flag(bias, "bias", name) else 0
    return out_features * in_features + biases


def subsampling_params(channels: int, *, name: str = "subsampling") -> int:
    """The paper's S2/S4: one trainable coefficient and one bias per map."""
    return 2 * checked_count(channels, "channels", name)


def conv_connections(params: int, out_size: Size, *, name: str = "conv") -> int:
    """Connections of a convolution (dense, grouped or sparse): ``params`` (weights and
    biases, one link each) times the output positions."""
    return _positions(out_size, name) * checked_count(params, "params", name)


def subsampling_connections(
    channels: int,
    kernel_size: Size,
    out_size: Size,
    *,
    bias: bool = True,
    name: str = "pool",
) -> int:
    """Connections of a pooling or subsampling layer: ``kh * kw`` inputs per unit, plus a
    bias link for the paper's trainable subsampling (``bias=False`` for PyTorch's pooling)."""
    channels = checked_count(channels, "channels", name)
    kh, kw = _at_least("kernel_size", kernel_size, name, single=True)
    return channels * _positions(out_size, name) * (kh * kw + _flag(bias, "bias", name))


def conv_macs(
    in_channels: int,
    out_channels: int,
    kernel_size: Size,
    out_size: Size,
    *,
    groups: int = 1,
    name: str = "conv",
) -> int:
    """Multiply-accumulates of an ``nn.Conv2d``: one per weight at each output position."""
    weights = conv_params(
        in_channels, out_channels, kernel_size, bias=False, groups=groups, name=name
    )
    return conv_connections(weights, out_size, name=name)


def linear_macs(in_features: int, out_features: int, *, name: str = "linear") -> int:
    """Multiply-accumulates of a fully connected layer: one per weight."""
    return linear_params(in_features, out_features, bias=False, name=name)
