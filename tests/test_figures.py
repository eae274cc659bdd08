"""The teaching figures agree with PyTorch, with the model, and with their committed files."""

import json
import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import PIL
import pytest
import torch
from matplotlib.text import Text
from PIL import Image, ImageSequence
from torch import nn

from lenet_utils import animations, architecture
from lenet_utils.lenet1998 import LeNet1998
from lenet_utils.models import LeNet5

ROOT = Path(__file__).resolve().parents[1]
FIGURES = ROOT / "book" / "figures"
sys.path.insert(0, str(ROOT / "scripts"))
import make_figures  # noqa: E402

# The book's five animations, plus cases that exercise the arithmetic's corners: a stride
# that leaves pixels over, padding with dilation, average pooling, and a ceil_mode window
# that would start in the padding (PyTorch drops it).
CONFIGS = [spec["config"] for spec in animations.ANIMATIONS.values()] + [
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
    frames = animations.conv_frames(**config)
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
    frames = animations.conv_frames(**config)
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
    formula = animations.conv_formula(**config)
    assert formula.endswith(f"= {oh}"), formula
    assert ("ceil(" if config.get("ceil_mode") else "floor(") in formula
    assert f"{oh}x{oh} output" in animations.conv_alt_text(**config)


def test_conv_frames_refuse_ceil_mode_for_convolutions():
    with pytest.raises(ValueError, match="ceil_mode belongs to pooling"):
        animations.conv_frames(5, 3, ceil_mode=True)


def test_ceil_mode_animation_explains_the_kept_window():
    spec = animations.ANIMATIONS["pool-ceil-mode"]
    frames = animations.conv_frames(**spec["config"])
    size = spec["config"]["size"]
    hanging = [f for f in frames if any(c >= size for rc in f.input_cells for c in rc)]
    assert hanging, "the ceil_mode example must show a window over the edge"
    scene = animations.ConvScene(spec["config"])
    texts = " ".join(t.get_text() for t in scene.fig.findobj(Text))
    assert "starts inside the input" in texts and "right-hand padding" in texts


# ----------------------------------------------------------------------------------------
# The architecture figure
# ----------------------------------------------------------------------------------------


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


# ----------------------------------------------------------------------------------------
# The committed GIFs
# ----------------------------------------------------------------------------------------


def _recipe(path: Path) -> dict:
    with Image.open(path) as im:
        return json.loads(im.info["comment"])


def test_committed_gifs_match_the_code(tmp_path):
    """Same configuration, frames, title and alt text in every environment; the same bytes
    where the rendering libraries are the versions that wrote them (CI pins them)."""
    fresh = {p.name: p for p in make_figures.write_animations(tmp_path)}
    same_libraries = True
    for name, spec in animations.ANIMATIONS.items():
        committed = FIGURES / spec["file"]
        assert committed.exists(), (
            f"{committed} is missing: run python scripts/make_figures.py"
        )
        old, new = _recipe(committed), _recipe(fresh[spec["file"]])
        libraries = ("matplotlib", "pillow")
        same_libraries &= all(old[k] == new[k] for k in libraries)
        for key in ("config", "title", "alt", "frames"):
            assert old[key] == new[key], (
                f"{spec['file']} is stale ({key} changed): run python scripts/make_figures.py"
            )
        assert committed.stat().st_size <= 300 * 1024
        with Image.open(committed) as im:
            durations = [f.info["duration"] for f in ImageSequence.Iterator(im)]
            assert im.size[0] == 520 and len(durations) == len(old["frames"]), name
        # about 3 frames per second (GIF counts in hundredths), then a pause
        assert set(durations[:-1]) == {330} and durations[-1] >= 2000, name
        if same_libraries:
            assert committed.read_bytes() == fresh[spec["file"]].read_bytes(), (
                f"{spec['file']} differs from a fresh render: run python scripts/make_figures.py"
            )
    if not same_libraries:
        pytest.skip(
            f"matplotlib {matplotlib.__version__} / Pillow {PIL.__version__} differ from "
            "the versions that rendered the committed GIFs: recipes checked, bytes not"
        )


def test_conv_animation_holds_the_last_frame():
    anim = animations.conv_animation(**animations.ANIMATIONS["conv-stride-2"]["config"])
    scene = anim._lenet_scene
    assert len(scene.frames) == 9 and not plt.get_fignums()  # no stray pyplot figure
    assert scene.show(8)[-1].get_text().startswith("step 9 of 9")
    assert len(list(anim.new_frame_seq())) == 9 + 6  # the last one held 6 more frames
    anim._draw_was_started = (
        True  # not rendered on purpose: silence matplotlib's warning
    )
