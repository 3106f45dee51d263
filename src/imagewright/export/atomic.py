"""Files that appear whole or not at all: a temp file in the target's directory, then rename.

Temp names carry the writer's pid, so leftovers of a killed export can be told from files
another export is still writing.
"""

from __future__ import annotations

import contextlib
import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

__all__ = ["PendingFile", "atomic_file", "place_file", "sweep_dead_temps", "write_atomic"]

_TMP_PREFIX = ".tmp-"


def _temp_path(directory: Path) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    return directory / f"{_TMP_PREFIX}{os.getpid()}-{os.urandom(4).hex()}"


class PendingFile:
    """An open temp file and the name it will get; the name may be known only at the end
    (a blob is named by the digest of what was written)."""

    def __init__(self, file: BinaryIO):
        self.file = file
        self.name: str | None = None


@contextlib.contextmanager
def atomic_file(directory: Path) -> Iterator[PendingFile]:
    """Write a file in `directory`; on success it is synced and renamed to the name set."""
    tmp = _temp_path(directory)
    try:
        with open(tmp, "wb") as f:
            pending = PendingFile(f)
            yield pending
            if pending.name is None:
                raise RuntimeError("atomic_file: no name was set for the finished file")
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, directory / pending.name)
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)


def write_atomic(dest: Path, data: bytes) -> None:
    with atomic_file(dest.parent) as out:
        out.file.write(data)
        out.name = dest.name


def place_file(source: Path, dest: Path) -> None:
    """Put a copy of the immutable `source` at `dest`: a hard link when the filesystem allows."""
    tmp = _temp_path(dest.parent)
    try:
        try:
            os.link(source, tmp)
        except OSError:  # another filesystem, or links refused
            shutil.copyfile(source, tmp)
        os.replace(tmp, dest)
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)


def sweep_dead_temps(directory: Path) -> None:
    """Remove temp files whose writer is gone (killed mid-write)."""
    if not directory.is_dir():
        return
    for tmp in directory.glob(f"{_TMP_PREFIX}*"):
        pid = tmp.name.removeprefix(_TMP_PREFIX).split("-")[0]
        if pid.isdigit() and not _alive(int(pid)):
            with contextlib.suppress(FileNotFoundError):
                tmp.unlink()


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # it exists, under another user
        return True
    return True
