"""``python -m lenet_utils.train`` in one process: recipes, budgets, records, bad input."""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from fakedata import write_imagenet_batch, write_learnable_mnist

from lenet_utils import train

ROOT = Path(__file__).resolve().parents[1]
QUICK = ["--recipe", "mnist", "--device", "cpu", "--batch-size", "100"]


@pytest.fixture
def tiny(tmp_path, monkeypatch):
    """A learnable generated MNIST (500 + 100 digits); everything written in tmp_path."""
    write_learnable_mnist(tmp_path / "data")
    for name, sub in (("LENET_DATA_ROOT", "data"), ("LENET_CACHE_DIR", "cache"),
                      ("LENET_RESULTS_DIR", "results")):  # fmt: skip
        monkeypatch.setenv(name, str(tmp_path / sub))
    monkeypatch.setenv("LENET_BUDGET", "smoke")
    for name in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT"):
        monkeypatch.delenv(name, raising=False)
    return tmp_path


def test_help_lists_the_recipes_and_examples():
    out = subprocess.run(
        [sys.executable, "-m", "lenet_utils.train", "--help"],
        capture_output=True, text=True, timeout=60,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    for name in train.RECIPES:
        assert f"\n  {name} " in out.stdout
    assert (
        "chapter 4: modern LeNet-5" in out.stdout
        and "label smoothing 0.1" in out.stdout
    )
    assert "torchrun --standalone --nproc_per_node=2 -m lenet_utils.train" in out.stdout
    assert "--node_rank" in out.stdout and "--rdzv_endpoint" in out.stdout


def settings(*argv: str) -> dict:
    return train.settings(train.build_parser().parse_args(list(argv)))


def test_recipes_reproduce_the_chapters_and_every_option_overrides(monkeypatch):
    monkeypatch.setenv("LENET_BUDGET", "full")
    mnist = settings("--recipe", "mnist")
    assert (mnist["epochs"], mnist["batch_size"], mnist["lr"]) == (15, 128, 0.1)
    assert (mnist["padding"], mnist["flip"], mnist["batchnorm"]) == (2, False, False)
    assert mnist["per_class"] is None and mnist["chapter"] == "MNIST"
    cifar = settings("--recipe", "cifar10")
    assert cifar["batchnorm"] and cifar["flip"] and cifar["pad_mode"] == "reflect"
    assert (cifar["padding"], cifar["label_smoothing"], cifar["epochs"]) == (4, 0.1, 30)
    tiny = settings("--recipe", "tiny-imagenet")
    assert (tiny["batch_size"], tiny["lr"], tiny["weight_decay"]) == (64, 0.05, 5e-5)
    assert (tiny["padding"], tiny["target"]) == (2, (25.0, 50.0))
    changed = settings("--recipe", "cifar10", "--epochs", "3", "--no-flip", "--lr",
                       "0.02", "--no-batchnorm", "--chapter", "Beyond one GPU")  # fmt: skip
    assert (changed["epochs"], changed["flip"], changed["lr"]) == (3, False, 0.02)
    assert changed["target"] is None  # the chapter's target was for its own model
    assert changed["chapter"] == "Beyond one GPU"
    monkeypatch.setenv("LENET_BUDGET", "smoke")
    smoke = settings("--recipe", "tiny-imagenet", "--dataset", "mnist")
    assert (smoke["epochs"], smoke["per_class"], smoke["test_per_class"]) == (
        2,
        100,
        50,
    )
    with pytest.raises(ValueError, match="--batch-size must be at least 1"):
        settings("--recipe", "mnist", "--batch-size", "0")


def test_a_smoke_run_trains_logs_and_records_nothing(tiny, capsys):
    history = train.main([*QUICK, "--log-json", str(tiny / "log.json")])
    out = capsys.readouterr().out
    assert [e["epoch"] for e in history.epochs] == [1, 2]
    assert "budget: smoke" in out and "smoke budget: result not recorded" in out
    assert "1 process(es), backend none" in out and "images/s" in out
    assert not (tiny / "results").exists()
    log = json.loads((tiny / "log.json").read_text())
    assert log["processes"] == 1 and log["train_images"] == 500
    assert [row["epoch"] for row in log["history"]] == [1, 2]
    assert all(row["images_per_s"] > 0 for row in log["history"])
    assert os.environ["LENET_BUDGET"] == "smoke"  # --budget would not leak out of main


def test_a_full_run_records_the_chapter_and_its_target(tiny, capsys):
    train.main([*QUICK, "--budget", "full", "--epochs", "3"])
    (path,) = (tiny / "results").glob("*.json")
    assert path.name == "04--mnist--modern-lenet-5--cpu.json"
    record = json.loads(path.read_text())
    assert record["chapter"] == "MNIST" and record["epochs"] == 3
    assert record["processes"] == 1 and record["recipe"] == "mnist"
    assert record["target"] == "top-1 ≥ 99.3%" and record["met"] == (
        record["top1"] >= 99.3
    )
    assert record["top1"] > 50  # the toy task is learnt
    assert os.environ["LENET_BUDGET"] == "smoke"


def test_without_the_rest_of_the_rendezvous_it_says_run_it_under_torchrun(
    tiny, monkeypatch, capsys
):
    monkeypatch.setenv("RANK", "0")
    with pytest.raises(SystemExit) as stop:
        train.main(QUICK)
    assert stop.value.code == 2
    err = capsys.readouterr().err
    assert "WORLD_SIZE, MASTER_ADDR, MASTER_PORT are missing" in err
    assert "run it under torchrun" in err and "Traceback" not in err


def test_a_checkpoint_of_another_model_is_refused(tiny, capsys):
    checkpoint = tiny / "run.pt"
    train.main([*QUICK, "--epochs", "1", "--checkpoint", str(checkpoint)])
    with pytest.raises(SystemExit):
        train.main([*QUICK, "--epochs", "1", "--variant", "classic", "--checkpoint",
                    str(checkpoint)])  # fmt: skip
    err = capsys.readouterr().err
    assert "was saved from another model, LeNet5(variant='modern'" in err
    assert "but this run trains LeNet5(variant='classic'" in err
    with pytest.raises(SystemExit):  # the same model, another schedule
        train.main([*QUICK, "--epochs", "3", "--checkpoint", str(checkpoint)])
    assert "resume it with the epochs and batch size" in capsys.readouterr().err


@pytest.mark.parametrize("res", [32, 64])
def test_imagenet_trains_from_a_memory_map(tiny, capsys, res):
    """1,000 classes of 2 images in batch 1 (and 9 nearly empty ones), 1 per class in
    val; Imagenet64 is box-averaged to LeNet-5's 32x32 on the way in."""
    rng = np.random.default_rng(0)
    folder = tiny / "data" / f"Imagenet{res}_train"
    labels = np.tile(np.arange(1, 1001), 2)
    for i in range(10):
        y = labels.tolist() if i == 0 else [1]
        x = rng.integers(0, 256, (len(y), 3 * res * res), dtype=np.uint8)
        write_imagenet_batch(folder / f"train_data_batch_{i + 1}", x, y)
    x = rng.integers(0, 256, (1000, 3 * res * res), dtype=np.uint8)
    write_imagenet_batch(tiny / "data" / f"Imagenet{res}_val" / "val_data", x,
                         list(range(1, 1001)))  # fmt: skip
    history = train.main(["--recipe", f"imagenet{res}", "--device", "cpu",
                          "--epochs", "1", "--batch-size", "500"])  # fmt: skip
    out = capsys.readouterr().out
    assert "2,000 training and 1,000 test images" in out and "top-5" in out
    assert "test_top5" in history.last
    assert len(list((tiny / "cache").glob(f"imagenet{res}-train-2__*"))) == 1
