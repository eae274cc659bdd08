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
