"""LeNet-5 (1998): the network of section II-B of LeCun et al. (1998), faithfully.

Sparse C3 (Table I), trainable subsampling, the scaled tanh, the input scaling, and ten
Euclidean RBF output units with fixed 7x12 digit bitmaps, trained with the paper's MAP
criterion: the paper's per-layer counts exactly (custom layers count themselves).
"""

from __future__ import annotations

from collections import OrderedDict

import torch
from torch import nn

from .models import C3_TABLE

__all__ = [
    "EuclideanRBF", "LeNet1998", "ScaledTanh", "SparseConv2d", "Subsampling",
    "digit_prototypes", "input_1998", "rbf_map_loss",
]  # fmt: skip

#: The ten digits, 0 to 9 side by side, as 7x12 bitmaps: the fixed parameter vectors of the
#: RBF output units (``X`` = +1, ``.`` = -1), in the style of the paper's Fig. 3 (whose
#: exact pixels are not reproduced).
DIGITS = """
....... ....... ....... ....... ....... ....... ....... ....... ....... .......
..XXX.. ...X... ..XXX.. .XXXXX. ....XX. XXXXXXX ..XXXX. XXXXXXX .XXXXX. .XXXXX.
.X...X. ..XX... .X...X. X.....X ...X.X. X...... .X..... ......X X.....X X.....X
X.....X .X.X... X.....X ......X ..X..X. X...... X...... .....X. X.....X X.....X
X.....X ...X... ......X ......X .X...X. XXXXXX. X...... ....X.. X.....X X.....X
X.....X ...X... .....X. ..XXXX. X....X. ......X XXXXXX. ...X... .XXXXX. X.....X
X.....X ...X... ....X.. ......X XXXXXXX ......X X.....X ...X... X.....X .XXXXXX
X.....X ...X... ...X... ......X .....X. ......X X.....X ..X.... X.....X ......X
X.....X ...X... ..X.... ......X .....X. ......X X.....X ..X.... X.....X ......X
.X...X. ...X... .X..... X.....X .....X. X.....X X.....X ..X.... X.....X .....X.
..XXX.. .XXXXX. XXXXXXX .XXXXX. .....X. .XXXXX. .XXXXX. ..X.... .XXXXX. .XXXX..
....... ....... ....... ....... ....... ....... ....... ....... ....... .......
"""
#: One bitmap per digit: its 12 rows of 7 characters.
DIGIT_BITMAPS: tuple[tuple[str, ...], ...] = tuple(
    zip(*(line.split() for line in DIGITS.strip().splitlines()))
)


def digit_prototypes() -> torch.Tensor:
    """The bitmaps as a (10, 84) tensor of +1/-1, row-major (12 rows of 7)."""
    rows = [[1.0 if ch == "X" else -1.0 for ch in "".join(b)] for b in DIGIT_BITMAPS]
    return torch.tensor(rows)


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
    """A convolution in which output map ``j`` reads only the input maps ``table[j]`` (C3):
    its kernels are one (links, k, k) parameter, 60x5x5 for C3, and a bias per map,
    scattered into a dense kernel (zeros elsewhere) for an ordinary convolution."""

    def __init__(
        self, table: tuple[tuple[int, ...], ...], in_channels: int, kernel_size: int
    ) -> None:
        super().__init__()
        self.table, self.out_channels = table, len(table)
        self.in_channels, self.kernel_size = in_channels, kernel_size
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
    """Output units ``y_i = sum_j (x_j - w_ij)^2`` with fixed (non-trainable) prototypes ``w``,
    negated as scores (the best class is the ``argmax``) for :func:`rbf_map_loss`."""

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
    """The paper's MAP criterion (eq. 9) on ``scores = -y``,
    ``y_D + log(exp(-j) + sum_i exp(-y_i))``: cross-entropy with one more "rubbish" class
    of constant penalty ``j``, which keeps large penalties from being pushed further."""
    rubbish = scores.new_full((scores.shape[0], 1), -j)
    return nn.functional.cross_entropy(
        torch.cat([scores, rubbish], dim=1), labels, reduction=reduction
    )


class LeNet1998(nn.Module):
    """LeNet-5 (1998), as described in section II-B of LeCun et al. (1998): C1, S2, C3 (the
    sparse Table I), S4, C5 and F6, each followed by the scaled tanh, then ten Euclidean RBF
    outputs; 60,000 trainable parameters. Its input comes from :func:`input_1998`."""

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
        fan_in = [len(inputs) * 25 for inputs in c3.table]  # per C3 map
        per_link = torch.tensor(fan_in, dtype=torch.float32)[c3.out_index]
        c3.weight.uniform_(-1, 1).mul_((2.4 / per_link).view(-1, 1, 1))
        c3.bias.uniform_(-1, 1).mul_(torch.tensor([2.4 / n for n in fan_in]))
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
