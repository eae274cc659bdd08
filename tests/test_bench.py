"""The benchmark ladder on a tiny generated MNIST: every rung runs and the record has COURSE.md's fields."""

import json
import struct

import numpy as np
import pytest
import torch

from lenet_utils import bench


def write_idx(path, array: np.ndarray) -> None:
    """An IDX file as MNIST ships it (magic: 0x0000 0x08 ndim, then big-endian dims)."""
    header = struct.pack(">HBB", 0, 8, array.ndim) + struct.pack(
        f">{array.ndim}I", *array.shape
    )
    path.write_bytes(header + array.astype(np.uint8).tobytes())


@pytest.fixture
def tiny_mnist(tmp_path, monkeypatch):
    """50 learnable digits per class: each class a bright block at its own place, on noise."""
    raw = tmp_path / "data" / "MNIST" / "raw"
    raw.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for split, n in (("train", 500), ("t10k", 100)):
        labels = np.arange(n) % 10
        images = rng.integers(0, 30, (n, 28, 28))
        for i, c in enumerate(labels):
            row, col = (
                7 * (c // 3),
                9 * (c % 3),
            )  # a 4 x 3 grid of non-overlapping 6 x 8 blocks
            images[i, row : row + 6, col : col + 8] = 255
        write_idx(raw / f"{split}-images-idx3-ubyte", images)
        write_idx(raw / f"{split}-labels-idx1-ubyte", labels)
    monkeypatch.setenv("LENET_DATA_ROOT", str(tmp_path / "data"))
    monkeypatch.setenv("LENET_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("LENET_RESULTS_DIR", str(tmp_path / "results"))
    return tmp_path


def test_every_uncompiled_rung_runs_and_learns(tiny_mnist):
    rungs = [
        r for r in bench.RUNGS if r != "compiled"
    ]  # compiling takes ~30 s on a CPU: the notebook covers it
    results = bench.run_ladder(
        "cpu", epochs=8, target=50.0, rungs=rungs, log=lambda s: None
    )
    assert [r.rung for r in results] == rungs
    for r in results:
        assert (
            r.images_per_s > 0
            and r.epoch_s > 0
            and r.compile_s >= 0
            and r.peak_mem_mb is None
        )
        assert 0 <= r.top1 <= 100 and r.epochs == 8
    assert [r.batch_size for r in results] == [64, 64, 64, 512, 512]
    assert {r.precision for r in results} == {"fp32"}  # bf16 autocast only on CUDA
    assert (
        results[0].top1 >= 50 and results[0].time_to_target_s is not None
    )  # the baseline learns the toy task


def test_record_has_the_course_fields(tiny_mnist):
    results = bench.run_ladder(
        "cpu", epochs=1, rungs=["baseline", "tensor data"], log=lambda s: None
    )
    record = bench.write_record(results, torch.device("cpu"), 99.0, {"epochs": 1})
    saved = json.loads(open(record["path"]).read())
    assert (
        saved["kind"] == "bench"
        and saved["device"].startswith("CPU")
        and saved["torch"] == torch.__version__
    )
    for key in ("commit", "date", "speedup", "best_rung", "rungs"):
        assert key in saved
    for rung in saved["rungs"]:
        assert {
            "images_per_s",
            "epoch_s",
            "time_to_99_s",
            "compile_s",
            "peak_mem_mb",
            "top1",
            "precision",
        } <= set(rung)
    best = max(saved["rungs"], key=lambda r: r["images_per_s"])
    assert saved["speedup"] == pytest.approx(
        best["images_per_s"] / saved["rungs"][0]["images_per_s"], rel=1e-2
    )


def test_unknown_rung_is_refused(tiny_mnist):
    with pytest.raises(ValueError, match="unknown rung 'turbo'"):
        bench.run_ladder("cpu", epochs=1, rungs=["turbo"], log=lambda s: None)


def test_command_line(tiny_mnist, capsys):
    record = bench.main(
        [
            "--device",
            "cpu",
            "--epochs",
            "1",
            "--rungs",
            "baseline,large batch",
            "--no-record",
        ]
    )
    out = capsys.readouterr().out
    assert "images/s" in out and "baseline" in out and "large batch" in out
    assert [r["rung"] for r in record["rungs"]] == ["baseline", "large batch"]
    assert not (tiny_mnist / "results").exists()
