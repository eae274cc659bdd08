"""LeNet-5 variants: shapes, parameter counts and the errors a reader meets."""

import json
from collections import OrderedDict
from pathlib import Path

import pytest
import torch
from torch import nn

from lenet_utils.models import LeNet5, activations, count_parameters


@pytest.mark.parametrize("variant", ["modern", "classic"])
@pytest.mark.parametrize(
    "in_channels,input_size,num_classes",
    [(1, 28, 10), (1, 32, 10), (3, 32, 10), (3, 32, 200)],
)
def test_forward_shapes(variant, in_channels, input_size, num_classes):
    model = LeNet5(
        variant, in_channels=in_channels, num_classes=num_classes, input_size=input_size
    )
    out = model(torch.randn(4, in_channels, input_size, input_size))
    assert out.shape == (4, num_classes)


def test_parameter_counts():
    # 156 + 2,416 + 48,120 + 10,164 + 850 (a linear 10-way output)
    assert count_parameters(LeNet5()) == 61_706
    assert count_parameters(LeNet5("classic", input_size=28)) == 61_706
    assert (
        count_parameters(LeNet5(in_channels=3)) == 61_706 + 2 * 150
    )  # C1 sees 3 channels
    assert (
        count_parameters(LeNet5(in_channels=3, num_classes=200))
        == 61_706 + 300 + 190 * 85
    )


def test_variants_differ_in_activation_and_pooling():
    modern, classic = LeNet5("modern"), LeNet5("classic")
    assert (
        type(modern.features.S2).__name__ == "MaxPool2d"
        and type(modern.features.act1).__name__ == "ReLU"
    )
    assert (
        type(classic.features.S2).__name__ == "AvgPool2d"
        and type(classic.features.act1).__name__ == "Tanh"
    )


def test_dropout_only_in_training():
    model = LeNet5(dropout=0.5)
    x = torch.randn(8, 1, 32, 32)
    model.eval()
    assert torch.equal(model(x), model(x))
    model.train()
    torch.manual_seed(0)
    assert not torch.equal(model(x), model(x))


@pytest.mark.parametrize(
    "kwargs,shape,message",
    [
        (
            {},
            (2, 1, 28, 28),
            r"expects 32x32 images, got 28x28; build it with input_size=28",
        ),
        (
            {"input_size": 28},
            (2, 1, 32, 32),
            r"expects 28x28 images, got 32x32; build it with input_size=32",
        ),
        ({}, (2, 3, 32, 32), r"expects 1 input channel\(s\), got 3 .*in_channels=3"),
        ({"in_channels": 3}, (2, 1, 32, 32), r"expects 3 input channel\(s\), got 1"),
        (
            {},
            (1, 32, 32),
            r"got one image of shape \(1, 32, 32\); add a batch dimension",
        ),
        (
            {},
            (2, 1, 64, 64),
            r"expects 32x32 images, got 64x64; resize or pad the images to 32x32",
        ),
        ({}, (32, 32), r"expects a batch of shape \(N, 1, 32, 32\), got a 2-D tensor"),
    ],
)
def test_wrong_input_says_what_was_expected(kwargs, shape, message):
    with pytest.raises(ValueError, match=message):
        LeNet5(**kwargs)(torch.zeros(shape))


@pytest.mark.parametrize(
    "kwargs,message",
    [
        ({"variant": "1998"}, "variant must be 'modern' or 'classic'"),
        ({"input_size": 64}, "input_size must be 32 .* or 28 .*, got 64"),
        ({"dropout": 1.0}, r"dropout must be in \[0, 1\)"),
        (
            {"variant": "classic", "dropout": 0.2},
            "dropout belongs to the modern variant",
        ),
        ({"in_channels": 0}, "need in_channels >= 1"),
    ],
)
def test_bad_configuration(kwargs, message):
    with pytest.raises(ValueError, match=message):
        LeNet5(**kwargs)


def test_activations_trace_every_named_layer():
    acts = activations(
        LeNet5(),
        torch.randn(1, 1, 32, 32),
        names=("C1", "S2", "C3", "S4", "C5", "F6", "output"),
    )
    assert {k: tuple(v.shape) for k, v in acts.items()} == {
        "C1": (1, 6, 28, 28),
        "S2": (1, 6, 14, 14),
        "C3": (1, 16, 10, 10),
        "S4": (1, 16, 5, 5),
        "C5": (1, 120, 1, 1),
        "F6": (1, 84),
        "output": (1, 10),
    }


def test_uint8_images_are_refused_with_the_fix():
    x = torch.zeros(2, 1, 32, 32, dtype=torch.uint8)
    with pytest.raises(
        ValueError, match="expects float images, got torch.uint8.*normalize"
    ):
        LeNet5()(x)


def test_channels_last_batch_is_recognised():
    x = torch.zeros(2, 32, 32, 3)  # (N, H, W, C), as from numpy or PIL
    with pytest.raises(ValueError, match=r"channels last.*x.permute\(0, 3, 1, 2\)"):
        LeNet5(in_channels=3)(x)
    assert LeNet5(in_channels=3)(x.permute(0, 3, 1, 2)).shape == (2, 10)


@pytest.mark.parametrize(
    "kwargs,message",
    [
        ({"batchnorm": "no"}, "batchnorm must be True or False, got 'no'"),
        ({"batchnorm": 1}, "batchnorm must be True or False, got 1"),
        ({"num_classes": 2.5}, "num_classes must be a whole number, got 2.5"),
        ({"in_channels": "3"}, "in_channels must be a whole number, got '3'"),
        ({"input_size": True}, "input_size must be a whole number, got True"),
        ({"dropout": None}, r"dropout must be a number in \[0, 1\), got None"),
    ],
)
def test_arguments_of_the_wrong_kind_are_a_type_error(kwargs, message):
    with pytest.raises(TypeError, match=message):
        LeNet5(**kwargs)


def test_numpy_integers_are_whole_numbers():
    np = pytest.importorskip("numpy")
    model = LeNet5(in_channels=np.int64(3), num_classes=np.int64(20))
    assert model.expected_shape == (3, 32, 32) and type(model.num_classes) is int


def test_batch_norm_refuses_a_training_batch_of_one_image_with_the_fix():
    model = LeNet5(batchnorm=True)
    with pytest.raises(ValueError, match="training batch of one image.*drop_last"):
        model(torch.randn(1, 1, 32, 32))
    assert model.eval()(torch.randn(1, 1, 32, 32)).shape == (1, 10)  # fine to score
    assert LeNet5().train()(torch.randn(1, 1, 32, 32)).shape == (1, 10)  # no batch norm


def chapter_class(notebook: str, name: str) -> type:
    """The class ``name`` exactly as a chapter's code cell defines it."""
    path = Path(__file__).resolve().parents[1] / "notebooks" / notebook
    cells = json.loads(path.read_text())["cells"]
    sources = ["".join(c["source"]) for c in cells if c["cell_type"] == "code"]
    (source,) = [s for s in sources if s.startswith(f"class {name}(")]
    namespace = {"nn": nn, "torch": torch, "OrderedDict": OrderedDict}
    exec(source, namespace)
    return namespace[name]


def test_chapter_3s_class_is_the_package_design():
    """Chapter 3 writes LeNet-5 by hand: same parameter names and shapes as the package's
    LeNet5 for 28x28 digits, and the same outputs for the same weights."""
    Chapter = chapter_class("03_lenet5_in_pytorch.ipynb", "LeNet5")
    torch.manual_seed(0)
    ours, course = Chapter(), LeNet5("modern", input_size=28)
    shapes = {n: p.shape for n, p in ours.state_dict().items()}
    assert shapes == {n: p.shape for n, p in course.state_dict().items()}
    course.load_state_dict(ours.state_dict())
    x = torch.randn(5, 1, 28, 28)
    assert torch.equal(ours.eval()(x), course.eval()(x))
    assert count_parameters(ours) == 61_706
    assert [n for n, _ in ours.named_children()] == ["features", "classifier"]
