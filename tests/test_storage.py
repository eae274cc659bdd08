"""Dataset storage: files read alike from folders and zips, decoding, batches of pickled
rows, subsets per class, and errors that name the file and the fix."""

import pickle

import numpy as np
import pytest
import torch
from fakedata import encode, write_zip

from lenet_utils import storage
from lenet_utils.storage import (
    CorruptDatasetError,
    DatasetMissingError,
    Files,
    decode_all,
    first_indices,
    iter_batches,
    keep_first,
    missing,
    stamp,
)


def image(value: int, size: int = 4) -> bytes:
    return encode(np.full((size, size, 3), value, np.uint8), "PNG")


def test_a_folder_and_its_zip_name_the_same_files(tmp_path):
    members = {"set/cat/a.png": image(1), "set/dog/b.png": image(2), "set/.DS": b""}
    write_zip(tmp_path / "set.zip", members)
    for name, data in members.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_bytes(data)
    with Files([tmp_path / "set"]) as folder, Files([tmp_path / "set.zip"]) as zipped:
        assert (
            sorted(folder.names())
            == sorted(zipped.names())
            == [
                "set/cat/a.png",
                "set/dog/b.png",
            ]
        )  # hidden files left out
        assert folder.read("set/dog/b.png") == zipped.read("set/dog/b.png")
        with pytest.raises(CorruptDatasetError, match="set/cow.png is missing from it"):
            zipped.read("set/cow.png")


def test_a_broken_zip_names_the_file_and_the_fix(tmp_path):
    (tmp_path / "bad.zip").write_bytes(b"PK\x03\x04 not really")
    with pytest.raises(CorruptDatasetError, match=r"bad.zip is corrupt.*delete it"):
        Files([tmp_path / "bad.zip"])


def test_decoding_checks_sizes_and_shrinks_chunk_by_chunk(tmp_path):
    members = {f"d/{i}.png": image(10 * i) for i in range(3)}
    members["d/big.png"] = image(7, size=8)
    write_zip(tmp_path / "d.zip", members)
    with Files([tmp_path / "d.zip"]) as files:
        x = decode_all(files, ["d/0.png", "d/1.png", "d/2.png"])
        assert x.shape == (3, 3, 4, 4) and x[:, 0, 0, 0].tolist() == [0, 10, 20]
        halves = decode_all(files, ["d/2.png"], shrink=lambda b: b[..., ::2, ::2])
        assert halves.shape == (1, 3, 2, 2)
        with pytest.raises(ValueError, match="8x8 but earlier images are 4x4"):
            decode_all(files, ["d/0.png", "d/big.png"])
        assert decode_all(files, ["d/big.png"], size=4).shape == (1, 3, 4, 4)


def test_first_of_each_class_in_order():
    labels = [2, 0, 2, 1, 0, 2, 1]
    assert first_indices(labels, 1).tolist() == [0, 1, 3]
    assert first_indices(labels, np.array([0, 2, 1])).tolist() == [0, 3, 6]
    assert first_indices(labels, None).tolist() == list(range(7))
    entries = [("img_10", 0), ("img_2", 0), ("img_1", 1)]
    assert keep_first(entries, 1) == [("img_2", 0), ("img_1", 1)]  # natural order


def rows(path, n: int, labels: list[int]) -> None:
    data = np.arange(n * 12, dtype=np.uint8).reshape(n, 12)
    path.write_bytes(pickle.dumps({"data": data, "labels": labels}))


def test_pickled_batches_stop_once_every_class_is_full(tmp_path):
    rows(tmp_path / "b1", 4, [0, 0, 1, 0])
    rows(tmp_path / "b2", 4, [1, 1, 0, 1])
    paths = [tmp_path / "b1", tmp_path / "b2", tmp_path / "never-read"]
    got = list(iter_batches(paths, (3, 2, 2), 2, 0, 2))
    assert [y.tolist() for _, y in got] == [[0, 0, 1], [1]]
    assert got[0][0].shape == (3, 3, 2, 2) and got[0][0].dtype == torch.uint8
    rows(tmp_path / "b3", 2, [0, 5])
    with pytest.raises(CorruptDatasetError, match=r"not all in 0\.\.1"):
        list(iter_batches([tmp_path / "b3"], (3, 2, 2), 2, 0, None))


def test_missing_data_says_where_it_looked_and_what_to_do(tmp_path):
    err = missing("MNIST", tmp_path, ["a-ubyte", "b-ubyte"], "download it")
    text = str(err)
    assert isinstance(err, FileNotFoundError) and isinstance(err, DatasetMissingError)
    assert f"MNIST is not in {tmp_path}" in text and "a-ubyte, b-ubyte" in text
    assert "to fix: download it" in text and "LENET_DATA_ROOT" in text
    assert err._render_traceback_() == [f"\x1b[31mDatasetMissingError\x1b[0m: {err}"]


def test_a_changed_source_changes_its_stamp(tmp_path):
    (tmp_path / "f").write_bytes(b"one")
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "x").write_bytes(b"1")
    before = stamp(tmp_path / "f"), stamp(tmp_path / "d")
    (tmp_path / "f").write_bytes(b"three")
    (tmp_path / "d" / "y").write_bytes(b"2")
    assert stamp(tmp_path / "f") != before[0] and stamp(tmp_path / "d") != before[1]


def test_a_failed_download_leaves_nothing_and_says_how_to_get_it(tmp_path, monkeypatch):
    def offline(url, folder, name):
        (tmp_path / name).write_bytes(b"half")
        raise OSError("network unreachable")

    monkeypatch.setattr(storage, "download_url", offline)
    dest = tmp_path / "set.zip"
    with pytest.raises(DatasetMissingError, match="download it by hand and save it as"):
        storage.download_file("http://x/set.zip", dest, "0" * 32, "Set", ["set.zip"])
    assert list(tmp_path.iterdir()) == []
