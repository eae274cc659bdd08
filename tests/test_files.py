"""Writing files: whole or not at all, one clear line when the disk says no."""

import errno
import os
import time

import pytest

from lenet_utils import files
from lenet_utils.files import WriteError, atomic_write, check_writable


def test_atomic_write_leaves_nothing_half_written(tmp_path):
    target = tmp_path / "r.json"
    target.write_text("old")

    def fails_halfway(f):
        f.write(b"new, half")
        raise ValueError("the writer broke")

    with pytest.raises(ValueError, match="the writer broke"):
        atomic_write(target, fails_halfway)
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["r.json"]
    atomic_write(target, lambda f: f.write(b"new"))
    assert target.read_text() == "new"


@pytest.mark.parametrize(
    "error",
    [
        OSError(errno.ENOSPC, "No space left on device"),
        RuntimeError(
            "[enforce fail at inline_container.cc:626] unexpected pos 14400 vs 14352"
        ),
    ],
)
def test_a_full_disk_is_one_line_that_names_the_folder(tmp_path, error):
    target = tmp_path / "ck.pt"
    target.write_text("old")

    def full(f):
        f.write(b"part")
        raise error

    with pytest.raises(WriteError, match=r"^no space left on .*: free some space"):
        atomic_write(target, full)
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["ck.pt"]


def test_stale_temporary_files_of_a_killed_writer_are_removed(tmp_path):
    target = tmp_path / "ck.pt"
    stale = tmp_path / ".ck.pt.abc123.tmp"
    fresh = tmp_path / ".ck.pt.def456.tmp"  # another writer, still writing
    other = tmp_path / ".other.pt.abc123.tmp"  # another file's
    for p in (stale, fresh, other):
        p.write_bytes(b"x" * 10)
    old = time.time() - 2 * files.STALE_SECONDS
    os.utime(stale, (old, old))
    os.utime(other, (old, old))
    atomic_write(target, lambda f: f.write(b"new"))
    assert not stale.exists() and fresh.exists() and other.exists()


def test_check_writable_says_what_is_wrong(tmp_path):
    assert check_writable(tmp_path / "new" / "deeper" / "f.json").parent.is_dir()
    with pytest.raises(WriteError, match="is a folder: give a file name"):
        check_writable(tmp_path)
    (tmp_path / "plain").write_text("")
    with pytest.raises(WriteError, match="is a file, not a folder"):
        check_writable(tmp_path / "plain" / "f.json")
    with pytest.raises(WriteError, match="an empty path"):
        check_writable("")


@pytest.mark.skipif(os.geteuid() == 0, reason="root may write to read-only folders")
def test_a_read_only_folder_is_refused_before_any_work(tmp_path):
    folder = tmp_path / "ro"
    folder.mkdir()
    folder.chmod(0o500)
    try:
        with pytest.raises(WriteError, match="is not writable"):
            check_writable(folder / "f.json")
    finally:
        folder.chmod(0o700)


def test_a_read_only_folder_is_refused_even_for_root(tmp_path, monkeypatch):
    folder = tmp_path / "ro"
    folder.mkdir()
    monkeypatch.setattr(files.os, "access", lambda path, mode: False)
    with pytest.raises(WriteError, match="is not writable: choose a folder"):
        check_writable(folder / "f.json")
