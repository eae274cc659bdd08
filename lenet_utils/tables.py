"""Per-layer tables: the paper's four figures for one layer (chapter 1's calculator) and
for every layer of a model, by its own name (C1, S2, ...), read off one dummy batch; the
rules are in :mod:`lenet_utils.arithmetic`."""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass, fields
from typing import TYPE_CHECKING, Iterable, NamedTuple, Sequence

import torch
from torch import nn

if TYPE_CHECKING:  # pandas is imported when a table is made, not with the package
    import pandas as pd

from .arithmetic import Size, checked_count, checked_groups, conv_connections, conv_macs
from .arithmetic import conv_params, linear_macs, linear_params, output_size
from .arithmetic import subsampling_connections

__all__ = ["LayerCounts", "LayerRow", "layer_counts", "layer_table", "table_frame"]


class LayerCounts(NamedTuple):
    """What :func:`layer_counts` finds for one layer."""

    output_shape: tuple[int, int, int]  # (channels, height, width)
    params: int
    connections: int
    macs: int


def _conv_counts(
    channels: tuple[int, int, int], kernel: Size, out_hw: Size, bias: bool, name: str
) -> tuple[int, int, int]:
    """(parameters, connections, MACs) of a convolution; ``channels``: (in, out, groups)."""
    c_in, c_out, groups = channels
    params = conv_params(c_in, c_out, kernel, bias=bias, groups=groups, name=name)
    macs = conv_macs(c_in, c_out, kernel, out_hw, groups=groups, name=name)
    return params, conv_connections(params, out_hw, name=name), macs


def layer_counts(
    in_channels: int,
    size: Size,
    kernel_size: Size,
    stride: Size | None = None,
    padding: Size = 0,
    dilation: Size = 1,
    ceil_mode: bool = False,
    *,
    kind: str = "conv",
    out_channels: int | None = None,
    groups: int = 1,
    bias: bool = True,
    name: str = "layer",
) -> LayerCounts:
    """Output shape, parameters, connections and MACs of one convolution or pooling layer.

    ``kind`` and the geometry as in :func:`output_size`; ``out_channels``, ``groups`` and
    ``bias`` for a convolution only (pooling keeps the channels and has no parameters)."""
    # Checked in the order of chapter 1's calculator, which shows the same first error.
    in_channels = checked_count(in_channels, "in_channels", name)
    if kind == "conv":
        if out_channels is None:
            raise ValueError(f"{name}: a convolution needs out_channels")
        channels = checked_groups(in_channels, out_channels, groups, name)
    out = output_size(
        size, kernel_size, stride, padding, dilation, ceil_mode, kind=kind, name=name
    )
    out_hw = (out, out) if isinstance(out, int) else out
    if kind != "conv":
        connections = subsampling_connections(
            in_channels, kernel_size, out_hw, bias=False, name=name
        )
        return LayerCounts((in_channels, *out_hw), 0, connections, 0)
    params, connections, macs = _conv_counts(channels, kernel_size, out_hw, bias, name)
    return LayerCounts((out_channels, *out_hw), params, connections, macs)


@dataclass
class LayerRow:
    """One row of the per-layer table; shapes include the batch dimension, ``params`` counts
    the layer's trainable tensors."""

    layer: str
    kind: str
    input_shape: tuple[int, ...]
    output_shape: tuple[int, ...]
    params: int
    connections: int
    macs: int


_POOLS = (nn.MaxPool2d, nn.AvgPool2d)
_NORMS = (nn.BatchNorm1d, nn.BatchNorm2d)


def _counts(
    module: nn.Module, in_shape: tuple[int, ...], out_shape: tuple[int, ...], name: str
) -> tuple[int, int] | None:
    """(connections, MACs) of one leaf layer, or ``None`` for layers the table skips."""
    # custom layers (e.g. the 1998 model's sparse C3) count themselves
    own = getattr(module, "lenet_counts", None)
    if callable(own):
        return own(in_shape, out_shape)
    if isinstance(module, nn.Conv2d):
        channels = module.in_channels, module.out_channels, module.groups
        kernel, bias = module.kernel_size, module.bias is not None
        return _conv_counts(channels, kernel, out_shape[-2:], bias, name)[1:]
    if isinstance(module, nn.Linear):
        n_in, n_out = module.in_features, module.out_features
        params = linear_params(n_in, n_out, bias=module.bias is not None, name=name)
        # One link per weight and bias; every output row (e.g. per position) repeats them.
        rows = int(torch.Size(out_shape[1:-1]).numel())
        return params * rows, linear_macs(n_in, n_out, name=name) * rows
    if isinstance(module, _NORMS):  # a scale and shift per channel: listed for params
        return 0, 0
    if isinstance(module, _POOLS):
        c, oh, ow = out_shape[-3:]
        kernel = module.kernel_size
        return subsampling_connections(c, kernel, (oh, ow), bias=False, name=name), 0
    return None


def _counted_layers(model: nn.Module) -> dict[nn.Module, str]:
    """The modules :func:`layer_table` hooks, with their short names: the leaves, and
    modules that count themselves (they hide their children, e.g. a sparse C3 of convs)."""
    self_counting = {
        m for m in model.modules() if callable(getattr(m, "lenet_counts", None))
    }
    hidden = {c for m in self_counting for c in m.modules() if c is not m}
    return {
        module: (name or type(module).__name__).split(".")[-1]
        for name, module in model.named_modules()
        if module not in hidden
        and (module in self_counting or not list(module.children()))
    }


def layer_table(
    model: nn.Module | Iterable[tuple[str, nn.Module]],
    input_size: Sequence[int],
) -> list[LayerRow]:
    """Run one dummy batch through ``model`` (or ``(name, layer)`` pairs) and list its
    convolution, linear, pooling and batch-norm layers in the order they run, by their own
    names, and modules with ``lenet_counts(in_shape, out_shape) -> (connections, macs)``.
    ``input_size`` includes the batch dimension, e.g. ``(1, 1, 32, 32)``."""
    if not isinstance(model, nn.Module):
        model = nn.Sequential(OrderedDict(model))
    rows: list[LayerRow] = []
    names = _counted_layers(model)

    def record(module: nn.Module, inputs: tuple, output: torch.Tensor) -> None:
        in_shape, out_shape = tuple(inputs[0].shape), tuple(output.shape)
        counts = _counts(module, in_shape, out_shape, names[module])
        if counts is not None:
            params = sum(p.numel() for p in module.parameters() if p.requires_grad)
            row = (names[module], type(module).__name__, in_shape, out_shape, params)
            rows.append(LayerRow(*row, *counts))

    handles = [module.register_forward_hook(record) for module in names]
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


def table_frame(rows: Sequence[LayerRow]) -> pd.DataFrame:
    """The rows as a pandas DataFrame indexed by layer, for notebooks: shapes lose the batch
    dimension and read like ``6x28x28``; the counts stay ints."""
    import pandas as pd

    def shape(s: tuple[int, ...]) -> str:  # (1, 6, 28, 28) -> 6x28x28
        return "x".join(str(n) for n in s[1:])

    frame = pd.DataFrame(map(vars, rows), columns=[f.name for f in fields(LayerRow)])
    for column in ("input_shape", "output_shape"):
        frame[column] = frame[column].map(shape)
    counts = {"params": "int64", "connections": "int64", "macs": "int64"}
    return frame.astype(counts).set_index("layer")
