"""Settings: the data root, the budget, paths, the device and the hardware line."""

import sys

import pytest
import torch

# `setup` is called as config.setup: a module-level function named `setup` in a test
# module is run as a nose-style module fixture by pytest 8.0, the oldest we support.
from lenet_utils import config
from lenet_utils.config import (
    budget,
    checkpoint_dir,
    data_root,
    describe_path,
    get_device,
    hardware_line,
    progress_bars,
    results_dir,
    versions_line,
)


def test_data_root_and_budget(monkeypatch, tmp_path):
    monkeypatch.setenv("LENET_DATA_ROOT", str(tmp_path))
    assert data_root() == tmp_path.resolve()
    assert data_root(tmp_path / "x") == (tmp_path / "x").resolve()
    monkeypatch.setenv("LENET_BUDGET", "smoke")
    assert budget() == "smoke"
    monkeypatch.setenv("LENET_BUDGET", "huge")
    with pytest.raises(ValueError, match="LENET_BUDGET must be one of"):
        budget()


def test_data_root_that_is_a_file_is_refused(monkeypatch, tmp_path):
    a_file = tmp_path / "data.zip"
    a_file.write_bytes(b"PK")
    monkeypatch.setenv("LENET_DATA_ROOT", str(a_file))
    with pytest.raises(
        NotADirectoryError, match="LENET_DATA_ROOT is .*data.zip.*a file"
    ):
        data_root()


def test_paths_come_from_their_variables(monkeypatch, tmp_path):
    monkeypatch.setenv("LENET_RESULTS_DIR", str(tmp_path / "r"))
    monkeypatch.setenv("LENET_CHECKPOINT_DIR", str(tmp_path / "c"))
    assert results_dir() == tmp_path / "r"
    assert checkpoint_dir() == tmp_path / "c" and (tmp_path / "c").is_dir()
    monkeypatch.delenv("LENET_RESULTS_DIR")
    assert results_dir() == config.REPO / "results"  # the checkout's own folder


def test_progress_bars_switch(monkeypatch):
    monkeypatch.delenv("LENET_PROGRESS", raising=False)
    assert progress_bars()
    monkeypatch.setenv("LENET_PROGRESS", "0")
    assert not progress_bars()
    monkeypatch.setenv("LENET_PROGRESS", "maybe")
    with pytest.raises(ValueError, match="LENET_PROGRESS must be 1 or 0"):
        progress_bars()


def test_paths_are_described_without_the_machines_absolute_path(monkeypatch, tmp_path):
    monkeypatch.setenv("LENET_DATA_ROOT", str(tmp_path / "data"))
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert describe_path(tmp_path / "data" / "MNIST" / "raw") == "<data root>/MNIST/raw"
    assert describe_path(config.REPO / "results" / "x.json") == "results/x.json"
    assert describe_path(tmp_path / "home" / ".cache" / "c") == "~/.cache/c"
    assert describe_path("/somewhere/else/entirely") == ".../else/entirely"


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")
def test_asking_for_cuda_without_a_gpu_fails_at_once():
    with pytest.raises(
        RuntimeError, match="CUDA was asked for, but torch sees no CUDA GPU"
    ):
        get_device("cuda")
    with pytest.raises(RuntimeError, match="CUDA"):
        config.setup(prefer="cuda")


def test_asking_for_mps_where_there_is_none_is_refused(monkeypatch):
    monkeypatch.setattr(config, "_mps_available", lambda: False)
    with pytest.raises(RuntimeError, match="MPS .* not available here"):
        get_device("mps")


def test_unknown_device_names_are_refused():
    with pytest.raises(ValueError, match="unknown device 'gpu'"):
        get_device("gpu")
    assert get_device("cpu") == torch.device("cpu")


def test_hardware_and_versions_lines(monkeypatch, capsys):
    monkeypatch.setenv("LENET_BUDGET", "full")
    line = hardware_line(get_device("cpu"))
    assert line.startswith("Hardware: CPU") and line.endswith("budget: full")
    versions = versions_line()
    python = ".".join(map(str, sys.version_info[:3]))
    assert versions.startswith(f"Versions: torch {torch.__version__}, torchvision ")
    assert versions.endswith(f"Python {python}")
    config.setup(prefer="cpu")
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith("Hardware: ") and out[1].startswith("Versions: ")
