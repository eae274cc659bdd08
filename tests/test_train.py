"""``python -m lenet_utils.train`` in one process: recipes, budgets, records, bad input."""

import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from fakedata import write_imagenet_batch, write_learnable_mnist

from lenet_utils import train
from lenet_utils.files import WriteError

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


def test_help_lists_the_recipes_and_examples(capsys):
    with pytest.raises(SystemExit) as stop:
        train.main(["--help"])
    out = capsys.readouterr().out
    assert stop.value.code == 0
    for name in train.RECIPES:
        assert f"\n  {name} " in out
    assert "chapter 4: modern LeNet-5" in out and "label smoothing 0.1" in out
    assert "torchrun --standalone --nproc_per_node=2 -m lenet_utils.train" in out
    assert "--node_rank" in out and "--rdzv_endpoint" in out
    assert "join_timeout" in out  # the two-machine command cannot wait for ever


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


def test_a_full_run_records_the_chapter_its_target_and_what_differs(tiny, capsys):
    train.main([*QUICK, "--budget", "full", "--epochs", "3"])
    (path,) = (tiny / "results").glob("*.json")
    name = "04--mnist--modern-lenet-5--cpu--batch-size-100--epochs-3--lr-0-0884.json"
    assert path.name == name  # batch 100: the rule's lr, 0.1 x sqrt(100 / 128)
    record = json.loads(path.read_text())
    assert record["chapter"] == "MNIST" and record["epochs"] == 3
    assert record["differs"] == {"batch_size": 100, "epochs": 3, "lr": 0.0884}
    assert record["processes"] == 1 and record["recipe"] == "mnist"
    assert record["target"] == "top-1 ≥ 99.3%" and record["met"] == (
        record["top1"] >= 99.3
    )
    assert record["top1"] > 50  # the toy task is learnt
    assert os.environ["LENET_BUDGET"] == "smoke"


SHORT = [*QUICK, "--budget", "full", "--epochs", "1", "--per-class", "20",
         "--test-per-class", "10"]  # fmt: skip


def test_a_variant_never_replaces_the_published_record(tiny, monkeypatch, capsys):
    """The issue's quick run, against a copy of the course's results/: the published
    records stay as they are, and the variant's record names what differs."""
    results = tiny / "published"
    shutil.copytree(ROOT / "results", results)
    monkeypatch.setenv("LENET_RESULTS_DIR", str(results))
    monkeypatch.delenv("LENET_REPLACE_RECORDS", raising=False)
    before = {p.name: p.read_bytes() for p in results.glob("*.json")}
    assert "04--mnist--modern-lenet-5--cpu.json" in before
    train.main(SHORT)
    after = {p.name: p.read_bytes() for p in results.glob("*.json")}
    (new,) = set(after) - set(before)
    assert all(after[name] == data for name, data in before.items())
    record = json.loads(after[new])
    assert record["differs"] == {"epochs": 1, "batch_size": 100, "per_class": 20,
                                 "test_per_class": 10, "lr": 0.0884}  # fmt: skip
    assert "per-class-20" in new and "epochs-1" in new
    # The same variant again keeps its record, unless asked to replace it.
    (results / new).write_text("{}")
    train.main(SHORT)
    assert (results / new).read_text() == "{}"
    assert "exists and is kept" in capsys.readouterr().out
    train.main([*SHORT, "--replace-record"])
    assert json.loads((results / new).read_text())["differs"] == record["differs"]


def fails(capsys, *argv: str) -> tuple[str, str]:
    """Run the command, which must stop with status 2: (stdout, the one error line)."""
    with pytest.raises(SystemExit) as stop:
        train.main(list(argv))
    assert stop.value.code == 2
    out, err = capsys.readouterr()
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1, err
    return out, err


def test_a_diverging_run_stops_with_one_line_and_records_nothing(tiny, capsys):
    out, err = fails(capsys, *QUICK, "--budget", "full", "--epochs", "1", "--lr", "1e4")
    assert "the loss became NaN or infinite at step" in err and "of epoch 1" in err
    assert "lower the learning rate" in err
    assert "epoch  1/1" not in out and not list((tiny / "results").glob("*.json"))


@pytest.mark.parametrize(
    "option, message",
    [
        (["--lr", "nan"], "--lr must be a positive number, got nan"),
        (["--padding", "-1"], "--padding must be 0 or more, got -1"),
        (["--checkpoint", ""], "an empty path was given"),
        (["--log-json", "/tmp"], "is a folder: give a file name inside it"),
    ],
)
def test_bad_options_stop_before_any_training(tiny, capsys, option, message):
    out, err = fails(capsys, *QUICK, *option)
    assert message in err and "epoch" not in out


def test_an_unwritable_results_folder_stops_before_training(tiny, monkeypatch, capsys):
    (tiny / "file").write_text("")
    monkeypatch.setenv("LENET_RESULTS_DIR", str(tiny / "file" / "results"))
    out, err = fails(capsys, *QUICK, "--budget", "full", "--epochs", "1")
    assert "is a file, not a folder" in err and "epoch  1/1" not in out


def test_a_failed_record_write_prints_the_result_and_still_writes_the_log(
    tiny, monkeypatch, capsys
):
    def full_disk(**kwargs):
        raise WriteError("no space left on results: free some space")

    monkeypatch.setattr(train, "record_result", full_disk)
    log = tiny / "log.json"
    out, err = fails(capsys, *QUICK, "--budget", "full", "--epochs", "1",
                     "--log-json", str(log))  # fmt: skip
    assert "no space left on results" in err
    (line,) = [x for x in out.splitlines() if x.startswith("result (not saved): ")]
    result = json.loads(line.removeprefix("result (not saved): "))
    assert result["top1"] == json.loads(log.read_text())["top1"]


def test_ctrl_c_says_where_the_checkpoint_is_and_how_to_resume(
    tiny, monkeypatch, capsys
):
    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    checkpoint = tiny / "run.pt"
    argv = [*QUICK, "--epochs", "2", "--checkpoint", str(checkpoint)]
    real_fit = train.fit
    monkeypatch.setattr(train, "fit", interrupted)
    with pytest.raises(SystemExit) as stop:
        train.main(argv)
    err = capsys.readouterr().err
    assert stop.value.code == 130 and "Traceback" not in err
    assert err.startswith("interrupted; no checkpoint was written")
    monkeypatch.setattr(train, "fit", real_fit)
    train.main([*argv, "--stop-after", "1"])
    monkeypatch.setattr(train, "fit", interrupted)
    with pytest.raises(SystemExit):
        train.main(argv)
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert "the last checkpoint is" in line and "run.pt" in line
    assert line.endswith("resume with python -m lenet_utils.train " + " ".join(argv))


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


def test_a_resume_with_other_settings_is_refused(tiny, capsys):
    checkpoint = tiny / "run.pt"
    train.main([*QUICK, "--epochs", "1", "--checkpoint", str(checkpoint)])
    capsys.readouterr()
    _, err = fails(capsys, *QUICK, "--epochs", "1", "--variant", "classic",
                   "--checkpoint", str(checkpoint))  # fmt: skip
    assert "was saved from another model, LeNet5(variant='modern'" in err
    assert "but this run trains LeNet5(variant='classic'" in err
    _, err = fails(capsys, *QUICK, "--epochs", "3", "--checkpoint", str(checkpoint))
    assert "resume it with the epochs and batch size" in err  # another schedule
    _, err = fails(capsys, *QUICK, "--epochs", "1", "--lr", "0.05",
                   "--checkpoint", str(checkpoint))  # fmt: skip
    assert "was saved with lr 0.0884 (now 0.05)" in err


def test_a_checkpoint_without_its_random_state_is_refused(tiny, capsys):
    checkpoint = tiny / "run.pt"
    train.main([*QUICK, "--epochs", "1", "--checkpoint", str(checkpoint)])
    state = torch.load(checkpoint, weights_only=True)
    del state["rng"]
    torch.save(state, checkpoint)
    _, err = fails(capsys, *QUICK, "--epochs", "1", "--checkpoint", str(checkpoint))
    assert "is not a complete checkpoint" in err and "no 'rng'" in err


def test_a_last_batch_of_one_under_batch_norm(tiny, capsys):
    """500 images in batches of 499: the last holds one, which batch norm refuses."""
    argv = [*QUICK[:-1], "499", "--epochs", "1", "--batchnorm"]
    _, err = fails(capsys, *argv)
    assert "the last training batch of each epoch would hold one image" in err
    assert "choose another --batch-size, e.g. 500" in err


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


def test_a_batch_size_of_its_own_scales_the_learning_rate_by_chapter_8s_rule():
    from lenet_utils.bench import lr_for_batch

    assert settings("--recipe", "mnist", "--batch-size", "512")["lr"] == round(
        lr_for_batch(512, 0.1, 128), 4
    )  # 0.1 at the recipe's 128, twice the square root: 0.2
    assert settings("--recipe", "mnist", "--batch-size", "512")["lr"] == 0.2
    assert (
        settings("--recipe", "mnist", "--batch-size", "512", "--lr", "0.05")["lr"]
        == 0.05
    )
    assert settings("--recipe", "mnist")["lr"] == 0.1
