"""An overlay upper dir as a deterministic OCI layer tar, with overlay deletions as whiteouts.

The walk follows BuildKit's overlay differ (`util/overlay/overlay_linux.go`):

- a char device 0:0 (an overlay whiteout) becomes an empty `.wh.<name>`, but only when the
  path exists in the lower layers: deleting a file the step itself created leaves a whiteout
  that must not reach the image;
- a dir marked `trusted.overlay.opaque=y` gets a `.wh..wh..opq` entry, but only when the dir
  exists in a lower layer: overlayfs also marks dirs created where nothing was before;
- `trusted.overlay.*` xattrs are overlay bookkeeping and are dropped; other xattrs (such as
  `security.capability`) are kept as PAX `SCHILY.xattr.*` records;
- regular files linked to each other within the layer become tar hardlinks. Whiteouts never do:
  the kernel shares one whiteout inode among all of them.

Determinism: each directory is written before its children, with the opaque marker first, then
whiteouts, then its other entries, each group sorted by name; PAX headers with numeric owners and
empty user and group names; integer mtimes, clamped to SOURCE_DATE_EPOCH when one is given (as
BuildKit does); no atime or ctime records. The same upper dir always gives the same bytes.
"""

from __future__ import annotations

import os
import stat
import tarfile
from collections.abc import Iterator
from pathlib import Path
from typing import Protocol

from ..exception import ExecutionError
from .lowers import OVERLAY_XATTR_PREFIX, LowerLayers, is_opaque, is_whiteout

__all__ = ["write_layer"]

WHITEOUT_PREFIX = ".wh."
OPAQUE_MARKER = ".wh..wh..opq"
_CHUNK = 1 << 20
_BLOCK = tarfile.BLOCKSIZE


class Sink(Protocol):
    """Where a layer tar goes: a file, or a compression.BlobWriter."""

    def write(self, data: bytes, /) -> object: ...


def write_layer(
    upper: Path, lowers: LowerLayers, out: Sink, *, clamp_mtime: int | None = None
) -> None:
    """Write the layer tar of `upper` to `out` (anything with a `write` method)."""
    writer = _LayerWriter(out, lowers, clamp_mtime)
    writer.walk(str(upper), "", hidden=False)
    out.write(b"\0" * (2 * _BLOCK))  # end-of-archive marker


class _LayerWriter:
    def __init__(self, out: Sink, lowers: LowerLayers, clamp_mtime: int | None):
        self.out = out
        self.lowers = lowers
        self.clamp = clamp_mtime
        self.links: dict[tuple[int, int], str] = {}  # (dev, ino) -> first name written

    def walk(self, directory: str, prefix: str, hidden: bool) -> None:
        """Write the children of `directory`. `hidden`: no lower content shows through it."""
        whiteouts: list[str] = []
        others: list[tuple[str, os.stat_result]] = []
        for name, st in _sorted_entries(directory):
            if is_whiteout(st):
                whiteouts.append(name)
            else:
                others.append((name, st))
        for name in whiteouts:
            if not hidden and self.lowers.kind(prefix + name) is not None:
                self._marker(prefix + WHITEOUT_PREFIX + name)
        for name, st in others:
            path = os.path.join(directory, name)
            rel = prefix + name
            info = self._info(rel, path, st)
            if info is not None:
                self._write(info, path)
            if stat.S_ISDIR(st.st_mode):
                opaque = is_opaque(path)
                if opaque and not hidden and self.lowers.kind(rel) == "dir":
                    self._marker(rel + "/" + OPAQUE_MARKER)
                self.walk(path, rel + "/", hidden or opaque)

    def _info(self, rel: str, path: str, st: os.stat_result) -> tarfile.TarInfo | None:
        info = tarfile.TarInfo(rel)
        info.mode = stat.S_IMODE(st.st_mode)
        info.uid, info.gid = st.st_uid, st.st_gid
        mtime = int(st.st_mtime)
        info.mtime = mtime if self.clamp is None else min(mtime, self.clamp)
        mode = st.st_mode
        if stat.S_ISREG(mode):
            first = self.links.get((st.st_dev, st.st_ino)) if st.st_nlink > 1 else None
            if first is not None:
                info.type, info.linkname = tarfile.LNKTYPE, first
            else:
                info.size = st.st_size
                if st.st_nlink > 1:
                    self.links[(st.st_dev, st.st_ino)] = rel
        elif stat.S_ISDIR(mode):
            info.type = tarfile.DIRTYPE
        elif stat.S_ISLNK(mode):
            info.type, info.linkname = tarfile.SYMTYPE, os.readlink(path)
        elif stat.S_ISFIFO(mode):
            info.type = tarfile.FIFOTYPE
        elif stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
            info.type = tarfile.CHRTYPE if stat.S_ISCHR(mode) else tarfile.BLKTYPE
            info.devmajor, info.devminor = os.major(st.st_rdev), os.minor(st.st_rdev)
        else:
            return None  # a socket: tar cannot hold one, and a listener recreates it anyway
        info.pax_headers = dict(_xattrs(path))
        return info

    def _marker(self, rel: str) -> None:
        """An empty whiteout or opaque marker: fixed metadata, as containerd writes them."""
        info = tarfile.TarInfo(rel)
        info.mode = 0
        self._write(info, None)

    def _write(self, info: tarfile.TarInfo, path: str | None) -> None:
        self.out.write(info.tobuf(tarfile.PAX_FORMAT, "utf-8", "surrogateescape"))
        if info.type != tarfile.REGTYPE or not info.size or path is None:
            return
        remaining = info.size
        with open(path, "rb") as f:
            while remaining:
                chunk = f.read(min(_CHUNK, remaining))
                if not chunk:
                    raise ExecutionError(f"{path} shrank while it was being exported")
                self.out.write(chunk)
                remaining -= len(chunk)
        if info.size % _BLOCK:
            self.out.write(b"\0" * (_BLOCK - info.size % _BLOCK))


def _sorted_entries(directory: str) -> list[tuple[str, os.stat_result]]:
    with os.scandir(directory) as it:
        entries = [(e.name, e.stat(follow_symlinks=False)) for e in it]
    # sort on bytes so names that are not UTF-8 order the same everywhere
    entries.sort(key=lambda item: os.fsencode(item[0]))
    return entries


def _xattrs(path: str) -> Iterator[tuple[str, str]]:
    try:
        names = os.listxattr(path, follow_symlinks=False)
    except OSError:
        return
    for name in sorted(names):
        if name.startswith(OVERLAY_XATTR_PREFIX):
            continue
        value = os.getxattr(path, name, follow_symlinks=False)
        # surrogateescape round-trips binary values (security.capability) through tarfile,
        # which then writes the record as raw bytes under hdrcharset=BINARY
        yield f"SCHILY.xattr.{name}", value.decode("utf-8", "surrogateescape")
