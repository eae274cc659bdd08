"""LeNet-5 in PyTorch, with the paper's layer names: ``LeNet5("modern")`` (ReLU,
max-pooling, optional dropout, as most tutorials teach) or ``"classic"`` (tanh, average
pooling, closer to 1998), both with a fully connected C3. The paper's sparse C3 follows
:data:`C3_TABLE`, in the faithful 1998 model of :mod:`lenet_utils.lenet1998`."""

from __future__ import annotations

import numbers
from collections import OrderedDict
from typing import Literal

import torch
from torch import nn

__all__ = ["C3_TABLE", "C3_TABLE_ROWS", "LeNet5", "activations", "count_parameters"]

#: Table I of LeCun et al. (1998): a row per S2 map, a column per C3 map (``X``: reads it).
C3_TABLE_ROWS: tuple[str, ...] = (
    "X...XXX..XXXX.XX",
    "XX...XXX..XXXX.X",
    "XXX...XXX..X.XXX",
    ".XXX..XXXX..X.XX",
    "..XXX..XXXX.XX.X",
    "...XXX..XXXX.XXX",
)

#: For each C3 map, the S2 maps it reads, read off :data:`C3_TABLE_ROWS` column by column.
C3_TABLE: tuple[tuple[int, ...], ...] = tuple(
    tuple(row for row, line in enumerate(C3_TABLE_ROWS) if line[col] == "X")
    for col in range(16)
)

Layers = list[tuple[str, nn.Module]]  # (name, layer) pairs, in the order they run


def count_parameters(model: nn.Module) -> int:
    """Number of trainable parameters."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


class LeNet5(nn.Module):
    """LeNet-5 with a fully connected C3.

    Args:
        variant: ``"modern"`` (ReLU, max-pool) or ``"classic"`` (tanh, average pool).
        in_channels: 1 for MNIST, 3 for CIFAR-10 and downscaled ImageNet.
        num_classes: size of the output layer.
        input_size: 32 (the paper's padded digits) or 28 (raw MNIST, which C1 pads by 2).
        dropout: dropout probability before F6 and the output layer (modern variant only).
        batchnorm: add batch normalisation after C1, C3, C5 and F6 (before the activation),
            a later idea (2015) that lets the same small network train faster and further.
    """

    def __init__(
        self,
        variant: Literal["modern", "classic"] = "modern",
        in_channels: int = 1,
        num_classes: int = 10,
        input_size: int = 32,
        dropout: float = 0.0,
        batchnorm: bool = False,
    ) -> None:
        super().__init__()
        _check_args(variant, in_channels, num_classes, input_size, dropout, batchnorm)
        self.variant = variant
        self.in_channels = in_channels = int(in_channels)  # numpy integers too
        self.num_classes = num_classes = int(num_classes)
        self.input_size = input_size = int(input_size)
        self.batchnorm = batchnorm

        act = nn.ReLU if variant == "modern" else nn.Tanh
        pool = nn.MaxPool2d if variant == "modern" else nn.AvgPool2d
        pad = (32 - input_size) // 2  # 28x28 digits: C1 pads them to the paper's 32x32

        def block(n: int, conv: nn.Conv2d, pooled: bool = True) -> Layers:
            """Stage n: C{n}, its batch norm (if any) and activation, then S{n + 1}."""
            out: Layers = [(f"C{n}", conv)]
            out += [(f"bn{n}", nn.BatchNorm2d(conv.out_channels))] if batchnorm else []
            out += [(f"act{n}", act())]
            out += [(f"S{n + 1}", pool(kernel_size=2, stride=2))] if pooled else []
            return out

        features = block(1, nn.Conv2d(in_channels, 6, kernel_size=5, padding=pad))
        features += block(3, nn.Conv2d(6, 16, kernel_size=5))
        features += block(5, nn.Conv2d(16, 120, kernel_size=5), pooled=False)
        self.features = nn.Sequential(OrderedDict(features))
        head: Layers = [("flatten", nn.Flatten())]
        head += [("drop5", nn.Dropout(dropout))] if dropout else []
        head += [("F6", nn.Linear(120, 84))]
        head += [("bn6", nn.BatchNorm1d(84))] if batchnorm else []
        head += [("act6", act())]
        head += [("drop6", nn.Dropout(dropout))] if dropout else []
        head += [("output", nn.Linear(84, num_classes))]
        self.classifier = nn.Sequential(OrderedDict(head))

    @property
    def expected_shape(self) -> tuple[int, int, int]:
        """The (channels, height, width) one input image must have."""
        return self.in_channels, self.input_size, self.input_size

    def check_input(self, x: torch.Tensor) -> None:
        """Raise a ``ValueError`` that says what was expected when ``x`` does not fit."""
        c, h, w = self.expected_shape
        name = f"LeNet5({self.variant}, in_channels={c}, input_size={h})"
        shape = tuple(x.shape)
        if not x.is_floating_point():
            raise ValueError(
                f"{name} expects float images, got {x.dtype}: normalise them first, "
                "e.g. lenet_utils.pipeline.normalize(x, data.mean, data.std)"
            )
        if x.dim() == 3 and shape == (c, h, w):
            raise ValueError(
                f"{name} got one image of shape {shape}; add a batch dimension: "
                "x.unsqueeze(0)"
            )
        if x.dim() != 4:
            raise ValueError(
                f"{name} expects a batch of shape (N, {c}, {h}, {w}), "
                f"got a {x.dim()}-D tensor {shape}"
            )
        if shape[1:] == (h, w, c) and shape[1] != c:
            raise ValueError(
                f"{name} got {shape}, channels last (N, H, W, C); it expects channels "
                "first (N, C, H, W): x.permute(0, 3, 1, 2)"
            )
        if shape[1] != c:
            raise ValueError(
                f"{name} expects {c} input channel(s), got {shape[1]} (input {shape}); "
                f"build the model with in_channels={shape[1]} or convert the images"
            )
        if shape[2:] != (h, w):
            size = f"{shape[2]}x{shape[3]}"
            fits = shape[2] == shape[3] and shape[2] in (28, 32)
            fix = f"build it with input_size={shape[2]}" if fits else ""
            fix = fix or f"resize or pad the images to {h}x{w}"
            raise ValueError(f"{name} expects {h}x{w} images, got {size}; {fix}")
        if self.training and self.batchnorm and shape[0] == 1:
            raise ValueError(
                f"{name} with batch norm got a training batch of one image (often an "
                "epoch's last batch), and batch norm cannot normalise a single image: "
                "choose a batch size that leaves a larger last batch, or drop it "
                "(a DataLoader's drop_last=True)"
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits of shape (N, num_classes) for a batch of shape (N, C, H, W)."""
        self.check_input(x)
        return self.classifier(self.features(x))

    def extra_repr(self) -> str:
        bn = ", batchnorm=True" if self.batchnorm else ""
        shape, classes = self.expected_shape, self.num_classes
        return f"variant={self.variant!r}, input={shape}, num_classes={classes}{bn}"


def _check_args(
    variant: str,
    in_channels: int,
    num_classes: int,
    input_size: int,
    dropout: float,
    batchnorm: bool,
) -> None:
    """LeNet5's arguments, checked before any layer is built: a ``TypeError`` for a wrong
    kind ("3" for 3, "no" for False), else a ``ValueError`` naming each problem."""
    sizes = {"in_channels": in_channels, "num_classes": num_classes}
    for name, value in {**sizes, "input_size": input_size}.items():
        if isinstance(value, bool) or not isinstance(value, numbers.Integral):
            raise TypeError(f"LeNet5: {name} must be a whole number, got {value!r}")
    if isinstance(dropout, bool) or not isinstance(dropout, numbers.Real):
        raise TypeError(f"LeNet5: dropout must be a number in [0, 1), got {dropout!r}")
    if not isinstance(batchnorm, bool):
        raise TypeError(f"LeNet5: batchnorm must be True or False, got {batchnorm!r}")
    problems = []
    if variant not in ("modern", "classic"):
        problems.append(f"variant must be 'modern' or 'classic', got {variant!r}")
    if input_size not in (28, 32):
        problems.append(
            f"input_size must be 32 (as in the paper) or 28 (raw MNIST), got "
            f"{input_size}; resize or pad your images to 32x32"
        )
    if in_channels < 1 or num_classes < 1:
        problems.append(
            f"need in_channels >= 1 and num_classes >= 1, got {in_channels}, {num_classes}"
        )
    if not 0.0 <= dropout < 1.0:
        problems.append(f"dropout must be in [0, 1), got {dropout}")
    elif dropout and variant == "classic":
        problems.append(
            "dropout belongs to the modern variant; the classic one has none"
        )
    if problems:
        raise ValueError("LeNet5: " + "; ".join(problems))


def activations(
    model: nn.Module, x: torch.Tensor, names: tuple[str, ...] | None = None
) -> "OrderedDict[str, torch.Tensor]":
    """Run ``x`` through ``model`` and return each leaf layer's output, in execution order,
    by its own name (only those in ``names``, e.g. ``("C1", "S2")``, if given)."""
    outputs: "OrderedDict[str, torch.Tensor]" = OrderedDict()
    handles = []
    for full_name, module in model.named_modules():
        short = full_name.split(".")[-1]
        leaf = full_name and not list(module.children())
        if leaf and (names is None or short in names):
            save = lambda m, i, o, key=short: outputs.__setitem__(key, o.detach())
            handles.append(module.register_forward_hook(save))
    try:
        with torch.no_grad():
            model(x)
    finally:
        for h in handles:
            h.remove()
    return outputs
