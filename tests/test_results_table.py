"""The results page's table (book/_ext/results_table.py): records read in chapter order."""

import sys
from pathlib import Path

import pytest

from test_records import RUN

from lenet_utils.records import record_result

pytest.importorskip(
    "sphinx", reason="the book's extensions need Sphinx: pip install -e '.[dev]'"
)
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "book" / "_ext"))
from results_table import read_records  # noqa: E402


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
