"""LeNet-5 in PyTorch, with the paper's layer names.

* ``LeNet5(variant="modern")``: ReLU and max-pooling, optional dropout, as most tutorials teach.
* ``LeNet5(variant="classic")``: tanh and average pooling, closer in spirit to 1998.

Both use a fully connected C3 (2,416 parameters). The paper's sparse C3 follows
:data:`C3_TABLE`; the faithful 1998 model (trainable subsampling, RBF output) is built
on the same names.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Literal

import torch
from torch import nn

__all__ = [
    "C3_TABLE_ROWS",
    "C3_TABLE",
    "DIGIT_BITMAPS",
    "EuclideanRBF",
    "LeNet1998",
    "LeNet5",
    "ScaledTanh",
    "SparseConv2d",
    "Subsampling",
    "activations",
    "count_parameters",
    "digit_prototypes",
    "input_1998",
    "rbf_map_loss",
]

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
        if variant not in ("modern", "classic"):
            raise ValueError(
                f"LeNet5: variant must be 'modern' or 'classic', got {variant!r}"
            )
        if input_size not in (28, 32):
            raise ValueError(
                f"LeNet5: input_size must be 32 (as in the paper) or 28 (raw MNIST), got {input_size}; "
                "resize or pad your images to 32x32"
            )
        if in_channels < 1 or num_classes < 1:
            raise ValueError(
                f"LeNet5: need in_channels >= 1 and num_classes >= 1, got {in_channels}, {num_classes}"
            )
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"LeNet5: dropout must be in [0, 1), got {dropout}")
        if dropout and variant == "classic":
            raise ValueError(
                "LeNet5: dropout belongs to the modern variant; the classic one has none"
            )
        self.variant = variant
        self.in_channels = in_channels
        self.num_classes = num_classes
        self.input_size = input_size
        self.batchnorm = batchnorm

        act = nn.ReLU if variant == "modern" else nn.Tanh
        pool = nn.MaxPool2d if variant == "modern" else nn.AvgPool2d
        pad = (
            32 - input_size
        ) // 2  # 28x28 digits are padded to the paper's 32x32 inside C1

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
        if x.dim() == 3 and tuple(x.shape) == (c, h, w):
            raise ValueError(
                f"{name} got one image of shape {tuple(x.shape)}; add a batch dimension: x.unsqueeze(0)"
            )
        if x.dim() != 4:
            raise ValueError(
                f"{name} expects a batch of shape (N, {c}, {h}, {w}), got a {x.dim()}-D tensor {tuple(x.shape)}"
            )
        if x.shape[1] != c:
            raise ValueError(
                f"{name} expects {c} input channel(s), got {x.shape[1]} (input shape {tuple(x.shape)}); "
                f"build the model with in_channels={x.shape[1]} or convert the images"
            )
        if tuple(x.shape[2:]) != (h, w):
            hint = (
                f"build it with input_size={x.shape[2]}"
                if x.shape[2] == x.shape[3] and x.shape[2] in (28, 32)
                else f"resize or pad the images to {h}x{w}"
            )
            raise ValueError(
                f"{name} expects {h}x{w} images, got {x.shape[2]}x{x.shape[3]}; {hint}"
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.check_input(x)
        return self.classifier(self.features(x))

    def extra_repr(self) -> str:
        bn = ", batchnorm=True" if self.batchnorm else ""
        return f"variant={self.variant!r}, input={self.expected_shape}, num_classes={self.num_classes}{bn}"


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


# ----------------------------------------------------------------------------------------
# LeNet-5 (1998): the network of section II-B, faithfully
# ----------------------------------------------------------------------------------------

#: 7x12 bitmaps (7 wide, 12 tall) of the ten digits: the fixed parameter vectors of the RBF
#: output units (``X`` = +1, ``.`` = -1). Drawn in the style of the paper's Fig. 3, which
#: shows such stylised characters; the exact pixels of that figure are not reproduced.
DIGIT_BITMAPS: tuple[tuple[str, ...], ...] = (
    (
        ".......",
        "..XXX..",
        ".X...X.",
        "X.....X",
        "X.....X",
        "X.....X",
        "X.....X",
        "X.....X",
        "X.....X",
        ".X...X.",
        "..XXX..",
        ".......",
    ),
    (
        ".......",
        "...X...",
        "..XX...",
        ".X.X...",
        "...X...",
        "...X...",
        "...X...",
        "...X...",
        "...X...",
        "...X...",
        ".XXXXX.",
        ".......",
    ),
    (
        ".......",
        "..XXX..",
        ".X...X.",
        "X.....X",
        "......X",
        ".....X.",
        "....X..",
        "...X...",
        "..X....",
        ".X.....",
        "XXXXXXX",
        ".......",
    ),
    (
        ".......",
        ".XXXXX.",
        "X.....X",
        "......X",
        "......X",
        "..XXXX.",
        "......X",
        "......X",
        "......X",
        "X.....X",
        ".XXXXX.",
        ".......",
    ),
    (
        ".......",
        "....XX.",
        "...X.X.",
        "..X..X.",
        ".X...X.",
        "X....X.",
        "XXXXXXX",
        ".....X.",
        ".....X.",
        ".....X.",
        ".....X.",
        ".......",
    ),
    (
        ".......",
        "XXXXXXX",
        "X......",
        "X......",
        "XXXXXX.",
        "......X",
        "......X",
        "......X",
        "......X",
        "X.....X",
        ".XXXXX.",
        ".......",
    ),
    (
        ".......",
        "..XXXX.",
        ".X.....",
        "X......",
        "X......",
        "XXXXXX.",
        "X.....X",
        "X.....X",
        "X.....X",
        "X.....X",
        ".XXXXX.",
        ".......",
    ),
    (
        ".......",
        "XXXXXXX",
        "......X",
        ".....X.",
        "....X..",
        "...X...",
        "...X...",
        "..X....",
        "..X....",
        "..X....",
        "..X....",
        ".......",
    ),
    (
        ".......",
        ".XXXXX.",
        "X.....X",
        "X.....X",
        "X.....X",
        ".XXXXX.",
        "X.....X",
        "X.....X",
        "X.....X",
        "X.....X",
        ".XXXXX.",
        ".......",
    ),
    (
        ".......",
        ".XXXXX.",
        "X.....X",
        "X.....X",
        "X.....X",
        "X.....X",
        ".XXXXXX",
        "......X",
        "......X",
        ".....X.",
        ".XXXX..",
        ".......",
    ),
)


def digit_prototypes() -> torch.Tensor:
    """The bitmaps as a (10, 84) tensor of +1/-1, row-major (12 rows of 7)."""
    return torch.tensor(
        [
            [1.0 if ch == "X" else -1.0 for row in bitmap for ch in row]
            for bitmap in DIGIT_BITMAPS
        ]
    )


def input_1998(images: torch.Tensor) -> torch.Tensor:
    """The paper's input: 28x28 ``uint8`` digits centred in a 32x32 field, scaled so the
    background (white) is -0.1 and the foreground (black) is 1.175."""
    if images.dtype != torch.uint8:
        raise ValueError(
            f"input_1998 expects uint8 images (0..255), got {images.dtype}"
        )
    x = images.float() / 255 * 1.275 - 0.1
    if x.shape[-1] == 28:
        x = nn.functional.pad(x, (2, 2, 2, 2), value=-0.1)
    return x


class ScaledTanh(nn.Module):
    """The paper's squashing function ``f(a) = A tanh(S a)`` with A = 1.7159 and S = 2/3."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return 1.7159 * torch.tanh(2.0 / 3.0 * x)


class Subsampling(nn.Module):
    """S2/S4: each unit adds its 2x2 inputs, multiplies by the map's trainable coefficient and
    adds the map's trainable bias (the squashing function follows as its own layer)."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.coefficient = nn.Parameter(torch.ones(channels))
        self.bias = nn.Parameter(torch.zeros(channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        summed = nn.functional.avg_pool2d(x, 2) * 4
        return summed * self.coefficient.view(1, -1, 1, 1) + self.bias.view(1, -1, 1, 1)

    def lenet_counts(self, in_shape, out_shape) -> tuple[int, int]:
        units = out_shape[1] * out_shape[2] * out_shape[3]
        return (
            units * 5,
            units,
        )  # 4 inputs + bias per unit; one weight multiply per unit


class SparseConv2d(nn.Module):
    """A convolution in which output map ``j`` reads only the input maps ``table[j]`` (C3).

    The trainable kernels are one parameter of shape (total links, k, k), 60x5x5 for C3, plus
    one bias per map, so only the connections in the table exist. Each forward scatters them
    into a dense (out, in, k, k) kernel, zeros elsewhere, and runs an ordinary convolution.
    """

    def __init__(
        self, table: tuple[tuple[int, ...], ...], in_channels: int, kernel_size: int
    ) -> None:
        super().__init__()
        self.table = table
        self.in_channels, self.out_channels, self.kernel_size = (
            in_channels,
            len(table),
            kernel_size,
        )
        outs = [j for j, inputs in enumerate(table) for _ in inputs]
        ins = [i for inputs in table for i in inputs]
        self.register_buffer("out_index", torch.tensor(outs), persistent=False)
        self.register_buffer("in_index", torch.tensor(ins), persistent=False)
        self.weight = nn.Parameter(torch.empty(len(ins), kernel_size, kernel_size))
        self.bias = nn.Parameter(torch.zeros(len(table)))

    def dense_weight(self) -> torch.Tensor:
        k = self.kernel_size
        w = self.weight.new_zeros(self.out_channels, self.in_channels, k, k)
        return w.index_put((self.out_index, self.in_index), self.weight)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return nn.functional.conv2d(x, self.dense_weight(), self.bias)

    def lenet_counts(self, in_shape, out_shape) -> tuple[int, int]:
        positions = out_shape[2] * out_shape[3]
        links = self.weight.numel()
        return (links + self.out_channels) * positions, links * positions


class EuclideanRBF(nn.Module):
    """Output units ``y_i = sum_j (x_j - w_ij)^2`` with fixed (non-trainable) prototypes ``w``.

    Returns the *negated* penalties ``-y_i`` as scores, so that the best class is the
    ``argmax``, as with any classifier; :func:`rbf_map_loss` is the paper's criterion on them.
    """

    def __init__(self, prototypes: torch.Tensor) -> None:
        super().__init__()
        self.register_buffer("prototypes", prototypes.clone())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return -((x.unsqueeze(1) - self.prototypes.unsqueeze(0)) ** 2).sum(-1)

    def lenet_counts(self, in_shape, out_shape) -> tuple[int, int]:
        return self.prototypes.numel(), self.prototypes.numel()


def rbf_map_loss(
    scores: torch.Tensor, labels: torch.Tensor, j: float = 1.0, reduction: str = "mean"
) -> torch.Tensor:
    """The paper's MAP criterion (eq. 9) on ``scores = -y``:
    ``y_D + log(exp(-j) + sum_i exp(-y_i))``.

    It is cross-entropy over the ten classes plus one "rubbish" class of constant penalty ``j``:
    it pulls the correct unit's penalty down and pushes the others up, and the rubbish term
    keeps penalties that are already large from being pushed further.
    """
    rubbish = scores.new_full((scores.shape[0], 1), -j)
    return nn.functional.cross_entropy(
        torch.cat([scores, rubbish], dim=1), labels, reduction=reduction
    )


class LeNet1998(nn.Module):
    """LeNet-5 (1998), as described in section II-B of LeCun et al. (1998).

    Input: 32x32, background -0.1 and foreground 1.175 (see :func:`input_1998`).
    C1 (6 maps 5x5), S2 (trainable subsampling), C3 (the sparse Table I), S4, C5 (120 maps
    5x5), F6 (84 units), each followed by the scaled tanh; output: ten Euclidean RBF units
    whose fixed prototypes are 7x12 digit bitmaps. 60,000 trainable parameters.
    """

    def __init__(self) -> None:
        super().__init__()
        self.in_channels, self.input_size, self.num_classes = 1, 32, 10
        self.features = nn.Sequential(
            OrderedDict(
                C1=nn.Conv2d(1, 6, kernel_size=5),
                act1=ScaledTanh(),
                S2=Subsampling(6),
                act2=ScaledTanh(),
                C3=SparseConv2d(C3_TABLE, 6, kernel_size=5),
                act3=ScaledTanh(),
                S4=Subsampling(16),
                act4=ScaledTanh(),
                C5=nn.Conv2d(16, 120, kernel_size=5),
                act5=ScaledTanh(),
            )
        )
        self.classifier = nn.Sequential(
            OrderedDict(
                flatten=nn.Flatten(),
                F6=nn.Linear(120, 84),
                act6=ScaledTanh(),
                output=EuclideanRBF(digit_prototypes()),
            )
        )
        self.reset_parameters()

    @torch.no_grad()
    def reset_parameters(self) -> None:
        """The paper's initialisation: uniform in +-2.4 / fan-in, fan-in per unit."""
        f = self.features
        for layer, fan_in in ((f.C1, 25), (f.C5, 16 * 25), (self.classifier.F6, 120)):
            nn.init.uniform_(layer.weight, -2.4 / fan_in, 2.4 / fan_in)
            nn.init.uniform_(layer.bias, -2.4 / fan_in, 2.4 / fan_in)
        c3 = f.C3
        fan = torch.tensor(
            [len(c3.table[j]) * 25 for j in c3.out_index.tolist()], dtype=torch.float32
        )
        c3.weight.uniform_(-1, 1).mul_((2.4 / fan).view(-1, 1, 1))
        c3.bias.uniform_(-1, 1).mul_(
            torch.tensor([2.4 / (len(t) * 25) for t in c3.table])
        )
        for s in (f.S2, f.S4):
            nn.init.uniform_(s.coefficient, -2.4 / 4, 2.4 / 4)
            nn.init.uniform_(s.bias, -2.4 / 4, 2.4 / 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() != 4 or tuple(x.shape[1:]) != (1, 32, 32):
            raise ValueError(
                f"LeNet1998 expects a batch of shape (N, 1, 32, 32), got {tuple(x.shape)}; "
                "prepare 28x28 digits with input_1998(images_uint8)"
            )
        return self.classifier(self.features(x))
