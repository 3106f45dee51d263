"""Unpack an untrusted layer tar into an overlay upper dir, refusing anything that could escape.

Layer tars come from registries, so every entry is checked: no `..` components, no absolute
names, no device nodes or fifos. Paths are never resolved through the filesystem: each parent
is opened with O_NOFOLLOW | O_DIRECTORY from the root's descriptor, so a symlink planted by an
earlier entry can never redirect a later write outside the root. OCI whiteouts become what
overlayfs reads: `.wh.<name>` a 0:0 character device, `.wh..wh..opq` the
`trusted.overlay.opaque=y` xattr. `trusted.overlay.*` xattrs in the tar itself are dropped (they
would steer overlayfs). A whiteout of `.`, `..` or of nothing (`.wh.`) is refused: it would
name the directory itself or its parent. The caller unpacks into a scratch area and commits
only on success.

Every way a layer can be bad ends in RegistryError naming the layer: a refused entry, a tar that
does not parse, and a stream the decompressor rejects (truncated or corrupt gzip, zstd, xz,
bzip2). Errors of the filesystem written to (no space left, say) stay OSErrors, with the entry's
path when the OS did not name one.
"""

from __future__ import annotations

import contextlib
import errno
import lzma
import os
import shutil
import stat
import tarfile
import zlib
from collections.abc import Iterator
from pathlib import Path
from types import TracebackType
from typing import Protocol

from ..exception import RegistryError

__all__ = ["LayerStream", "unpack_layer"]

_WHITEOUT = ".wh."
_OPAQUE = ".wh..wh..opq"
_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


class _Refused(Exception):
    pass


class _BadStream(Exception):
    """The decompressor rejected the layer's bytes."""


class LayerStream(Protocol):
    """A layer's tar, as read from a file or through a decompressor (gzip.GzipFile,
    lzma.LZMAFile, bz2.BZ2File, a zstandard stream reader); a context manager, as all are."""

    def read(self, size: int = -1, /) -> bytes: ...

    def __enter__(self) -> LayerStream: ...

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
        /,
    ) -> object: ...


class _Checked:
    """The layer stream, with the errors of whatever decompresses it made into _BadStream."""

    def __init__(self, stream: LayerStream):
        self.stream = stream

    def read(self, size: int = -1) -> bytes:
        try:
            return self.stream.read(size)
        except (EOFError, zlib.error, lzma.LZMAError) as exc:
            raise _BadStream(str(exc) or type(exc).__name__) from None
        except OSError as exc:
            if exc.errno is not None:  # a real I/O error; gzip and bz2 data errors have none
                raise
            raise _BadStream(str(exc)) from None
        except Exception as exc:
            if type(exc).__module__.startswith(("zstandard", "igzip_lib")):  # ZstdError, IsalError
                raise _BadStream(str(exc)) from None
            raise


_WRITE_ERRORS = (errno.ENOSPC, errno.EDQUOT, errno.EROFS)


def unpack_layer(stream: LayerStream, root: Path, what: str) -> int:
    """Apply the tar read from `stream` to the empty directory `root`; returns entries written.

    `what` names the layer in errors. Raises RegistryError for an entry it refuses and for
    data that is not a whole, valid (compressed) tar.
    """
    root_fd = os.open(root, _DIR_FLAGS)
    count = 0
    try:
        with tarfile.open(fileobj=_Checked(stream), mode="r|") as tar:  # type: ignore[call-overload]  # "r|" only reads; typeshed's _Fileobj wants write/seek/tell too
            for member in tar:
                try:
                    _apply(tar, member, root_fd)
                except _Refused as exc:
                    raise RegistryError(f"{what}: refused entry {member.name!r}: {exc}") from None
                except (ValueError, OverflowError) as exc:  # a NUL in a name, a huge uid or time
                    raise RegistryError(f"{what}: refused entry {member.name!r}: {exc}") from None
                except OSError as exc:
                    if exc.errno in _WRITE_ERRORS and exc.filename is None:
                        path = str(root / member.name.lstrip("/"))
                        raise OSError(exc.errno, exc.strerror, path) from None
                    raise
                count += 1
    except tarfile.TarError as exc:
        raise RegistryError(f"{what}: not a valid layer tar ({exc})") from None
    except _BadStream as exc:
        raise RegistryError(f"{what}: the data is corrupt or cut short ({exc})") from None
    finally:
        os.close(root_fd)
    return count


def _parts(name: str) -> list[str]:
    if name.startswith("/"):
        raise _Refused("absolute path")
    parts = [p for p in name.split("/") if p not in ("", ".")]
    if ".." in parts:
        raise _Refused("'..' in the path")
    return parts


@contextlib.contextmanager
def _parent(root_fd: int, parts: list[str], create: bool = True) -> Iterator[int]:
    """An fd of the directory holding `parts[-1]`, walking real directories only."""
    fd = os.dup(root_fd)
    try:
        for part in parts[:-1]:
            if create:
                with contextlib.suppress(FileExistsError):
                    os.mkdir(part, 0o755, dir_fd=fd)
            try:
                child = os.open(part, _DIR_FLAGS, dir_fd=fd)
            except OSError as exc:  # ELOOP / ENOTDIR: a symlink or a file where a dir must be
                raise _Refused(
                    f"{part!r} on its path is not a directory ({exc.strerror})"
                ) from None
            os.close(fd)
            fd = child
        yield fd
    finally:
        os.close(fd)


def _remove(name: str, dir_fd: int, keep_dir: bool) -> None:
    """Remove what is at `name` so a new entry can take its place (a dir stays if `keep_dir`)."""
    try:
        st = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
    except FileNotFoundError:
        return
    if not stat.S_ISDIR(st.st_mode):
        os.unlink(name, dir_fd=dir_fd)
    elif not keep_dir:
        sub = os.open(name, _DIR_FLAGS, dir_fd=dir_fd)
        try:  # rmtree with dir_fd never follows symlinks
            shutil.rmtree(os.readlink(f"/proc/self/fd/{sub}"))
        finally:
            os.close(sub)


def _apply(tar: tarfile.TarFile, member: tarfile.TarInfo, root_fd: int) -> None:
    parts = _parts(member.name)
    if not parts:
        return  # the root itself
    if member.ischr() or member.isblk() or member.isfifo():
        raise _Refused("device nodes and fifos are not allowed in layers")
    if not (member.isfile() or member.isdir() or member.issym() or member.islnk()):
        raise _Refused(f"unsupported entry type {member.type!r}")
    name = parts[-1]
    with _parent(root_fd, parts) as dir_fd:
        if name == _OPAQUE:
            os.setxattr(dir_fd, "trusted.overlay.opaque", b"y")
            return
        if name.startswith(_WHITEOUT):
            target = name[len(_WHITEOUT) :]
            if target in ("", ".", ".."):  # the directory itself or its parent: never
                raise _Refused(f"a whiteout of {target!r}, which names no entry")
            if not member.isfile():
                raise _Refused("a malformed whiteout")
            _remove(target, dir_fd, keep_dir=False)
            os.mknod(target, stat.S_IFCHR | 0o600, os.makedev(0, 0), dir_fd=dir_fd)
            return
        _remove(name, dir_fd, keep_dir=member.isdir())
        if member.isdir():
            with contextlib.suppress(FileExistsError):
                os.mkdir(name, 0o700, dir_fd=dir_fd)
            fd = os.open(name, _DIR_FLAGS, dir_fd=dir_fd)
        elif member.issym():
            os.symlink(member.linkname, name, dir_fd=dir_fd)
            os.chown(name, member.uid, member.gid, dir_fd=dir_fd, follow_symlinks=False)
            _utime(name, dir_fd, member)
            return
        elif member.islnk():
            _hardlink(root_fd, member.linkname, name, dir_fd)
            return
        else:
            flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
            fd = os.open(name, flags, 0o600, dir_fd=dir_fd)
            source = tar.extractfile(member)
            assert source is not None
            with os.fdopen(os.dup(fd), "wb") as out:
                shutil.copyfileobj(source, out, 1 << 20)
        try:
            _attributes(fd, member)
        finally:
            os.close(fd)
        _utime(name, dir_fd, member)


def _hardlink(root_fd: int, linkname: str, name: str, dir_fd: int) -> None:
    source = _parts(linkname)
    if not source:
        raise _Refused("a hard link to the root")
    with _parent(root_fd, source, create=False) as src_fd:
        try:
            st = os.stat(source[-1], dir_fd=src_fd, follow_symlinks=False)
        except FileNotFoundError:
            raise _Refused(f"hard link to {linkname!r}, which this layer does not hold") from None
        if not stat.S_ISREG(st.st_mode):
            raise _Refused(f"hard link to {linkname!r}, which is not a regular file")
        os.link(source[-1], name, src_dir_fd=src_fd, dst_dir_fd=dir_fd, follow_symlinks=False)


def _attributes(fd: int, member: tarfile.TarInfo) -> None:
    os.fchown(fd, member.uid, member.gid)
    os.fchmod(fd, member.mode & 0o7777)  # after chown, which clears set-id bits
    for key, value in member.pax_headers.items():
        if not key.startswith("SCHILY.xattr."):
            continue
        attr = key.removeprefix("SCHILY.xattr.")
        if attr.startswith("trusted.overlay.") or attr.startswith("user.overlay."):
            continue
        raw = value.encode("utf-8", "surrogateescape")
        with contextlib.suppress(OSError):  # an xattr the filesystem does not take
            os.setxattr(fd, attr, raw)


def _utime(name: str, dir_fd: int, member: tarfile.TarInfo) -> None:
    mtime = int(member.mtime * 1e9)
    os.utime(name, ns=(mtime, mtime), dir_fd=dir_fd, follow_symlinks=False)
