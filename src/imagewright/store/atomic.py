"""Files that appear whole or not at all: a temp file in the target's directory, then rename.

Temp names carry the writer's pid, so leftovers of a killed export can be told from files
another export is still writing. A write that fails for want of space (or on a read-only
filesystem) names the file or directory being written, which the OS error alone does not.
"""

from __future__ import annotations

import contextlib
import errno
import os
from collections.abc import Iterator
from pathlib import Path

from ..exception import ExecutionError

TYPE_CHECKING = False  # typing.TYPE_CHECKING, without importing typing (_fasttyping.py)
if TYPE_CHECKING:
    from typing import BinaryIO

__all__ = [
    "CorruptBlobError",
    "PendingFile",
    "atomic_file",
    "file_digest",
    "place_file",
    "sweep_dead_temps",
    "write_atomic",
]

_TMP_PREFIX = ".tmp-"
_WRITE_ERRORS = (errno.ENOSPC, errno.EDQUOT, errno.EROFS)
# copy_file_range cannot serve this pair of files: copy through userspace instead
_NO_COPY_RANGE = (errno.EXDEV, errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP, errno.EBADF)


class CorruptBlobError(ExecutionError):
    """A stored blob whose bytes no longer have the digest it is named by."""

    def __init__(self, path: Path, digest: str):
        super().__init__(f"the stored blob {path} does not match its digest {digest}")
        self.path = path
        self.digest = digest


@contextlib.contextmanager
def naming(path: Path) -> Iterator[None]:
    """Give an out-of-space or read-only error raised while writing `path` that path's name."""
    try:
        yield
    except OSError as exc:
        if exc.errno in _WRITE_ERRORS and exc.filename is None:
            raise OSError(exc.errno, exc.strerror, str(path)) from None
        raise


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
def atomic_file(directory: Path, name: str | None = None) -> Iterator[PendingFile]:
    """Write a file in `directory`; on success it is synced and renamed to the name set.

    `name`, when known up front, is the name errors give (else the directory's).
    """
    tmp = _temp_path(directory)
    try:
        with naming(directory / name if name else directory), open(tmp, "wb") as f:
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
    with atomic_file(dest.parent, dest.name) as out:
        out.file.write(data)
        out.name = dest.name


def place_file(source: Path, dest: Path, digest: str | None) -> None:
    """Put a copy of the store's blob `source` at `dest`, checked against `digest` (None: a
    blob made moments ago, digested as it was written, which needs no second reading).

    Never a hard link: editing the output in place must not change the store's blob. The copy
    is made with copy_file_range, which shares extents where the filesystem can (btrfs, XFS),
    and the copy itself is what is hashed. Raises CorruptBlobError on a mismatch.
    """
    tmp = _temp_path(dest.parent)
    try:
        with naming(dest), open(source, "rb") as src, open(tmp, "wb") as out:
            try:
                while os.copy_file_range(src.fileno(), out.fileno(), 1 << 30):
                    pass
            except OSError as exc:
                if exc.errno not in _NO_COPY_RANGE:
                    raise
                src.seek(0)
                out.seek(0)
                out.truncate()
                import shutil

                shutil.copyfileobj(src, out, 1 << 20)
        if digest is not None and file_digest(tmp) != digest:
            raise CorruptBlobError(source, digest)
        os.replace(tmp, dest)
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)


def file_digest(path: Path) -> str:
    """The digest ("sha256:<hex>") of the file at `path`."""
    import hashlib  # (here: a cached build writes with this module, but hashes no blob)

    sha = hashlib.sha256()
    with open(path, "rb") as f:
        while piece := f.read(1 << 20):
            sha.update(piece)
    return f"sha256:{sha.hexdigest()}"


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
