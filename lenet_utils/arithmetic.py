"""The paper's arithmetic: output sizes, parameters, connections and multiply-accumulates.

Every function here is plain integer arithmetic, so it can be checked by hand against
LeCun et al. (1998). :func:`layer_table` applies the same rules to a real PyTorch model.

Conventions (the paper's):

* *parameters* are trainable numbers (weights and biases);
* *connections* count every input-to-unit link, the bias link included, so a shared
  weight is one parameter but many connections;
* *MACs* (multiply-accumulates) count weight multiplications in convolution and fully
  connected layers; pooling, biases and activations are not counted.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Iterable, Sequence, Union

import torch
from torch import nn

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

__all__ = [
    "PAPER_1998",
    "output_size",
    "conv_output_size",
    "pool_output_size",
    "simple_output_size",
    "conv_params",
    "sparse_conv_params",
    "linear_params",
    "subsampling_params",
    "conv_connections",
    "subsampling_connections",
    "conv_macs",
    "linear_macs",
    "LayerRow",
    "layer_table",
    "table_frame",
    "format_table",
]


def _pair(value: Size, what: str, layer: str) -> tuple[int, int]:
    if isinstance(value, int):
        return value, value
    if (
        isinstance(value, (tuple, list))
        and len(value) == 2
        and all(isinstance(v, int) for v in value)
    ):
        return int(value[0]), int(value[1])
    raise ValueError(f"{layer}: {what} must be an int or a pair of ints, got {value!r}")


def _output_1d(
    size: int,
    kernel: int,
    stride: int,
    padding: int,
    dilation: int,
    ceil_mode: bool,
    layer: str,
    axis: str,
) -> int:
    if size <= 0:
        raise ValueError(f"{layer}: input {axis} must be positive, got {size}")
    if kernel <= 0:
        raise ValueError(f"{layer}: kernel {axis} must be positive, got {kernel}")
    if stride <= 0:
        raise ValueError(
            f"{layer}: stride must be positive, got {stride} (along the {axis})"
        )
    if padding < 0:
        raise ValueError(
            f"{layer}: padding cannot be negative, got {padding} (along the {axis})"
        )
    if dilation <= 0:
        raise ValueError(
            f"{layer}: dilation must be positive, got {dilation} (along the {axis})"
        )
    span = dilation * (kernel - 1) + 1  # how many input pixels one kernel covers
    padded = size + 2 * padding
    if span > padded:
        raise ValueError(
            f"{layer}: a kernel spanning {span} pixels does not fit the padded input {axis} "
            f"{size} + 2x{padding} = {padded}; use a smaller kernel or more padding"
        )
    steps = (padded - span) / stride
    return (math.ceil(steps) if ceil_mode else math.floor(steps)) + 1


def output_size(
    size: Size,
    kernel: Size,
    stride: Size = 1,
    padding: Size = 0,
    dilation: Size = 1,
    *,
    ceil_mode: bool = False,
    layer: str = "layer",
) -> Size:
    """Spatial output size of a convolution or pooling window, PyTorch's general formula.

    ``floor((W + 2P - D(F - 1) - 1) / S) + 1`` along each axis (``ceil`` with
    ``ceil_mode=True``). Ints give an int; a pair in any argument gives an ``(h, w)`` pair.
    Raises ``ValueError`` naming ``layer`` and the numbers when the layer is impossible.
    """
    pairs = [
        _pair(v, what, layer)
        for v, what in (
            (size, "size"),
            (kernel, "kernel"),
            (stride, "stride"),
            (padding, "padding"),
            (dilation, "dilation"),
        )
    ]
    out = tuple(
        _output_1d(s, k, st, p, d, ceil_mode, layer, axis)
        for (s, k, st, p, d), axis in zip(zip(*pairs), ("height", "width"))
    )
    if all(isinstance(v, int) for v in (size, kernel, stride, padding, dilation)):
        return out[0]
    return out  # type: ignore[return-value]


def conv_output_size(
    size: Size,
    kernel: Size,
    stride: Size = 1,
    padding: Size = 0,
    dilation: Size = 1,
    *,
    layer: str = "conv",
) -> Size:
    """Output size of a convolution (see :func:`output_size`)."""
    return output_size(size, kernel, stride, padding, dilation, layer=layer)


def pool_output_size(
    size: Size,
    kernel: Size,
    stride: Size | None = None,
    padding: Size = 0,
    dilation: Size = 1,
    *,
    ceil_mode: bool = False,
    layer: str = "pool",
) -> Size:
    """Output size of a pooling layer; the stride defaults to the kernel, as in PyTorch."""
    return output_size(
        size,
        kernel,
        kernel if stride is None else stride,
        padding,
        dilation,
        ceil_mode=ceil_mode,
        layer=layer,
    )


def simple_output_size(
    width: int, kernel: int, padding: int = 0, stride: int = 1, *, layer: str = "layer"
) -> int:
    """The reader-friendly form ``(W - F + 2P) / S + 1``.

    It is exact only when the kernel lands evenly on the last pixel; otherwise a layer
    would be left with a fraction of a step, and this raises ``ValueError`` saying so
    (PyTorch silently drops the leftover pixels; use :func:`output_size` for that).
    """
    general = output_size(width, kernel, stride, padding, layer=layer)
    steps, leftover = divmod(width - kernel + 2 * padding, stride)
    if leftover:
        raise ValueError(
            f"{layer}: (W - F + 2P) / S = ({width} - {kernel} + 2x{padding}) / {stride} is not a whole number; "
            f"the last {leftover} pixel(s) are not covered and PyTorch's floor gives {general}"
        )
    return steps + 1


def conv_params(
    in_channels: int,
    out_channels: int,
    kernel: Size,
    *,
    bias: bool = True,
    groups: int = 1,
) -> int:
    """Trainable parameters of a fully connected (in the channel sense) convolution."""
    kh, kw = _pair(kernel, "kernel", "conv")
    if in_channels % groups or out_channels % groups:
        raise ValueError(
            f"conv: channels {in_channels}->{out_channels} are not divisible by groups={groups}"
        )
    return out_channels * (in_channels // groups) * kh * kw + (
        out_channels if bias else 0
    )


def sparse_conv_params(
    table: Sequence[Sequence[int]], kernel: Size, *, bias: bool = True
) -> int:
    """Parameters of a convolution where output map ``j`` sees only the input maps ``table[j]``.

    This is the paper's C3: each of 16 maps reads 3, 4 or 6 of S2's 6 maps (Table I).
    """
    kh, kw = _pair(kernel, "kernel", "sparse conv")
    return sum(len(inputs) * kh * kw + (1 if bias else 0) for inputs in table)


def linear_params(in_features: int, out_features: int, *, bias: bool = True) -> int:
    """Trainable parameters of a fully connected layer."""
    return out_features * in_features + (out_features if bias else 0)


def subsampling_params(channels: int) -> int:
    """The paper's S2/S4: one trainable coefficient and one bias per map."""
    return 2 * channels


def conv_connections(params_per_map_sum: int, out_size: Size) -> int:
    """Connections of a convolution: every output position repeats all its kernels' links.

    ``params_per_map_sum`` is the layer's parameter count (weights + biases), because each
    weight and each bias is one link per output position. Valid for dense and sparse tables.
    """
    oh, ow = _pair(out_size, "output size", "conv")
    return params_per_map_sum * oh * ow


def subsampling_connections(
    channels: int, kernel: int, out_size: Size, *, bias: bool = True
) -> int:
    """Connections of a pooling/subsampling layer: ``kernel**2`` inputs (+1 bias) per unit."""
    oh, ow = _pair(out_size, "output size", "pool")
    return channels * oh * ow * (kernel * kernel + (1 if bias else 0))


def conv_macs(
    in_channels_seen: int, out_channels: int, kernel: Size, out_size: Size
) -> int:
    """Multiply-accumulates of a convolution.

    ``in_channels_seen`` is the number of input maps each output map reads: ``in_channels``
    for a dense layer, or the table's average (pass the total via ``out_channels=1``).
    """
    kh, kw = _pair(kernel, "kernel", "conv")
    oh, ow = _pair(out_size, "output size", "conv")
    return in_channels_seen * out_channels * kh * kw * oh * ow


def linear_macs(in_features: int, out_features: int) -> int:
    """Multiply-accumulates of a fully connected layer."""
    return in_features * out_features


# ----------------------------------------------------------------------------------------
# Walking a real model
# ----------------------------------------------------------------------------------------


@dataclass
class LayerRow:
    """One row of the per-layer table."""

    layer: str
    kind: str
    input_shape: tuple[int, ...]
    output_shape: tuple[int, ...]
    params: int
    connections: int
    macs: int

    def as_dict(self) -> dict:
        return asdict(self)


_POOLS = (nn.MaxPool2d, nn.AvgPool2d)
_NORMS = (nn.BatchNorm1d, nn.BatchNorm2d)


def _counts(
    module: nn.Module, in_shape: tuple[int, ...], out_shape: tuple[int, ...]
) -> tuple[int, int] | None:
    """(connections, MACs) of one leaf layer, or ``None`` for layers the table skips."""
    own = getattr(module, "lenet_counts", None)
    if callable(
        own
    ):  # custom layers (e.g. the 1998 model's sparse C3) count themselves
        return own(in_shape, out_shape)
    params = sum(p.numel() for p in module.parameters(recurse=False))
    if isinstance(module, nn.Conv2d):
        out_positions = out_shape[-1] * out_shape[-2]
        kh, kw = module.kernel_size
        macs = conv_macs(
            module.in_channels // module.groups,
            module.out_channels,
            (kh, kw),
            tuple(out_shape[-2:]),
        )
        return params * out_positions, macs
    if isinstance(module, nn.Linear):
        return params, linear_macs(module.in_features, module.out_features)
    if isinstance(
        module, _NORMS
    ):  # a scale and shift per channel: listed for its parameters
        return 0, 0
    if isinstance(module, _POOLS):
        k = (
            module.kernel_size
            if isinstance(module.kernel_size, int)
            else module.kernel_size[0]
        )
        c, oh, ow = out_shape[-3:]
        return subsampling_connections(c, k, (oh, ow), bias=params > 0), 0
    return None


def layer_table(
    model: nn.Module | Iterable[tuple[str, nn.Module]],
    input_size: Sequence[int],
) -> list[LayerRow]:
    """Run one dummy batch through ``model`` and tabulate every counting layer.

    ``model`` is a module or a list of ``(name, layer)`` pairs (wrapped in a Sequential).
    ``input_size`` includes the batch dimension, e.g. ``(1, 1, 32, 32)``. Convolution,
    linear, pooling and batch-norm layers are listed, in the order they run, by their own name
    (``C1``, ``S2``...); activations, flatten and dropout are skipped. A module that defines
    ``lenet_counts(in_shape, out_shape) -> (connections, macs)`` is listed with its counts.
    """
    if not isinstance(model, nn.Module):
        from collections import OrderedDict

        model = nn.Sequential(OrderedDict(model))
    rows: list[LayerRow] = []
    handles = []
    # Modules that count themselves hide their children (e.g. a sparse C3 made of convs).
    self_counting = {
        m for m in model.modules() if callable(getattr(m, "lenet_counts", None))
    }
    hidden = {c for m in self_counting for c in m.modules() if c is not m}

    def hook(name: str):
        def record(module: nn.Module, inputs, output) -> None:
            in_shape = tuple(inputs[0].shape)
            out_shape = tuple(output.shape)
            counts = _counts(module, in_shape, out_shape)
            if counts is None:
                return
            params = sum(p.numel() for p in module.parameters() if p.requires_grad)
            rows.append(
                LayerRow(
                    name.split(".")[-1],
                    type(module).__name__,
                    in_shape,
                    out_shape,
                    params,
                    *counts,
                )
            )

        return record

    for name, module in model.named_modules():
        if module in hidden:
            continue
        if module in self_counting or not list(module.children()):
            handles.append(
                module.register_forward_hook(hook(name or type(module).__name__))
            )
    was_training = model.training
    model.eval()
    try:
        param = next(model.parameters(), None)
        device = param.device if param is not None else torch.device("cpu")
        with torch.no_grad():
            model(torch.zeros(*input_size, device=device))
    finally:
        for h in handles:
            h.remove()
        model.train(was_training)
    return rows


def table_frame(rows: Sequence[LayerRow]):
    """The rows as a pandas DataFrame (shapes without the batch dimension), for notebooks."""
    import pandas as pd

    frame = pd.DataFrame([r.as_dict() for r in rows])
    for col in ("input_shape", "output_shape"):
        frame[col] = frame[col].map(lambda s: "x".join(map(str, s[1:])))
    return frame.set_index("layer")


def format_table(rows: Sequence[LayerRow]) -> str:
    """A plain-text rendering of :func:`layer_table` with a total line."""
    header = f"{'layer':<8}{'kind':<14}{'input':>16}{'output':>16}{'params':>10}{'connections':>14}{'MACs':>11}"
    lines = [header, "-" * len(header)]
    for r in rows:
        shape_in = "x".join(map(str, r.input_shape[1:]))
        shape_out = "x".join(map(str, r.output_shape[1:]))
        lines.append(
            f"{r.layer:<8}{r.kind:<14}{shape_in:>16}{shape_out:>16}{r.params:>10,}{r.connections:>14,}{r.macs:>11,}"
        )
    lines.append("-" * len(header))
    lines.append(
        f"{'total':<54}{sum(r.params for r in rows):>10,}{sum(r.connections for r in rows):>14,}"
        f"{sum(r.macs for r in rows):>11,}"
    )
    return "\n".join(lines)
