"""The benchmark ladder on a tiny generated MNIST: every rung runs, its figures are
consistent, and the record has the course's fields."""

import contextlib
import json
import sys
from dataclasses import asdict
from pathlib import Path

import numpy as np
import pytest
import torch
from fakedata import write_mnist

from lenet_utils import bench
from lenet_utils.bench import RungResult


@pytest.fixture
def tiny_mnist(tmp_path, monkeypatch):
    """50 learnable digits per class: each class a bright block at its own place."""
    rng = np.random.default_rng(0)
    images, labels = {}, {}
    for split, n in (("train", 500), ("t10k", 100)):
        labels[split] = (np.arange(n) % 10).astype(np.uint8)
        images[split] = rng.integers(0, 30, (n, 28, 28)).astype(np.uint8)
        for i, c in enumerate(labels[split]):
            row, col = 7 * (c // 3), 9 * (c % 3)  # a 4 x 3 grid of 6 x 8 blocks
            images[split][i, row : row + 6, col : col + 8] = 255
    write_mnist(tmp_path / "data", images, labels)
    monkeypatch.setenv("LENET_DATA_ROOT", str(tmp_path / "data"))
    monkeypatch.setenv("LENET_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("LENET_RESULTS_DIR", str(tmp_path / "results"))
    return tmp_path


def test_every_uncompiled_rung_runs_and_learns(tiny_mnist):
    rungs = [r for r in bench.RUNGS if r != "compiled"]  # compiling: ~30 s on a CPU
    results = bench.run_ladder(
        "cpu", epochs=8, target=50.0, rungs=rungs, log=lambda s: None
    )
    assert [r.rung for r in results] == rungs
    for r in results:
        # images/s and s/epoch describe the same epochs: their product is the epoch's size
        assert r.images_per_s * r.epoch_s == pytest.approx(500)
        assert r.compile_s > 0 and r.peak_mem_mb is None and r.epochs == 8
        assert r.top1 >= 50 and r.time_to_target_s is not None  # the toy task is learnt
        assert 0 < r.time_to_target_s <= r.epoch_s * r.epochs + 1e-9
    assert [r.batch_size for r in results] == [64, 64, 64, 512, 512]
    assert {r.precision for r in results} == {"fp32"}  # bf16 autocast only on CUDA


def rung(name: str, images_per_s: float, epochs: int = 1) -> RungResult:
    return RungResult(
        name, 64, "fp32", images_per_s, 1.0, None, 0.1, None, 98.0, epochs
    )


def test_speedup_is_the_best_rung_over_the_baseline():
    results = [
        rung("baseline", 100.0),
        rung("tensor data", 450.0),
        rung("large batch", 300),
    ]
    assert bench.speedup(results) == 4.5
    assert bench.speedup(results[1:]) is None  # no baseline, no ratio


def test_record_has_the_course_fields(tiny_mnist, monkeypatch):
    monkeypatch.setenv("LENET_BUDGET", "full")
    results = [rung(name, 100.0 + 150 * (name == "tensor data"), epochs=10)
               for name in bench.RUNGS]  # fmt: skip
    path = bench.record_ladder(results, torch.device("cpu"), per_class=None)
    saved = json.loads(path.read_text())
    assert path.name == "08--mnist--modern-lenet-5-batch-norm--cpu.json"
    assert "differs" not in saved
    assert saved["kind"] == "bench" and saved["device"].startswith("CPU")
    assert saved["speedup"] == 2.5 and saved["best_rung"] == "tensor data"
    assert saved["params"] == 62_158 and saved["top1"] == 98.0
    for r in saved["rungs"]:
        assert {"images_per_s", "epoch_s", "time_to_99_s", "compile_s"} <= set(r)
        assert {"peak_mem_mb", "top1", "precision"} <= set(r)


def test_a_shorter_ladder_names_what_differs_and_keeps_the_chapters_record(
    tiny_mnist, monkeypatch
):
    monkeypatch.setenv("LENET_BUDGET", "full")
    monkeypatch.delenv("LENET_REPLACE_RECORDS", raising=False)
    chapter = tiny_mnist / "results" / "08--mnist--modern-lenet-5-batch-norm--cpu.json"
    chapter.parent.mkdir()
    chapter.write_text("{}")
    results = [rung("baseline", 100.0), rung("large batch", 300.0)]
    path = bench.record_ladder(results, torch.device("cpu"), per_class=20)
    assert chapter.read_text() == "{}" and path != chapter
    assert json.loads(path.read_text())["differs"] == {
        "epochs": 1, "per_class": 20, "rungs": "baseline,large batch"
    }  # fmt: skip


def test_unknown_rung_is_refused(tiny_mnist):
    with pytest.raises(ValueError, match="unknown rung 'turbo'"):
        bench.run_ladder("cpu", epochs=1, rungs=["turbo"], log=lambda s: None)


def test_command_line(tiny_mnist, capsys):
    results = bench.main(["--device", "cpu", "--epochs", "1", "--rungs",
                          "baseline,large batch", "--no-record"])  # fmt: skip
    out = capsys.readouterr().out
    assert "images/s" in out and "baseline" in out and "large batch" in out
    assert [r.rung for r in results] == ["baseline", "large batch"]
    assert not (tiny_mnist / "results").exists()


def test_the_learning_rate_rule_is_one_function_the_ladder_uses(
    tiny_mnist, monkeypatch
):
    assert bench.lr_for_batch(64) == 0.1
    assert bench.lr_for_batch(512) == pytest.approx(0.1 * 8**0.5)
    assert bench.lr_for_batch(4096) == pytest.approx(0.8)
    asked = []
    rule = bench.lr_for_batch
    monkeypatch.setattr(bench, "lr_for_batch", lambda b: asked.append(b) or rule(b))
    bench.run_ladder("cpu", epochs=1, rungs=["data on device", "large batch"],
                     log=lambda s: None)  # fmt: skip
    assert asked == [64, 512]


class CountingScaler:
    """A gradient scaler that counts its calls and scales nothing (the CPU has no fp16
    gradients to scale)."""

    def __init__(self) -> None:
        self.calls = {"scale": 0, "step": 0, "update": 0}

    def scale(self, loss):
        self.calls["scale"] += 1
        return loss

    def step(self, optimizer) -> None:
        self.calls["step"] += 1
        optimizer.step()

    def update(self) -> None:
        self.calls["update"] += 1


def test_each_rung_runs_and_is_labelled_in_the_rules_precision(tiny_mnist, monkeypatch):
    """With the rule faked to answer fp16 (a T4), the mixed-precision rungs autocast in
    fp16 and step through a gradient scaler, and say fp16; the others say fp32."""
    asked, autocasts, scalers = [], [], {}

    def rule(device, amp=True):
        asked.append(device.type)
        return "fp16" if amp else "fp32"

    def autocast(device, chosen):
        autocasts.append(chosen)
        return contextlib.nullcontext()

    def scaler(chosen):
        scalers[chosen] = CountingScaler()
        return scalers[chosen]

    monkeypatch.setattr(bench, "precision", rule)
    monkeypatch.setattr(bench, "autocast", autocast)
    monkeypatch.setattr(bench, "grad_scaler", scaler)
    rungs = ["large batch", "channels_last + amp"]
    results = bench.run_ladder("cpu", epochs=1, rungs=rungs, log=lambda s: None)
    assert [r.precision for r in results] == ["fp32", "fp16"]
    assert set(asked) == {"cpu"} and set(autocasts) == {"fp32", "fp16"}
    steps = 1 + 1  # the warm-up step, then one epoch of 500 images in one batch
    assert scalers["fp16"].calls == {"scale": steps, "step": steps, "update": steps}


def test_peak_memory_is_read_on_cuda_and_none_elsewhere(monkeypatch):
    calls = []
    monkeypatch.setattr(torch.cuda, "reset_peak_memory_stats", calls.append)
    monkeypatch.setattr(torch.cuda, "max_memory_allocated", lambda d: 3 * 2**20)
    cuda = torch.device("cuda")
    assert bench._peak_mb(cuda, reset=True) == 3.0 and calls == [cuda]
    assert bench._peak_mb(cuda) == 3.0 and calls == [cuda]  # read, not reset
    assert bench._peak_mb(torch.device("cpu"), reset=True) is None and len(calls) == 1


def test_each_rung_records_the_peak_memory_measured_around_it(tiny_mnist, monkeypatch):
    events = []

    def peak(device, reset=False):
        events.append("reset" if reset else "read")
        return None if reset else 12.5

    monkeypatch.setattr(bench, "_peak_mb", peak)
    results = bench.run_ladder("cpu", epochs=1, rungs=["large batch"] * 2,
                               log=lambda s: None)  # fmt: skip
    assert [r.peak_mem_mb for r in results] == [12.5, 12.5]
    assert events == ["reset", "read", "reset", "read"]


def test_the_books_bench_table_leaves_out_a_column_no_rung_measured():
    pytest.importorskip("sphinx", reason="the book's extensions need Sphinx")
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "book" / "_ext"))
    from docutils import nodes
    from results_table import BENCH_COLUMNS, bench_tables

    def titles(record: dict) -> list[str]:
        (_, table) = bench_tables([record])
        (head,) = table.findall(nodes.thead)
        return [entry.astext() for entry in head.findall(nodes.entry)]

    cpu = [asdict(rung("baseline", 100.0)), asdict(rung("compiled", 300.0))]
    record = {"dataset": "MNIST", "model": "m", "device": "d", "torch": "t",
              "commit": "c", "date": "today", "rungs": cpu}  # fmt: skip
    assert "peak MB" not in titles(record)
    assert len(titles(record)) == len(BENCH_COLUMNS) - 1
    gpu = [*cpu[:1], {**cpu[1], "peak_mem_mb": 180.0}]  # one rung measured it
    assert titles({**record, "rungs": gpu}) == [t for _, t in BENCH_COLUMNS]


def test_the_ladder_table_puts_the_speedup_first_and_says_what_it_did_not_measure():
    results = [
        RungResult("baseline", 64, "fp32", 1000.0, 60.0, None, 0.1, None, 98.5, 10),
        RungResult("large batch", 512, "fp32", 4500.0, 13.3, 26.6, 0.2, None, 99.1, 10),
    ]
    table = bench.ladder_table(results)
    assert list(table.columns)[:2] == ["speedup", "images/s"]
    assert "peak MB" not in table.columns  # measured on CUDA only: no column of dashes
    assert table.loc["large batch", "speedup"] == "4.5"
    assert table.loc["large batch", "images/s"] == "4,500"
    assert table.loc["baseline", "s to 99%"] == "not reached"
    assert table.loc["large batch", "s to 99%"] == "26.6"
    results[1].peak_mem_mb = 42.0  # a CUDA run: the column appears
    record_rungs = [bench._as_record(r) for r in results]  # a record's rungs read too
    assert bench.ladder_table(record_rungs).loc["large batch", "peak MB"] == "42"


def test_the_sweep_trains_each_batch_size_by_the_rule_and_records_each_once(
    tiny_mnist, monkeypatch
):
    monkeypatch.setenv("LENET_BUDGET", "full")
    monkeypatch.delenv("LENET_REPLACE_RECORDS", raising=False)
    results = bench.sweep("cpu", [64, 256], epochs=1, log=lambda s: None)
    assert [(r.rung, r.batch_size) for r in results] == [
        ("large batch", 64), ("large batch", 256)
    ]  # fmt: skip
    paths = bench.record_sweep(results, torch.device("cpu"))
    saved = json.loads(paths[1].read_text())
    assert saved["kind"] == "bench" and saved["sweep"] is True
    assert saved["lr"] == round(bench.lr_for_batch(256), 4)
    rung = saved["rungs"][0]
    assert rung["batch_size"] == 256 and "time_to_99_s" in rung
    assert saved["differs"] == {"epochs": 1}  # a short sweep is marked as one
    paths[1].write_text("{}")  # a published record: kept by a second run...
    assert bench.record_sweep(results[1:], torch.device("cpu")) == [None]
    assert paths[1].read_text() == "{}"
    bench.record_sweep(results[1:], torch.device("cpu"), replace=True)
    assert json.loads(paths[1].read_text())["lr"] == saved["lr"]  # ...unless replaced


def test_batch_norm_trains_in_training_mode_after_each_evaluation(
    tiny_mnist, monkeypatch
):
    """evaluate() puts the model in eval mode; every training step after it must run in
    training mode again, or batch norm would train on frozen statistics."""
    modes = []

    class Spy(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.net = bench.LeNet5("modern", input_size=28, batchnorm=True)

        def forward(self, x):
            modes.append((len(x), self.training))
            return self.net(x)

    monkeypatch.setattr(bench, "fast_model", Spy)
    bench.run_ladder("cpu", epochs=3, rungs=["data on device"], log=lambda s: None)
    evaluations = [training for n, training in modes if n == 100]  # the 100 test digits
    steps = [training for n, training in modes if n != 100]
    assert evaluations == [False] * 3 and len(steps) == 1 + 3 * 8  # warm-up + 3 epochs
    assert all(steps)


def test_the_sprint_runs_each_seed_on_its_own_schedule_and_records_the_mean(
    tiny_mnist, monkeypatch
):
    monkeypatch.setenv("LENET_BUDGET", "full")
    asked = []
    real = bench.run_ladder
    monkeypatch.setattr(
        bench, "run_ladder", lambda *a, **kw: asked.append(kw) or real(*a, **kw)
    )
    results = bench.sprint("cpu", seeds=(0, 1), log=lambda s: None)
    assert [kw["seed"] for kw in asked] == [0, 1]
    assert all(kw["lr"] == 0.8 and kw["label_smoothing"] == 0.1 for kw in asked)
    assert [r.epochs for r in results] == [2, 2]
    results[0].time_to_target_s, results[1].time_to_target_s = 3.0, None
    saved = json.loads(bench.record_sprint(results, torch.device("cpu")).read_text())
    assert saved["model"] == "modern LeNet-5 + batch norm, sprint to 99%"
    assert (saved["seeds"], saved["reached"], saved["time_to_99_s_mean"]) == (2, 1, 3.0)
    assert saved["epochs"] == 2 and saved["lr"] == 0.8 and len(saved["rungs"]) == 2


def test_the_compiled_rung_compiles_the_last_batchs_shape_during_its_warm_up(
    tiny_mnist, monkeypatch
):
    """torch.compile compiles again for a new input shape, such as an epoch's smaller last
    batch: that must happen in the warm-up, timed apart, not in the first epoch's time."""
    sizes = []

    def fake_compile(model, mode=None):
        def run(x):
            sizes.append(len(x))
            return model(x)

        return run

    monkeypatch.setattr(bench.torch, "compile", fake_compile)
    bench.run_ladder("cpu", epochs=1, rungs=["compiled"], large_batch=64,
                     log=lambda s: None)  # fmt: skip
    warm_up = sizes[
        :6
    ]  # 3 calls (CUDA graphs record on the third), each with both shapes
    assert warm_up == [64, 500 % 64] * 3
    assert sizes[6:] == [64] * 7 + [
        500 % 64
    ]  # then one epoch: 7 full batches, the rest


def test_the_sweep_and_sprint_run_where_the_device_is_fastest():
    assert bench.sweep_rung(torch.device("cpu")) == "large batch"
    assert bench.sweep_rung(torch.device("cuda")) == "channels_last + amp"


def test_the_tensor_rungs_never_read_torchvisions_mnist(tiny_mnist, monkeypatch):
    """Only the baseline reads MNIST through torchvision (which may write unpacked copies
    of the files): the sweep and the sprint run tensor rungs, and must not touch it."""

    def refuse(**kw):
        raise AssertionError("torchvision's MNIST was read")

    monkeypatch.setattr(bench, "torchvision_mnist", refuse)
    bench.sweep("cpu", [64], epochs=1, log=lambda s: None)
    with pytest.raises(AssertionError, match="torchvision's MNIST was read"):
        bench.run_ladder("cpu", epochs=1, rungs=["baseline"], log=lambda s: None)
