"""scripts/gpu_runs.py, the one command for every GPU measurement, checked on the CPU:
every part runs under the smoke budget from the data folder it is given, records
nothing, and a part without its data says so and lets the others run."""

import os
import tarfile

import pytest


@pytest.fixture
def gpu_runs(load_script, monkeypatch, tmp_path):
    """The script as a module; records, if any, would land in ``tmp_path/results``."""
    module = load_script("gpu_runs")
    monkeypatch.setenv("LENET_RESULTS_DIR", str(tmp_path / "results"))
    monkeypatch.setenv("LENET_BUDGET", "smoke")
    # main() points LENET_DATA_ROOT at --data: the session's root comes back afterwards
    monkeypatch.setenv("LENET_DATA_ROOT", os.environ["LENET_DATA_ROOT"])
    return module


def part_lines(out: str, name: str) -> list[str]:
    return [line for line in out.splitlines() if line.startswith(f"== {name}: ")]


def test_the_plan_fits_eight_minutes_on_one_h100(gpu_runs):
    assert sum(p.estimate_s for p in gpu_runs.PARTS) <= 8 * 60
    names = [p.name for p in gpu_runs.PARTS]
    assert names == ["ladder", "sweep", "sprint", "mnist", "cifar10", "tiny-imagenet"]


def test_a_part_without_its_data_says_so_and_the_others_run(gpu_runs, tmp_path, capsys):
    empty = tmp_path / "no-data"
    empty.mkdir()
    assert gpu_runs.main(["--data", str(empty), "--device", "cpu"]) == 0
    out = capsys.readouterr().out
    for part in gpu_runs.PARTS:
        (line,) = part_lines(out, part.name)
        assert "skipped, data missing" in line and str(empty) in line
    assert "records written: none" in out


def test_only_runs_the_parts_named_and_refuses_unknown_ones(gpu_runs, capsys):
    data = os.environ["LENET_DATA_ROOT"]
    args = gpu_runs.parse(["--data", data, "--only", "sweep, ladder"])
    assert [p.name for p in args.parts] == ["ladder", "sweep"]  # in the plan's order
    with pytest.raises(SystemExit):
        gpu_runs.parse(["--data", data, "--only", "ladder,imagenet"])
    assert "unknown part(s) ['imagenet']" in capsys.readouterr().err


def test_the_full_budget_refuses_a_cpu(gpu_runs, monkeypatch):
    monkeypatch.setenv("LENET_BUDGET", "full")
    data = os.environ["LENET_DATA_ROOT"]
    with pytest.raises(SystemExit, match="records GPU runs"):
        gpu_runs.main(["--data", data, "--device", "cpu", "--only", "mnist"])


@pytest.mark.slow
def test_every_part_runs_under_smoke_from_the_folder_given(
    gpu_runs, tmp_path, monkeypatch, capsys
):
    """The test session's stand-ins (or real data), given with --data while
    LENET_DATA_ROOT points at an empty folder: every part must find its data there."""
    data = os.environ["LENET_DATA_ROOT"]
    monkeypatch.setenv("LENET_DATA_ROOT", str(tmp_path / "empty"))
    archive = tmp_path / "records.tar.gz"
    argv = ["--data", data, "--device", "cpu", "--archive", str(archive)]
    assert gpu_runs.main(argv) == 0
    out = capsys.readouterr().out
    assert f"data: {data}" in out and "data missing" not in out
    for part in gpu_runs.PARTS:
        assert part_lines(out, part.name)[-1].startswith(f"== {part.name}: ran in ")
    assert out.count("batch 4,096:") == 1  # the sweep's last batch size
    assert not list((tmp_path / "results").glob("*.json")) and not archive.exists()
    assert "records written: none" in out


def test_the_records_a_run_writes_are_packed_into_the_archive(
    gpu_runs, tmp_path, monkeypatch
):
    """Only the records this run wrote: not those that were there before."""
    results = tmp_path / "results"
    results.mkdir()
    (results / "04--older--cpu.json").write_text("{}")

    def part(ctx):
        (results / "08--new--cuda.json").write_text("{}")

    fake = gpu_runs.Part("ladder", "a fake part", 1, (), part)
    monkeypatch.setattr(gpu_runs, "PARTS", (fake,))
    archive = tmp_path / "records.tar.gz"
    data = os.environ["LENET_DATA_ROOT"]
    assert (
        gpu_runs.main(["--data", data, "--device", "cpu", "--archive", str(archive)])
        == 0
    )
    with tarfile.open(archive) as tar:
        assert tar.getnames() == ["08--new--cuda.json"]
