"""Writing files whole or not at all (:func:`atomic_write`: records, checkpoints, the
cache, logs), and one clear line when the disk says no."""

from __future__ import annotations

import contextlib
import errno
import os
import tempfile
import time
from pathlib import Path
from typing import IO, Callable

from .config import describe_path

__all__ = ["WriteError", "atomic_write", "check_writable"]

#: Temporary files older than this are left by a killed writer, not by one still writing.
STALE_SECONDS = 60.0


class WriteError(OSError):
    """A file could not be written; the message says where, why and what to do."""


def _explain(path: Path, err: BaseException) -> str:
    """One line for a failed write: the folder, the reason, the fix."""
    code, where = getattr(err, "errno", None), describe_path(path.parent)
    if code == errno.ENOSPC or "unexpected pos" in str(err):
        # torch.save on a full disk says "unexpected pos 14400 vs 14352"
        return (
            f"no space left on {where}: free some space, or write {path.name} elsewhere"
        )
    if code in (errno.EACCES, errno.EPERM, errno.EROFS):
        return f"{where} is not writable: choose a folder you can write to"
    return f"could not write {describe_path(path)}: {err}"


def check_writable(path: str | os.PathLike) -> Path:
    """Fail now, before any work, if the file ``path`` could not be written later: its
    folder must exist or be creatable and be writable, and it must not be a folder."""
    path = Path(path)
    if str(path) in ("", "."):
        raise WriteError("an empty path was given: name the file to write")
    if path.is_dir():
        raise WriteError(
            f"{describe_path(path)} is a folder: give a file name inside it"
        )
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except (FileExistsError, NotADirectoryError):
        raise WriteError(
            f"{describe_path(path.parent)} is a file, not a folder: choose another place"
        ) from None
    except OSError as err:
        raise WriteError(_explain(path, err)) from None
    if not os.access(path.parent, os.W_OK):
        raise WriteError(_explain(path, PermissionError(errno.EACCES, "not writable")))
    return path


def atomic_write(path: str | os.PathLike, write: Callable[[IO[bytes]], None]) -> Path:
    """Write ``path`` through ``write(file)`` into a temporary file renamed into place: a
    crash or an error leaves the old file (or none), never half of a new one."""
    path = check_writable(path)
    prefix, now = f".{path.name}.", time.time()
    for old in path.parent.glob(f"{prefix}*.tmp"):  # left by a killed writer
        with contextlib.suppress(OSError):  # another writer's file, or gone already
            if now - old.stat().st_mtime > STALE_SECONDS:
                old.unlink()
    try:
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=prefix, suffix=".tmp")
    except OSError as err:
        raise WriteError(_explain(path, err)) from None
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
        os.chmod(tmp, 0o644)  # mkstemp makes it private; records and caches are shared
        os.replace(tmp, path)
    except BaseException as err:
        Path(tmp).unlink(missing_ok=True)
        if isinstance(err, OSError) or "unexpected pos" in str(err):
            raise WriteError(_explain(path, err)) from err
        raise
    return path
