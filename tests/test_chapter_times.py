"""Chapter times (book/_ext/chapter_times.py): every chapter states its time in one form, a
training chapter's minutes are those of its records, and the instructors' table has a row per
chapter."""

import sys
from pathlib import Path

import pytest

from lenet_utils.records import CHAPTERS

pytest.importorskip(
    "sphinx", reason="the book's extensions need Sphinx: pip install -e '.[dev]'"
)
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "book" / "_ext"))
from chapter_times import (  # noqa: E402
    HARDWARE,
    HEADER,
    chapter_name,
    chapter_notebooks,
    cpu_column,
    parse_time,
    rounded_minutes,
    rows,
    table,
    training_seconds,
)
from results_table import read_records  # noqa: E402

NOTEBOOKS = chapter_notebooks(ROOT)
RECORDS = read_records(ROOT / "results")


def test_every_chapter_has_a_notebook():
    assert [chapter_name(nb) for nb in NOTEBOOKS] == list(CHAPTERS)
    assert set(HARDWARE) == set(CHAPTERS)


@pytest.mark.parametrize("notebook", NOTEBOOKS, ids=lambda p: p.stem)
def test_the_time_line_states_reading_and_exercise_minutes(notebook):
    reading, exercises, _ = parse_time(notebook)  # ValueError says what is wrong
    assert 0 < reading <= 120 and 0 < exercises <= 120


@pytest.mark.parametrize("notebook", NOTEBOOKS, ids=lambda p: p.stem)
def test_a_training_chapter_states_the_minutes_of_its_records(notebook):
    _, _, stated = parse_time(notebook)
    seconds = training_seconds(RECORDS, chapter_name(notebook))
    if seconds is None:
        assert stated is None, (
            f"{notebook.name} states {stated} minutes of training, but its chapter "
            "records no main run"
        )
        return
    assert stated == rounded_minutes(seconds), (
        f"{notebook.name}'s Time line says {stated} minutes of training on a 2-core CPU; "
        f"its records add up to {seconds:.0f} s, so 'about {rounded_minutes(seconds)} "
        "minutes of training on a 2-core CPU'"
    )


def test_the_directive_renders_a_row_per_chapter():
    body, _ = rows(ROOT)
    tbody = next(table(body).findall(lambda n: n.tagname == "tbody"))
    assert len(tbody.children) == len(body) == len(CHAPTERS)
    for number, row in enumerate(body, 1):
        assert row[0].startswith(f"{number}. ") and len(row) == len(HEADER), row
        assert all(row), row
    assert body[3][0] == "4. Training on MNIST"
    assert body[3][4] == cpu_column(training_seconds(RECORDS, "MNIST"))


def test_only_the_main_runs_on_a_cpu_count():
    run = dict(
        kind="train",
        chapter="MNIST",
        params=1,
        epochs=2,
        train_seconds=100.0,
        device="CPU AMD EPYC (2 threads)",
        commit="a",
    )
    records = [
        run,
        {**run, "train_seconds": 50.0},
        {**run, "kind": "exercise", "train_seconds": 1000.0},
        {**run, "differs": {"epochs": 1}, "train_seconds": 1000.0},
        {**run, "device": "NVIDIA H100 80GB HBM3", "train_seconds": 1000.0},
        {**run, "model": "the same model, flip TTA"},  # the same training, twice
        {**run, "chapter": "CIFAR-10", "train_seconds": 1000.0},
    ]
    assert training_seconds(records, "MNIST") == 150.0
    assert training_seconds(records, "Beyond one GPU") is None


def test_a_benchmark_counts_every_rung():
    rungs = [{"epoch_s": 6.0, "epochs": 10}, {"epoch_s": 3.0, "epochs": 10}]
    bench = dict(
        kind="bench",
        chapter="Fast training on the GPU",
        train_seconds=30.0,  # the best rung's only
        device="CPU",
        rungs=rungs,
    )
    assert training_seconds([bench], "Fast training on the GPU") == 90.0
    # the sweep's records are the notebook's runs too: counted, each its own training
    sweep = {**bench, "sweep": True, "train_seconds": 60.0, "rungs": rungs[:1]}
    assert training_seconds([bench, sweep], "Fast training on the GPU") == 90.0 + 60.0


def test_minutes_round_half_up_and_under_a_minute_says_so():
    assert [rounded_minutes(s) for s in (29.9, 30.0, 89.9, 90.0, 654.9)] == [
        0,
        1,
        1,
        2,
        11,
    ]
    assert cpu_column(20.0) == "under a minute"
    assert cpu_column(189.0) == "about 3 min"


def test_a_missing_or_loose_time_line_is_named(tmp_path):
    import json

    notebook = tmp_path / "04_mnist.ipynb"
    cell = {"cell_type": "markdown", "metadata": {}, "source": ["# Training\n"]}
    notebook.write_text(json.dumps({"cells": [cell]}))
    with pytest.raises(ValueError, match="04_mnist.ipynb.*no \\*\\*Time:\\*\\* line"):
        parse_time(notebook)
    cell["source"] = ["# T\n", "\n", "**Time:** about 40\n", "minutes, plus 45.\n"]
    notebook.write_text(json.dumps({"cells": [cell]}))
    with pytest.raises(ValueError, match="about 40 minutes, plus 45"):
        parse_time(notebook)
    cell["source"] = [
        "# T\n",
        "\n",
        "**Time:** about 40 minutes to read, plus 45 for the exercises. Two runs: about\n",
        "3 minutes of training on a 2-core CPU.\n",
        "```",
    ]
    notebook.write_text(json.dumps({"cells": [cell]}))
    assert parse_time(notebook) == (40, 45, 3)
