"""Results records: one schema, one writer, file names of [a-z0-9-], nothing half-written."""

import json
from pathlib import Path

import pytest
import torch

from lenet_utils import records
from lenet_utils.records import FIELDS, record_result, slug

RUN = dict(
    chapter="MNIST",
    dataset="MNIST",
    model="modern LeNet-5 (+ batch norm), v2",
    params=61706,
    epochs=3,
    top1=99.123,
    top5=None,
    train_seconds=12.34,
    device=torch.device("cpu"),
    extra={"target": "top-1 ≥ 99.3%", "met": False},
)


@pytest.fixture(autouse=True)
def results(tmp_path, monkeypatch):
    monkeypatch.setenv("LENET_RESULTS_DIR", str(tmp_path))
    monkeypatch.setenv("LENET_BUDGET", "full")
    return tmp_path


def test_slug_keeps_only_lowercase_letters_digits_and_hyphens():
    assert slug("CIFAR-10 (JPEG copy)") == "cifar-10-jpeg-copy"
    assert (
        slug("modern LeNet-5 + batch norm, flip TTA")
        == "modern-lenet-5-batch-norm-flip-tta"
    )
    assert slug("MNIST", "LeNet-5 (1998)", "cpu") == "mnist--lenet-5-1998--cpu"


def test_a_full_run_writes_every_field(results, capsys):
    path = record_result(**RUN)
    assert path.name == "04--mnist--modern-lenet-5-batch-norm-v2--cpu.json"
    record = json.loads(path.read_text())
    assert list(record)[: len(FIELDS)] == list(FIELDS)
    assert (
        record["kind"] == "train" and record["top1"] == 99.12 and record["top5"] is None
    )
    assert record["device"].startswith("CPU") and record["torch"] == torch.__version__
    assert record["met"] is False and record["target"] == "top-1 ≥ 99.3%"
    out = capsys.readouterr().out
    assert "recorded" in out and str(results) not in out  # no machine's absolute path


def test_smoke_runs_are_not_recorded(results, monkeypatch):
    monkeypatch.setenv("LENET_BUDGET", "smoke")
    assert record_result(**RUN) is None and not list(results.iterdir())


@pytest.mark.parametrize(
    "change,message",
    [
        ({"chapter": "Chapter 4"}, "unknown chapter 'Chapter 4'"),
        ({"top1": 101.0}, r"top1 is a percentage in \[0, 100\]"),
        ({"top5": -1.0}, r"top5 is a percentage"),
        ({"params": 0}, "params and epochs must be positive"),
        ({"kind": "trial"}, "unknown kind 'trial'"),
    ],
)
def test_bad_records_are_refused_before_writing(results, change, message):
    with pytest.raises(ValueError, match=message):
        record_result(**{**RUN, **change})
    assert not list(results.iterdir())


def test_an_existing_record_is_kept_unless_replaced_on_purpose(results, capsys):
    first = record_result(**RUN)
    kept = first.read_text()
    assert record_result(**{**RUN, "top1": 10.0}) is None
    assert first.read_text() == kept
    assert "exists and is kept" in capsys.readouterr().out
    assert record_result(**{**RUN, "top1": 10.0}, replace=True) == first
    assert json.loads(first.read_text())["top1"] == 10.0


def test_replacing_by_environment(results, monkeypatch):
    first = record_result(**RUN)
    monkeypatch.setenv("LENET_REPLACE_RECORDS", "1")
    assert record_result(**{**RUN, "top1": 12.0}) == first
    monkeypatch.setenv("LENET_REPLACE_RECORDS", "yes")
    with pytest.raises(ValueError, match="LENET_REPLACE_RECORDS must be 1 or 0"):
        record_result(**RUN)


def test_a_variant_never_takes_the_recipes_name(results):
    recipe = record_result(**RUN)
    variant = record_result(**RUN, differs={"epochs": 1, "per_class": 20})
    assert variant != recipe and recipe.exists()
    assert variant.name == (
        "04--mnist--modern-lenet-5-batch-norm-v2--cpu--epochs-1--per-class-20.json"
    )
    assert json.loads(variant.read_text())["differs"] == {"epochs": 1, "per_class": 20}


def test_the_course_records_follow_the_schema():
    """Every committed record has every field, and its file name is what the writer makes."""
    folder = Path(__file__).resolve().parents[1] / "results"
    paths = sorted(folder.glob("*.json"))
    assert paths, f"no records in {folder}"
    for path in paths:
        record = json.loads(path.read_text())
        assert set(FIELDS) <= set(record), (
            f"{path.name} lacks {set(FIELDS) - set(record)}"
        )
        devtype = "cpu" if record["device"].startswith("CPU") else "cuda"
        expected = records.record_name(
            record["chapter"],
            record["dataset"],
            record["model"],
            torch.device(devtype),
            record.get("differs"),
            record.get("seed", 0),
        )
        assert path.name == expected
        assert record["kind"] in records.KINDS, path.name
        if (
            record["kind"] == "exercise"
        ):  # the label of the exercise its solution quotes
            assert record.get("exercise", "").startswith("ex-"), path.name


def test_each_seed_of_a_run_keeps_its_own_record_with_its_epoch_times(
    tmp_path, monkeypatch
):
    monkeypatch.setenv("LENET_RESULTS_DIR", str(tmp_path))
    monkeypatch.setenv("LENET_BUDGET", "full")
    monkeypatch.delenv("LENET_REPLACE_RECORDS", raising=False)
    args = dict(chapter="MNIST", dataset="MNIST", model="modern LeNet-5", params=10,
                epochs=4, top1=99.0, top5=None, train_seconds=20.0,
                device=torch.device("cpu"))  # fmt: skip
    first = record_result(**args, epoch_seconds=[9.0, 4.0, 6.0, 5.0])
    second = record_result(**args, seed=1, epoch_seconds=[3.0])
    assert first.name == "04--mnist--modern-lenet-5--cpu.json"
    assert second.name == "04--mnist--modern-lenet-5-seed-1--cpu.json"
    saved = json.loads(first.read_text())
    # the first epoch (warm-up) apart, then the median of the rest: 5, not the mean 6
    assert (saved["first_epoch_s"], saved["median_epoch_s"]) == (9.0, 5.0)
    assert saved["seed"] == 0 and saved["model"] == "modern LeNet-5"
    one = json.loads(second.read_text())
    assert (one["seed"], one["first_epoch_s"], one["median_epoch_s"]) == (1, 3.0, 3.0)
