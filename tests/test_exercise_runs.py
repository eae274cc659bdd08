"""scripts/exercise_runs.py keeps the recorded exercise runs unless told to replace them."""

import json

import pytest
import torch

from lenet_utils.records import record_result


@pytest.fixture
def script(load_script, monkeypatch, tmp_path):
    module = load_script("exercise_runs")
    monkeypatch.setenv("LENET_RESULTS_DIR", str(tmp_path))
    monkeypatch.setenv("LENET_BUDGET", "full")
    # setenv, not delenv: the script sets the variable, and monkeypatch then removes it
    monkeypatch.setenv("LENET_REPLACE_RECORDS", "0")

    runs = iter(range(11, 20))  # each run records a new figure

    def fake_run():
        record_result(chapter="MNIST", dataset="MNIST", model="an exercise",
                      params=1, epochs=1, top1=next(runs), top5=None, train_seconds=1.0,
                      device=torch.device("cpu"), kind="exercise")  # fmt: skip

    monkeypatch.setitem(module.EXERCISES, "ex-fake", fake_run)
    return module


def test_a_second_run_keeps_the_record_unless_replaced(script, tmp_path, monkeypatch):
    assert script.main(["ex-fake"]) == 0
    (path,) = tmp_path.glob("*.json")
    assert json.loads(path.read_text())["top1"] == 11.0
    script.main(["ex-fake"])
    assert json.loads(path.read_text())["top1"] == 11.0  # kept
    script.main(["--replace", "ex-fake"])
    assert json.loads(path.read_text())["top1"] == 13.0  # replaced on purpose


def test_the_learning_rate_exercise_trains_each_run_at_the_rate_it_names(
    script, monkeypatch
):
    """The constant-rate runs must train at their own rate (a one-cycle scheduler, once
    built, sets the optimiser's rate at once), and the one-cycle run with its momentum
    held at 0.9, so that only the learning rate differs."""
    started = []

    def fake_fit(model, loader, val_loader, *, epochs, optimizer, scheduler, **kw):
        group = optimizer.param_groups[0]
        started.append((group["lr"], group["momentum"], scheduler is not None))
        history = script.History()
        history.epochs = [
            {"epoch": e, "train_loss": 0.1, "train_top1": 99.0, "val_loss": 0.1,
             "val_top1": 98.5 + e / 10, "seconds": 1.0, "lr": group["lr"]}
            for e in range(1, epochs + 1)
        ]  # fmt: skip
        return history

    data = type("Data", (), {"title": "MNIST"})()
    monkeypatch.setattr(script, "load_tensors", lambda *a, **kw: data)
    monkeypatch.setattr(script, "hold_out", lambda d, **kw: (d, d))
    monkeypatch.setattr(script, "make_loaders", lambda *a, **kw: ([None] * 10, [None]))
    monkeypatch.setattr(script, "fit", fake_fit)
    script.DEVICE = torch.device("cpu")
    script.ex_mnist_lr()
    assert started == [
        (0.1, 0.9, False),
        (0.01, 0.9, False),
        (pytest.approx(0.004), 0.9, True),
    ]
