"""The convolution animations (scripts/animations.py) read exactly the pixels PyTorch
reads, state PyTorch's output size, and refuse what the arithmetic refuses."""

import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import pytest
import torch
from matplotlib.text import Text
from torch import nn

from rules import rule_of

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "scripts"))
import animations  # noqa: E402
from animations import Window  # noqa: E402

# The book's five animations, plus cases that exercise the arithmetic's corners: a stride
# that leaves pixels over, padding with dilation, average pooling, and a ceil_mode window
# that would start in the padding (PyTorch drops it).
CONFIGS = [w._asdict() for w in animations.ANIMATIONS.values()] + [
    dict(size=6, kernel=3, stride=2, padding=1),
    dict(size=8, kernel=3, stride=3),
    dict(size=6, kernel=3, padding=2, dilation=2),
    dict(size=7, kernel=3, stride=2, ceil_mode=True, kind="avgpool"),
    dict(size=5, kernel=2, stride=2, padding=1, ceil_mode=True, kind="maxpool"),
    dict(size=6, kernel=3, stride=2, padding=1, ceil_mode=True, kind="maxpool"),
    dict(size=5, kernel=2, kind="maxpool"),
]


def _ids(config: dict) -> str:
    return "-".join(f"{k}{v}" for k, v in config.items() if v not in (None, False))


def _module(config: dict) -> nn.Module:
    kind = config.get("kind", "conv")
    k, pad = config["kernel"], config.get("padding", 0)
    if kind == "conv":
        conv = nn.Conv2d(
            1,
            1,
            k,
            stride=config.get("stride") or 1,
            padding=pad,
            dilation=config.get("dilation", 1),
            bias=False,
        )
        nn.init.ones_(conv.weight)
        return conv
    pool = nn.MaxPool2d if kind == "maxpool" else nn.AvgPool2d
    extra = {"dilation": config.get("dilation", 1)} if kind == "maxpool" else {}
    return pool(
        k,
        stride=config.get("stride"),
        padding=pad,
        ceil_mode=config.get("ceil_mode", False),
        **extra,
    )


def _reads(config: dict) -> tuple[tuple[int, int], dict]:
    """PyTorch's answer: output shape, and for each output cell the input cells it reads,
    found by pushing a one-hot image through the real module for every input pixel."""
    size = config["size"]
    module = _module(config)
    # one batch: image number r * size + c is all zeros but a 1 at pixel (r, c)
    x = torch.eye(size * size).view(size * size, 1, size, size)
    with torch.no_grad():
        out = module(x)[:, 0]
    reads: dict[tuple[int, int], set] = {}
    for pixel, i, j in (out > 0).nonzero().tolist():
        reads.setdefault((i, j), set()).add(divmod(pixel, size))
    shape = tuple(out.shape[1:])
    return shape, reads


@pytest.mark.parametrize("config", CONFIGS, ids=_ids)
def test_frames_read_what_pytorch_reads(config):
    frames = animations.conv_frames(Window(**config))
    (oh, ow), reads = _reads(config)
    size = config["size"]
    assert len(frames) == oh * ow, "one frame per output cell PyTorch computes"
    assert [f.output_cell for f in frames] == [
        (i, j) for i in range(oh) for j in range(ow)
    ]
    for frame in frames:
        inside = {
            (r, c) for r, c in frame.input_cells if 0 <= r < size and 0 <= c < size
        }
        assert inside == reads[frame.output_cell], frame.output_cell
        assert len(frame.input_cells) == config["kernel"] ** 2


@pytest.mark.parametrize(
    "config", [c for c in CONFIGS if c.get("kind", "conv") == "conv"], ids=_ids
)
def test_conv_frames_match_unfold_in_kernel_order(config):
    """unfold lists each window's pixels in kernel order, zeros for padding: so must we."""
    size, k = config["size"], config["kernel"]
    ids = torch.arange(1, size * size + 1, dtype=torch.float32).view(1, 1, size, size)
    cols = nn.functional.unfold(
        ids,
        k,
        dilation=config.get("dilation", 1),
        padding=config.get("padding", 0),
        stride=config.get("stride") or 1,
    )[0]
    frames = animations.conv_frames(Window(**config))
    assert cols.shape[1] == len(frames)
    for column, frame in zip(cols.T.tolist(), frames):
        expected = [
            r * size + c + 1 if 0 <= r < size and 0 <= c < size else 0
            for r, c in frame.input_cells
        ]
        assert [int(v) for v in column] == expected


@pytest.mark.parametrize("config", CONFIGS, ids=_ids)
def test_formula_states_pytorch_size(config):
    (oh, _), _ = _reads(config)
    formula = animations.conv_formula(Window(**config))
    assert formula.endswith(f"= {oh}"), formula
    assert ("ceil(" if config.get("ceil_mode") else "floor(") in formula
    assert f"{oh}x{oh} output" in animations.conv_alt_text(Window(**config))


@pytest.mark.parametrize(
    "window,rule",
    [
        (Window(5, 3, ceil_mode=True), "ceil_mode"),
        (Window(5, 3, kind="pool"), "kind"),
        (Window(5, 3, stride=0), "stride"),
        (Window(5, 2, padding=2, kind="maxpool"), "pool_padding"),
        (Window(5, 3, dilation=2, kind="avgpool"), "avgpool_dilation"),
        (Window(2, 3), "fit"),
        (Window(5, 3.0), "type"),
    ],
)
def test_impossible_animations_state_the_arithmetics_rule(window, rule):
    """No check of its own: every refusal is one of lenet_utils.arithmetic.RULES."""
    with pytest.raises(ValueError) as err:
        animations.conv_frames(window)
    assert rule_of(str(err.value)) == rule
    assert str(err.value).startswith("animation: ")


def test_animations_are_square():
    with pytest.raises(ValueError, match="^animation: the grids are square"):
        animations.conv_frames(Window(5, (3, 2)))


def _scene_texts(window: Window) -> str:
    """Every text the drawing of ``window`` shows, joined."""
    scene = animations.ConvScene(window)
    return " ".join(t.get_text() for t in scene.fig.findobj(Text))


def test_ceil_mode_notes_use_the_formula_and_pytorchs_count():
    # ceil((5 + 2 - 2) / 2) + 1 = 4 windows, but the fourth would start in the padding.
    dropped = Window(5, 2, stride=2, padding=1, ceil_mode=True, kind="maxpool")
    assert animations.conv_formula(dropped).endswith(
        "= 4, less 1 (starts in the padding) = 3"
    )
    assert "Here the window at 5 would start there: dropped." in _scene_texts(dropped)
    # A window that only ceil_mode allows: no window at all without it.
    overhang = Window(2, 3, stride=2, ceil_mode=True, kind="maxpool")
    assert overhang.outputs() == 1 and overhang.floor_outputs() == 0
    assert "hangs over the input's edge" in animations.conv_alt_text(overhang)
    exact = Window(4, 2, ceil_mode=True, kind="avgpool")
    assert "changes nothing here" in _scene_texts(exact)


def test_ceil_mode_animation_explains_the_kept_window():
    window = animations.ANIMATIONS["pool-ceil-mode"]
    frames = animations.conv_frames(window)
    size = window.size
    hanging = [f for f in frames if any(c >= size for rc in f.input_cells for c in rc)]
    assert hanging, "the ceil_mode example must show a window over the edge"
    texts = _scene_texts(window)
    assert "starts inside the input" in texts and "right-hand padding" in texts
