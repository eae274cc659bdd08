"""The notebooks' stored outputs are what the book shows: they must read well.

No progress-bar fragments, no absolute paths of the recording machine, no warnings, no
errors, code lines of at most 88 characters, and a bound on the number of outputs.
"""

import json
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))
import record_chapter  # noqa: E402

NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_stored_outputs_read_well(path):
    assert record_chapter.problems(json.loads(path.read_text()), path.name) == []


def notebook(source: str, *outputs: dict) -> dict:
    return {
        "cells": [{"cell_type": "code", "source": source, "outputs": list(outputs)}]
    }


def stream(text: str, name: str = "stdout") -> dict:
    return {"output_type": "stream", "name": name, "text": text}


@pytest.mark.parametrize(
    "nb,expected",
    [
        (
            notebook("x", stream("epochs:  40%|####      | 2/5 [00:03<00:04]\r")),
            "progress",
        ),
        (notebook("x", stream(" 12%|#2 | 7/60 [00:01<00:09, 5.3it/s]")), "progress"),
        (notebook("x", stream("data root: /work/shared/data\n")), "absolute path"),
        (notebook("x", stream("saved to /home/ann/x.json\n")), "absolute path"),
        (
            notebook(
                "x",
                {
                    "output_type": "execute_result",
                    "data": {"text/plain": "PosixPath('results/a.json')"},
                },
            ),  # fmt: skip
            "absolute path",
        ),
        (notebook("x", stream("UserWarning: something\n", "stderr")), "warning"),
        (notebook("y = 1" + " " * 90), "characters"),
        (notebook("x", {"output_type": "error", "ename": "ValueError"}), "error"),
        (
            notebook(
                "x",
                {
                    "output_type": "display_data",
                    "data": {record_chapter.WIDGET: {}, "text/plain": "HBox()"},
                },
            ),  # fmt: skip
            "widget",
        ),
    ],
)
def test_the_check_catches_what_readers_trip_over(nb, expected):
    found = record_chapter.problems(nb, "t.ipynb")
    assert found and expected in found[0]


def test_the_check_passes_what_is_fine():
    fine = notebook(
        "print('ok')",
        stream("epoch  1/15: train loss 0.2345 | <data root>/MNIST/raw | ~/.cache\n"),
        stream("https://github.com/lenet5-course/lenet5-course/blob/main/x.py\n"),
    )
    assert record_chapter.problems(fine, "t.ipynb") == []
    many = notebook("x", *[stream("a")] * (record_chapter.MAX_OUTPUTS + 1))
    assert "stored outputs" in record_chapter.problems(many, "t.ipynb")[0]


def test_recording_stores_a_clean_run_and_leaves_a_failed_one_untouched(tmp_path):
    import nbformat

    good, bad = tmp_path / "good.ipynb", tmp_path / "bad.ipynb"
    for path, code in ((good, "print(6 * 7)"), (bad, "print(1)\n1 / 0")):
        nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(code)])
        nbformat.write(nb, path)
    before = bad.read_bytes()
    assert record_chapter.record(bad, "smoke", 60) == [
        "bad.ipynb: a cell failed: ZeroDivisionError: division by zero"
    ]
    assert bad.read_bytes() == before  # the failed run wrote nothing
    assert record_chapter.record(good, "smoke", 60) == []
    (cell,) = nbformat.read(good, as_version=4).cells
    assert cell.outputs[0]["text"] == "42\n"


def test_a_refused_recording_undoes_the_records_it_wrote(tmp_path, monkeypatch):
    import nbformat

    results = tmp_path / "results"
    results.mkdir()
    (results / "published.json").write_text("the published record")
    (results / "models").mkdir()
    (results / "models" / "published.pt").write_bytes(b"the published weights")
    monkeypatch.setenv("LENET_RESULTS_DIR", str(results))
    code = (
        "import os, pathlib\n"
        "folder = pathlib.Path(os.environ['LENET_RESULTS_DIR'])\n"
        "(folder / 'published.json').write_text('a short run')\n"
        "(folder / 'new.json').write_text('a new record')\n"
        "(folder / 'models' / 'published.pt').write_bytes(b'other weights')\n"
        "raise RuntimeError('a failure after the records were written')"
    )
    path = tmp_path / "chapter.ipynb"
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(code)])
    nbformat.write(nb, path)
    found = record_chapter.record(path, "smoke", 60)
    assert found and found[-1] == "chapter.ipynb: its 3 records in results/ were undone"
    assert (results / "published.json").read_text() == "the published record"
    assert (
        results / "models" / "published.pt"
    ).read_bytes() == b"the published weights"
    assert not (results / "new.json").exists()


def test_a_cells_consecutive_prints_are_stored_as_one_block():
    err = stream("careful\n", "stderr")
    nb = notebook("x", stream("epoch 1\n"), stream("epoch 2\n"), err, stream("done\n"))
    record_chapter.coalesce_streams(nb)
    texts = [(o["name"], o["text"]) for o in nb["cells"][0]["outputs"]]
    assert texts == [
        ("stdout", "epoch 1\nepoch 2\n"),
        ("stderr", "careful\n"),
        ("stdout", "done\n"),
    ]


def test_recording_refuses_a_busy_machine(monkeypatch, capsys, tmp_path):
    monkeypatch.setattr(record_chapter.os, "cpu_count", lambda: 2)
    monkeypatch.setattr(record_chapter.os, "getloadavg", lambda: (1.9, 1.0, 1.0))
    path = tmp_path / "never.ipynb"  # never opened: the check comes first
    assert record_chapter.main([str(path)]) == 1
    err = capsys.readouterr().err
    assert err.startswith("not recorded: the machine is busy (load average 1.90")
    assert "--busy-ok" in err
    monkeypatch.setattr(record_chapter.os, "getloadavg", lambda: (0.2, 1.0, 1.0))
    assert record_chapter.busy() is None


def test_a_line_too_wide_is_refused_before_the_run(tmp_path):
    import nbformat

    ran = tmp_path / "ran"
    code = f"open({str(ran)!r}, 'w').close()  # " + "x" * 100
    path = tmp_path / "chapter.ipynb"
    nbformat.write(
        nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(code)]), path
    )
    found = record_chapter.record(path, "smoke", 60)
    assert found and "characters" in found[0]
    assert not ran.exists()  # refused before minutes of training, not after
