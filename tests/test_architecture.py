"""The architecture figure: drawn from the model, every label read off a forward pass,
and laid out (without drawing) so that nothing overlaps."""

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import pytest
from matplotlib.text import Text
from torch import nn

from lenet_utils import architecture
from lenet_utils.lenet1998 import LeNet1998
from lenet_utils.models import LeNet5


def _texts(fig) -> list[str]:
    return [t.get_text() for t in fig.findobj(Text) if t.get_text()]


def _c3_with(maps: int) -> LeNet5:
    model = LeNet5()
    model.features.C3 = nn.Conv2d(6, maps, 5)
    model.features.C5 = nn.Conv2d(maps, 120, 5)
    return model


def test_architecture_labels_come_from_the_model():
    fig = architecture.draw_architecture(LeNet5())
    texts = _texts(fig)
    for label in (
        "input: 32x32",
        "C1: 6@28x28",
        "S2: 6@14x14",
        "C3: 16@10x10",
        "S4: 16@5x5",
        "C5: 120@1x1",
        "F6: 84 units",
        "output: 10 units",
    ):
        assert label in texts
    assert texts.count("5x5\nconvolutions") == 3
    assert texts.count("2x2\nmax pooling") == 2
    assert texts.count("full\nconnection") == 2
    assert "LeNet-5 (modern): layers and their maps" in texts
    assert tuple(fig.get_size_inches()) == (10.0, 3.0)
    assert fig.get_facecolor()[:3] == (1.0, 1.0, 1.0)
    assert min(t.get_fontsize() for t in fig.findobj(Text) if t.get_text()) >= 9
    plt.close(fig)

    wide = architecture.draw_architecture(_c3_with(32), title="32 maps in C3")
    texts = _texts(wide)
    assert "C3: 32@10x10" in texts and "S4: 32@5x5" in texts
    assert "C3: 16@10x10" not in texts and "32 maps in C3" in texts
    plt.close(wide)


def test_architecture_of_other_models():
    fig = architecture.draw_architecture(
        LeNet5(in_channels=3, num_classes=200, batchnorm=True)
    )
    texts = _texts(fig)
    assert "input: 3@32x32" in texts and "output: 200 units" in texts
    assert not [t for t in texts if t.startswith("bn")], "batch norm is not drawn"
    plt.close(fig)

    fig = architecture.draw_architecture(LeNet5("classic"))
    assert _texts(fig).count("2x2\naverage pooling") == 2
    plt.close(fig)

    fig = architecture.draw_architecture(LeNet1998())
    texts = _texts(fig)
    assert "2x2\nsubsampling" in texts and "Gaussian\nconnections" in texts
    assert "LeNet-5 (1998): layers and their maps" in texts
    plt.close(fig)


def test_architecture_squares_grow_with_the_maps():
    """Square sizes follow the map sizes, bars the unit counts; at most 8 squares a stack."""
    fig = architecture.draw_architecture(_c3_with(32))
    shapes: dict[str, list] = {}
    for patch in fig.axes[0].patches:
        if patch.get_gid():
            shapes.setdefault(patch.get_gid(), []).append(patch)
    counts = {label: len(p) for label, p in shapes.items()}
    assert counts == {
        "input: 32x32": 1,
        "C1: 6@28x28": 6,
        "S2: 6@14x14": 6,
        "C3: 32@10x10": 8,
        "S4: 32@5x5": 8,
        "C5: 120@1x1": 1,
        "F6: 84 units": 1,
        "output: 10 units": 1,
    }
    sides = [shapes[k][0].get_width() for k in list(counts)[:5]]
    assert sides == sorted(sides, reverse=True) and len(set(sides)) == 5
    assert sides[0] / sides[4] == pytest.approx(32 / 5)  # proportional to the map size
    bars = [shapes[k][0].get_height() for k in list(counts)[5:]]
    assert bars == sorted(bars, reverse=True)  # 120 > 84 > 10 units
    plt.close(fig)


def _column(label: str, maps: int, side: int, op: str = "") -> architecture.Column:
    kernel, stride = (5, 1) if "conv" in op else (2, 2) if "pool" in op else (0, 0)
    return architecture.Column(label, maps, side, op, kernel, stride, ("white",))


COLUMNS = [
    _column("input: 32x32", 1, 32),
    _column("C1: 6@28x28", 6, 28, "5x5 convolutions"),
    _column("S2: 6@14x14", 6, 14, "2x2 max pooling"),
    _column("F6: 84 units", 0, 84, "full connection"),
]


def test_layout_fits_every_column_and_text_without_drawing():
    label_w, op_w = [1.0, 1.1, 1.0, 1.2], [0.0, 0.9, 0.8, 0.7]  # inches, as measured
    plan = architecture.layout(COLUMNS, label_w, op_w)
    widths = [w for w, _, _ in plan.boxes]
    assert plan.lefts == sorted(plan.lefts) and plan.lefts[0] > 0
    # the spare room shared between the gaps: the last label ends 0.1 inch (or the
    # column 0.15 inch) inside the 10-inch figure
    right = max(0.15, label_w[-1] / 2 - widths[-1] / 2 + 0.1)
    assert plan.lefts[-1] + widths[-1] + right == pytest.approx(10.0)
    centres = [x + w / 2 for x, w in zip(plan.lefts, widths)]
    for i in range(1, len(COLUMNS)):  # labels centred on their columns never touch
        assert centres[i] - centres[i - 1] >= (label_w[i - 1] + label_w[i]) / 2
    # squares proportional to the maps (28 and 14 pixels), the bar as tall as it may be
    (w1, _, d1), (w2, _, d2) = plan.boxes[1:3]
    assert (w1 - 5 * d1) / (w2 - 5 * d2) == pytest.approx(28 / 14)
    assert max(h for _, h, _ in plan.boxes) <= 3.0 - 0.42 - 0.28 - 0.44
    assert plan.y_ops < plan.y_mid - max(h for _, h, _ in plan.boxes) / 2
    # the largest squares that fit: wider labels leave less room, so smaller squares
    wider = architecture.layout(COLUMNS, [2.5] * 4, op_w)
    assert wider.boxes[0][0] < plan.boxes[0][0]


def test_columns_are_drawn_left_to_right_in_the_models_order():
    fig = architecture.draw_architecture(LeNet5())
    lefts: dict[str, float] = {}
    for patch in fig.axes[0].patches:
        if patch.get_gid():
            lefts.setdefault(patch.get_gid(), patch.get_x())
    labels = [label for label, _ in architecture.architecture_labels(LeNet5())]
    assert list(lefts) == labels
    xs = list(lefts.values())
    assert xs == sorted(xs) and xs[0] > 0
    plt.close(fig)
