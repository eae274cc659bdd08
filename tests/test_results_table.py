"""The results page's table (book/_ext/results_table.py): records read in chapter order,
one row per run with its seeds as mean ± std, epoch times as medians."""

import json
import sys
from pathlib import Path

import pytest

from test_records import RUN

from lenet_utils.records import record_result

pytest.importorskip(
    "sphinx", reason="the book's extensions need Sphinx: pip install -e '.[dev]'"
)
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "book" / "_ext"))
from results_table import (  # noqa: E402
    COLUMNS,
    EXERCISE_COLUMNS,
    _cell,
    _value,
    goal_rows,
    group_seeds,
    read_records,
    seed_notes,
    seed_row,
)


@pytest.fixture
def results(tmp_path, monkeypatch):
    monkeypatch.setenv("LENET_RESULTS_DIR", str(tmp_path))
    monkeypatch.setenv("LENET_BUDGET", "full")
    return tmp_path


def test_records_are_read_in_chapter_order(results):
    for chapter in ("Downscaled ImageNet", "MNIST", "The 1998 LeNet-5, faithfully"):
        record_result(**{**RUN, "chapter": chapter})
    assert [r["chapter"] for r in read_records(results)] == [
        "MNIST",
        "The 1998 LeNet-5, faithfully",
        "Downscaled ImageNet",
    ]


def test_a_variant_says_so_on_the_page(results):
    from results_table import _value

    assert _value("model", {"model": "modern LeNet-5"}) == "modern LeNet-5"
    variant = {"model": "modern LeNet-5", "differs": {"epochs": 1, "per_class": 20}}
    assert _value("model", variant) == (
        "modern LeNet-5 (variant: epochs 1, per_class 20)"
    )


def rows(folder: Path, columns=COLUMNS) -> list[dict[str, str]]:
    """The page's rows as {column title: cell text}, one per group of seeds."""
    return [
        {title: _cell(key, _value(key, seed_row(g))) for key, title in columns}
        for g in group_seeds(read_records(folder))
    ]


def text(cell: str) -> str:
    """The cell as a reader sees it: the page's no-break spaces as spaces."""
    return cell.replace("\u00a0", " ")


def test_three_seeds_are_one_row_with_mean_and_sample_std(results):
    # top-1 99.3, 99.4, 99.5: mean 99.4, sample variance (0.01 + 0 + 0.01) / 2, std 0.1.
    # top-5 49.0, 50.0, 51.5: mean 50.1667; squares 1.3611 + 0.0278 + 1.7778 = 3.1667,
    # / 2 = 1.5833, std 1.2583. Medians of epochs 2-4: 5.0, 5.4, 5.2 (mean 5.2); firsts
    # 8.0, 7.5, 7.9 (mean 7.8).
    epochs = ([8.0, 5.0, 5.2, 4.9], [7.5, 5.4, 5.3, 5.5], [7.9, 5.1, 5.3, 5.2])
    for seed, top1, top5, times in zip(
        (0, 1, 2), (99.3, 99.4, 99.5), (49.0, 50.0, 51.5), epochs
    ):
        run = {**RUN, "top1": top1, "top5": top5}
        record_result(**run, seed=seed, epoch_seconds=times)
    before = {p.name: p.read_text() for p in results.glob("*.json")}
    assert len(before) == 3 and len(read_records(results)) == 3  # each seed kept

    (row,) = rows(results)
    assert text(row["top-1 %"]) == "99.40 ± 0.10 (3 seeds)"
    assert text(row["top-5 %"]) == "50.17 ± 1.26"
    assert text(row["train time"]) == "5.2 s/epoch (first 7.8 s)"
    assert row["model"] == RUN["model"] and row["met"] == "NO"

    (intro, items) = seed_notes(group_seeds(read_records(results)))
    listed = text(items.astext())
    assert "seed 1: top-1 99.40%, top-5 50.00%, 5.4 s/epoch (first 7.5 s)" in listed
    assert "seed 0:" in listed and "seed 2: top-1 99.50%" in listed
    assert before == {p.name: p.read_text() for p in results.glob("*.json")}


def test_a_lone_seed_0_record_shows_as_before(results):
    record_result(**RUN)  # 99.123 -> 99.12, 12.34 s -> 12.3
    (row,) = rows(results)
    assert row["top-1 %"] == "99.12" and row["top-5 %"] == "–"
    assert text(row["train time"]) == "12.3 s"
    assert seed_notes(group_seeds(read_records(results))) == []

    record_result(**{**RUN, "dataset": "KMNIST"}, epoch_seconds=[3.0, 2.25, 2.75])
    timed = rows(results)[0]
    assert timed["dataset"] == "KMNIST" and text(timed["train time"]) == (
        "2.5 s/epoch (first 3.0 s)"
    )


def test_a_variant_is_not_merged_with_the_recipes_run(results):
    for seed, top1 in ((0, 99.0), (1, 99.2)):
        record_result(**{**RUN, "top1": top1}, seed=seed)
        record_result(**{**RUN, "top1": top1 - 1}, seed=seed, differs={"epochs": 1})
    recipe, variant = sorted(rows(results), key=lambda r: r["model"])
    assert recipe["model"] == RUN["model"]
    assert variant["model"] == f"{RUN['model']} (variant: epochs 1)"
    # 99.0 and 99.2: mean 99.1, std sqrt(0.02 / 1) = 0.1414; the variant 1 lower.
    assert text(recipe["top-1 %"]) == "99.10 ± 0.14 (2 seeds)"
    assert text(variant["top-1 %"]) == "98.10 ± 0.14 (2 seeds)"


def test_an_exercises_seeds_are_one_row_apart_from_other_exercises(results):
    exercise = {**RUN, "kind": "exercise", "model": "modern LeNet-5, 10 per class"}
    for seed, train, top1 in ((0, 100.0, 70.0), (1, 99.0, 72.0), (2, 98.0, 77.0)):
        extra = {"exercise": "ex-mnist-small", "train_top1": train}
        record_result(**{**exercise, "top1": top1, "extra": extra}, seed=seed)
    # Another exercise's run of the same setting (its own file; the writer names files by
    # setting alone): one row of its own.
    seed_1 = json.loads(next(results.glob("*seed-1*.json")).read_text())
    other = {**seed_1, "exercise": "ex-mnist-other", "top1": 71.0, "train_top1": 97.0}
    (results / "other-exercise.json").write_text(json.dumps(other))
    grouped, other = rows(results, EXERCISE_COLUMNS)
    assert (grouped["exercise"], other["exercise"]) == (
        "ex-mnist-small",
        "ex-mnist-other",
    )
    # train 100, 99, 98: mean 99, std sqrt(2 / 2) = 1. Test 70, 72, 77: mean 73;
    # squares 9 + 1 + 16 = 26, / 2 = 13, std 3.6056.
    assert text(grouped["train top-1 %"]) == "99.00 ± 1.00"
    assert text(grouped["top-1 %"]) == "73.00 ± 3.61 (3 seeds)"
    assert other["top-1 %"] == "71.00"


def test_the_goals_table_is_the_mean_of_the_seeds_and_says_by_how_much_it_missed(
    results,
):
    mnist = {**RUN, "model": "modern LeNet-5"}
    for seed, top1 in enumerate((99.6, 99.5, 99.1)):  # mean 99.4: short of 99.5 by 0.1
        record_result(**{**mnist, "top1": top1}, seed=seed)
    tiny = {
        **RUN,
        "chapter": "Downscaled ImageNet",
        "model": "modern LeNet-5 + batch norm",
    }
    record_result(**{**tiny, "top1": 25.5, "top5": 50.25})
    rows = {row[0]: row for row in goal_rows(read_records(results))}
    assert rows["MNIST"][3].startswith("99.40 ±")
    assert rows["MNIST"][4:6] == ["NO", "top-1 short by 0.10 points"]
    assert rows["Downscaled ImageNet"][4:6] == ["yes", "–"]
    assert rows["CIFAR-10"][3] == "not recorded"
    assert {len(row) for row in rows.values()} == {7}


def test_an_exercise_run_scored_on_validation_says_so(results):
    record = {**RUN, "split": "validation (5,000 training digits)"}
    assert _value("split", record) == "validation"
    assert _value("split", RUN) == "test"
