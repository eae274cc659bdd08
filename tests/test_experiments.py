"""Experiments a reviewer would accept (CONTRIBUTING.md, "Experiments"): every training
chapter chooses on a validation split it holds out, scores the test split once, after
training, and trains its main runs with three seeds, each recorded with its epoch times."""

from __future__ import annotations

import ast
import json
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
TRAINING = ("04_mnist", "05_lenet5_1998", "06_cifar10", "07_downscaled_imagenet")
#: Each chapter's main runs: (chapter, model) of records that need seeds 0, 1 and 2.
MAIN_RUNS = (
    ("MNIST", "modern LeNet-5"),
    ("The 1998 LeNet-5, faithfully", "LeNet-5 (1998)"),
    ("The 1998 LeNet-5, faithfully", "LeNet-5 (1998) + distortions"),
    ("CIFAR-10", "modern LeNet-5 + batch norm"),
    ("Downscaled ImageNet", "modern LeNet-5 + batch norm"),
)


def code(stem: str) -> ast.Module:
    cells = json.loads((ROOT / "notebooks" / f"{stem}.ipynb").read_text())["cells"]
    source = "\n".join("".join(c["source"]) for c in cells if c["cell_type"] == "code")
    magic = re.compile(r"^(\s*)[%!].*")  # IPython's %pip is not Python: a pass instead
    return ast.parse("\n".join(magic.sub(r"\1pass", x) for x in source.splitlines()))


def fit_calls(tree: ast.Module) -> list[ast.Call]:
    return [
        node
        for node in ast.walk(tree)
        if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "fit"
    ]


@pytest.mark.parametrize("stem", TRAINING)
def test_every_training_run_is_judged_on_a_held_out_validation_split(stem):
    tree = code(stem)
    calls = {
        getattr(n.func, "id", None) for n in ast.walk(tree) if isinstance(n, ast.Call)
    }
    assert "hold_out" in calls, f"{stem} holds out no validation split"
    fits = fit_calls(tree)
    assert fits, f"{stem} trains nothing with fit"
    for call in fits:
        split = {k.arg: k.value for k in call.keywords}.get("split")
        assert isinstance(split, ast.Constant) and split.value == "val", (
            f"{stem}, line {call.lineno}: fit must evaluate the validation split "
            '(split="val"); the test split is scored once, after training'
        )


def records() -> list[dict]:
    return [json.loads(p.read_text()) for p in (ROOT / "results").glob("*.json")]


@pytest.mark.parametrize("chapter, model", MAIN_RUNS)
def test_the_main_runs_have_three_seeds_chosen_on_validation_with_median_epochs(
    chapter, model
):
    runs = [
        r
        for r in records()
        if (r["chapter"], r["model"]) == (chapter, model)
        and r.get("kind", "train") == "train"
    ]
    assert sorted(r.get("seed", 0) for r in runs) == [0, 1, 2], (chapter, model)
    for r in runs:
        assert str(r.get("chosen_on", "")).startswith("validation"), r
        assert r.get("median_epoch_s") and r.get("first_epoch_s"), r
