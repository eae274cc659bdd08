"""LeNet-5 in PyTorch, with the paper's layer names.

* ``LeNet5(variant="modern")``: ReLU and max-pooling, optional dropout, as most tutorials teach.
* ``LeNet5(variant="classic")``: tanh and average pooling, closer in spirit to 1998.

Both use a fully connected C3 (2,416 parameters). The paper's sparse C3 follows
:data:`C3_TABLE`; the faithful 1998 model, built on the same names, is in
:mod:`lenet_utils.lenet1998`.
"""

from __future__ import annotations

import numbers
from collections import OrderedDict
from typing import Literal

import torch
from torch import nn

__all__ = ["C3_TABLE", "C3_TABLE_ROWS", "LeNet5", "activations", "count_parameters"]

#: Table I of LeCun et al. (1998), as printed: one row per S2 map (0-5), one column per
#: C3 map (0-15); an ``X`` means that C3 map reads that S2 map.
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

Variant = Literal["modern", "classic"]


def count_parameters(model: nn.Module) -> int:
    """Number of trainable parameters."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


class LeNet5(nn.Module):
    """LeNet-5 with a fully connected C3.

    Args:
        variant: ``"modern"`` (ReLU, max-pool) or ``"classic"`` (tanh, average pool).
        in_channels: 1 for MNIST, 3 for CIFAR-10 and downscaled ImageNet.
        num_classes: size of the output layer.
        input_size: 32 (the paper's padded digits) or 28 (raw MNIST; C1 then pads by 2
            so every later layer has the paper's sizes).
        dropout: dropout probability before F6 and the output layer (modern variant only).
        batchnorm: add batch normalisation after C1, C3, C5 and F6 (before the activation),
            a later idea (2015) that lets the same small network train faster and further.
    """

    def __init__(
        self,
        variant: Variant = "modern",
        in_channels: int = 1,
        num_classes: int = 10,
        input_size: int = 32,
        dropout: float = 0.0,
        batchnorm: bool = False,
    ) -> None:
        super().__init__()
        _check_types(in_channels, num_classes, input_size, dropout, batchnorm)
        _check_config(variant, in_channels, num_classes, input_size, dropout)
        self.variant = variant
        self.in_channels = in_channels = int(in_channels)  # numpy integers too
        self.num_classes = num_classes = int(num_classes)
        self.input_size = input_size = int(input_size)
        self.batchnorm = batchnorm

        act = nn.ReLU if variant == "modern" else nn.Tanh
        pool = nn.MaxPool2d if variant == "modern" else nn.AvgPool2d
        pad = (32 - input_size) // 2  # 28x28 digits: C1 pads them to the paper's 32x32

        def block(n: int, conv: nn.Conv2d, pooled: bool) -> list[tuple[str, nn.Module]]:
            layers: list[tuple[str, nn.Module]] = [(f"C{n}", conv)]
            if batchnorm:
                layers.append((f"bn{n}", nn.BatchNorm2d(conv.out_channels)))
            layers.append((f"act{n}", act()))
            if pooled:
                layers.append((f"S{n + 1}", pool(kernel_size=2, stride=2)))
            return layers

        self.features = nn.Sequential(
            OrderedDict(
                block(
                    1,
                    nn.Conv2d(in_channels, 6, kernel_size=5, padding=pad),
                    pooled=True,
                )
                + block(3, nn.Conv2d(6, 16, kernel_size=5), pooled=True)
                + block(5, nn.Conv2d(16, 120, kernel_size=5), pooled=False)
            )
        )
        head: list[tuple[str, nn.Module]] = [("flatten", nn.Flatten())]
        if dropout:
            head.append(("drop5", nn.Dropout(dropout)))
        head.append(("F6", nn.Linear(120, 84)))
        if batchnorm:
            head.append(("bn6", nn.BatchNorm1d(84)))
        head.append(("act6", act()))
        if dropout:
            head.append(("drop6", nn.Dropout(dropout)))
        head.append(("output", nn.Linear(84, num_classes)))
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


def _check_types(
    in_channels: int, num_classes: int, input_size: int, dropout: float, batchnorm: bool
) -> None:
    """A ``TypeError`` for an argument of the wrong kind ("3" for 3, "no" for False)."""
    sizes = {"in_channels": in_channels, "num_classes": num_classes}
    for name, value in {**sizes, "input_size": input_size}.items():
        if isinstance(value, bool) or not isinstance(value, numbers.Integral):
            raise TypeError(f"LeNet5: {name} must be a whole number, got {value!r}")
    if isinstance(dropout, bool) or not isinstance(dropout, numbers.Real):
        raise TypeError(f"LeNet5: dropout must be a number in [0, 1), got {dropout!r}")
    if not isinstance(batchnorm, bool):
        raise TypeError(f"LeNet5: batchnorm must be True or False, got {batchnorm!r}")


def _check_config(
    variant: str, in_channels: int, num_classes: int, input_size: int, dropout: float
) -> None:
    """LeNet5's arguments, checked before any layer is built."""
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
    """Run ``x`` through ``model`` and return each named layer's output, in execution order.

    ``names`` picks layers by their own name (``("C1", "S2")``); by default every leaf
    layer is kept. Use it to trace shapes and to plot feature maps.
    """
    outputs: "OrderedDict[str, torch.Tensor]" = OrderedDict()
    handles = []
    for full_name, module in model.named_modules():
        short = full_name.split(".")[-1]
        if (
            not full_name
            or list(module.children())
            or (names is not None and short not in names)
        ):
            continue
        handles.append(
            module.register_forward_hook(
                lambda m, i, o, key=short: outputs.__setitem__(key, o.detach())
            )
        )
    try:
        with torch.no_grad():
            model(x)
    finally:
        for h in handles:
            h.remove()
    return outputs
