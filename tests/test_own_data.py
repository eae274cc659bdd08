"""Your own dataset, named as itself (lenet_utils.load_idx, load_imagefolder): stand-in
Fashion-MNIST IDX files train through the public API, and the records, titles and classes
carry its name, never MNIST's."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from fakedata import encode, idx_bytes, learnable, write_zip

import lenet_utils
from lenet_utils import (
    LeNet5,
    count_parameters,
    evaluate,
    fit,
    hold_out,
    load_idx,
    load_imagefolder,
    make_loaders,
    sgd_one_cycle,
)
from lenet_utils.records import record_result
from lenet_utils.storage import CorruptDatasetError, DatasetMissingError

FASHION = (
    "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
    "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot",
)  # fmt: skip


@pytest.fixture
def fashion(tmp_path):
    """Stand-in Fashion-MNIST: its four IDX files, named as Fashion-MNIST ships them."""
    images, labels = learnable(240, noise=10)
    for stem, part in (("train", slice(0, 200)), ("t10k", slice(200, None))):
        (tmp_path / f"{stem}-images-idx3-ubyte").write_bytes(
            idx_bytes(images[part, ..., 0])
        )
        (tmp_path / f"{stem}-labels-idx1-ubyte").write_bytes(idx_bytes(labels[part]))
    return tmp_path


def read(folder, stem, **kwargs):
    return load_idx(
        folder / f"{stem}-images-idx3-ubyte",
        folder / f"{stem}-labels-idx1-ubyte",
        name="Fashion-MNIST",
        **kwargs,
    )


def test_a_student_trains_on_their_own_idx_dataset_and_it_keeps_its_name(
    fashion, tmp_path, monkeypatch
):
    monkeypatch.setenv("LENET_RESULTS_DIR", str(tmp_path / "results"))
    monkeypatch.setenv("LENET_BUDGET", "full")
    train = read(fashion, "train", classes=FASHION)
    test = read(fashion, "t10k", classes=FASHION, stats=(train.mean, train.std))
    assert (train.title, train.classes, len(train)) == (
        "Fashion-MNIST",
        list(FASHION),
        200,
    )
    assert train.images.shape[1:] == (1, 28, 28) and train.images.dtype == torch.uint8
    assert train.mean != (0.1307,) and test.mean == train.mean  # its own statistics
    expected = train.images.double().div(255).mean().item()
    assert train.mean[0] == pytest.approx(expected, abs=1e-4)

    part, val = hold_out(train, per_class=2, seed=0)
    assert (part.title, val.classes) == ("Fashion-MNIST", list(FASHION))
    cpu = torch.device("cpu")
    loader, val_loader = make_loaders(part, val, cpu, batch_size=32, padding=2)
    torch.manual_seed(0)
    model = LeNet5("modern", input_size=28)
    opt, sched = sgd_one_cycle(model, lr=0.05, epochs=2, steps_per_epoch=len(loader))
    history = fit(
        model, loader, val_loader, epochs=2, optimizer=opt, scheduler=sched,
        device=cpu, progress=False, split="val",
    )  # fmt: skip
    assert len(history.epochs) == 2 and np.isfinite(history.last["train_loss"])
    _, test_loader = make_loaders(part, test, cpu)
    top1 = evaluate(model, test_loader, cpu)["top1"]
    path = record_result(
        chapter="MNIST", dataset=train.title, model="modern LeNet-5", params=count_parameters(model),
        epochs=2, top1=top1, top5=None, train_seconds=history.train_seconds, device=cpu,
    )  # fmt: skip
    assert "fashion-mnist" in path.name and "--mnist--" not in path.name
    assert json.loads(path.read_text())["dataset"] == "Fashion-MNIST"


def test_the_top_level_names_what_a_student_needs_to_train():
    for name in (
        "load_tensors",
        "load_idx",
        "make_loaders",
        "LeNet5",
        "fit",
        "evaluate",
    ):
        assert name in lenet_utils.__all__ and callable(getattr(lenet_utils, name))


def test_labels_without_names_are_named_by_their_numbers(fashion):
    data = read(fashion, "train")
    assert data.classes == [str(c) for c in range(10)]


def test_too_few_class_names_say_how_many_are_needed(fashion):
    with pytest.raises(ValueError, match="labels run from 0 to 9, but 3 class names"):
        read(fashion, "train", classes=["a", "b", "c"])


def test_a_missing_file_names_it_and_the_fix(fashion):
    (fashion / "t10k-labels-idx1-ubyte").unlink()
    with pytest.raises(DatasetMissingError, match="t10k-labels-idx1-ubyte"):
        read(fashion, "t10k")


def test_images_and_labels_that_do_not_pair_up_are_refused(fashion):
    labels = fashion / "t10k-labels-idx1-ubyte"
    labels.write_bytes(idx_bytes(np.zeros(7, np.uint8)))
    with pytest.raises(CorruptDatasetError, match="do not pair up"):
        read(fashion, "t10k")


def test_an_image_folder_takes_the_name_it_is_given(tmp_path):
    images, labels = learnable(12, classes=3, size=8, channels=3)
    members = {
        f"flowers/{'abc'[y]}/{i}.png": encode(images[i]) for i, y in enumerate(labels)
    }
    path = write_zip(tmp_path / "flowers.zip", members)
    data = load_imagefolder(path, name="My flowers", cache=False)
    assert (data.title, data.classes, len(data)) == ("My flowers", ["a", "b", "c"], 12)
    assert load_imagefolder(path, cache=False).title == "flowers"
