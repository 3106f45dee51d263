"""Local files copied straight into a step's upper dir, where nothing of the image is in the way.

A copy has to meet the image's own tree: a destination under one of the image's symlinks
resolves inside the image, and a --chown name means what the image's /etc/passwd says. The copy
helper (copyin.py) meets it from a sandbox chrooted into the merged overlay, at the price of a
mount, bwrap and a fresh interpreter: about 45 ms here, most of a rebuild after an edit.

Most copies meet nothing of the kind: each destination, and every directory above it, is either
missing from the image or a plain directory (a destination may also replace a file), and the
owner is root or numeric. For those the builder writes the entries itself into the step's upper
dir, still empty, as overlayfs would have left them there: a directory of the image that gets
a new entry is copied up first (made in the upper dir with its mode, owner, xattrs and times;
the kernel, too, keeps the times of the directory it copies into), and a missing one is made as
the helper makes it (755, the copy's owner). Of the image it only reads the layers' metadata
(lstat and xattrs, through real directories only, never following a link), and it runs and
opens nothing of it. Anything else (a symlink, a whiteout or a file in the way, a --chown
name, an upper dir already written by an earlier action) is the helper's, and is sent there
before anything is written.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Callable, Sequence

from .._copyrules import ROOT, resolve_owner
from .._digest import sha256
from ..oci.lowers import OVERLAY_XATTR_PREFIX, LowerLayers
from ..plan.files import FileEntry
from .copyin import CHANGED_DURING_BUILD
from .overlay import Overlay

__all__ = ["copy_direct"]

Owner = tuple[int, int]

_CHUNK = 1 << 20


def copy_direct(
    overlay: Overlay,
    entries: Sequence[FileEntry],
    on_line: Callable[[str], None],
    owner: str | None = None,
) -> int | None:
    """Create `entries` in the overlay's upper dir if nothing of the image is in their way; the
    status copy_into gives (0, 1 or CHANGED_DURING_BUILD), or None, with nothing written, when
    the copy helper must do it."""
    if owner and not all(part.isdigit() for part in owner.split(":")):
        return None  # a user or group name, looked up in the image by the helper
    upper = str(overlay.upper)
    if os.listdir(upper):
        return None
    lowers = LowerLayers([overlay.cwd / lower for lower in overlay.lowers])
    plan = _plan(entries, lowers)
    if plan is None:
        return None
    default = resolve_owner(owner) if owner else ROOT
    # Every path in the upper dir is walked from its fd, one real directory at a time: an entry
    # can never reach through a symlink (an earlier entry's, say) to anywhere else.
    root = os.open(upper, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW)
    try:
        for entry, copy_ups in plan:
            if not _create(root, entry, copy_ups, default):
                on_line(f"{entry.source} changed while it was being copied")
                return CHANGED_DURING_BUILD
    except OSError as exc:
        on_line(f"copy failed: {exc}")
        return 1
    finally:
        os.close(root)
    return 0


def _plan(
    entries: Sequence[FileEntry], lowers: LowerLayers
) -> list[tuple[FileEntry, dict[str, str]]] | None:
    """Each entry with the image's directories it needs copied up (relative path: the top
    layer's path of it); None if any entry meets something only the helper can handle."""
    known: dict[str, str | None] = {}  # relative path: its top layer's path, None if missing
    made: dict[str, str] = {}  # relative path: the kind an earlier entry makes there

    def directory(rel: str) -> bool:
        """Whether `rel` can be a directory here: missing from the image, or a plain one."""
        if made.get(rel, "dir") != "dir":
            return False
        if rel not in known:
            found = lowers.find(rel)
            if found is not None and found[0] != "dir":
                return False
            known[rel] = found[1] if found is not None else None
        return True

    plan = []
    for entry in entries:
        parts = entry.dest.strip("/").split("/")
        if any(part in ("", ".", "..") for part in parts):
            return None
        above = ["/".join(parts[:depth]) for depth in range(1, len(parts))]
        if not all(directory(rel) for rel in above):
            return None
        rel = "/".join(parts)
        found = lowers.find(rel)
        if made.get(rel, entry.kind) != entry.kind:
            return None  # two entries of different kinds at one path
        if found is not None:
            kind = found[0]
            if entry.kind == "dir" and kind == "dir":
                known[rel] = found[1]
            elif entry.kind == "dir" or kind != "other" or not _replaceable(found[1]):
                return None  # a directory in the way of a file, or the other way round
        made[rel] = entry.kind
        copy_ups = {p: top for p in (*above, rel) if (top := known.get(p)) is not None}
        plan.append((entry, copy_ups))
    return plan


def _replaceable(path: str) -> bool:
    """A file or symlink a copied file may replace, as the helper's unlink-then-create does."""
    mode = os.lstat(path).st_mode
    return stat.S_ISREG(mode) or stat.S_ISLNK(mode)


def _create(root: int, entry: FileEntry, copy_ups: dict[str, str], owner: Owner) -> bool:
    """Make one entry (and the directories above it); False if a file lost its digest."""
    parts = entry.dest.strip("/").split("/")
    parent = _parents(root, parts, copy_ups, owner)
    name, rel, mine = parts[-1], "/".join(parts), entry.owner or owner
    try:
        if entry.kind == "dir":
            if rel not in copy_ups and _lstat(parent, name) is None:
                os.close(_new_dir(parent, name, mine, entry.mode))
            return True
        if _lstat(parent, name) is not None:
            os.unlink(name, dir_fd=parent)  # (a file: an earlier entry's, or one of the image)
        if entry.kind == "symlink":
            os.symlink(entry.target, name, dir_fd=parent)
            os.chown(name, *mine, dir_fd=parent, follow_symlinks=False)
            return True
        return _copy_file(entry, parent, name, mine)
    finally:
        os.close(parent)


def _parents(root: int, parts: list[str], copy_ups: dict[str, str], owner: Owner) -> int:
    """An fd of the directory above `parts`, each one on the way made as needed: copied up from
    the image, or new (755, `owner`)."""
    fd = os.dup(root)
    try:
        for depth, name in enumerate(parts[:-1], 1):
            sub = "/".join(parts[:depth])
            if _lstat(fd, name) is not None:
                child = os.open(name, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW, dir_fd=fd)
            elif sub in copy_ups:
                child = _copy_up(copy_ups[sub], fd, name)
            else:
                child = _new_dir(fd, name, owner, 0o755)
            os.close(fd)
            fd = child
    except BaseException:
        os.close(fd)
        raise
    return fd


def _lstat(parent: int, name: str) -> os.stat_result | None:
    try:
        return os.stat(name, dir_fd=parent, follow_symlinks=False)
    except FileNotFoundError:
        return None


def _new_dir(parent: int, name: str, owner: Owner, mode: int) -> int:
    os.mkdir(name, 0o700, dir_fd=parent)
    fd = os.open(name, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW, dir_fd=parent)
    os.fchown(fd, *owner)
    os.fchmod(fd, mode)
    return fd


def _copy_up(lower: str, parent: int, name: str) -> int:
    """Make `name` as overlayfs copies a lower directory up: same mode, owner, xattrs (but its
    own bookkeeping) and times, with the times of the directory it is made in kept."""
    kept = os.fstat(parent)
    st = os.lstat(lower)
    fd = _new_dir(parent, name, (st.st_uid, st.st_gid), stat.S_IMODE(st.st_mode))
    for key in os.listxattr(lower, follow_symlinks=False):
        if not key.startswith(OVERLAY_XATTR_PREFIX):
            os.setxattr(fd, key, os.getxattr(lower, key, follow_symlinks=False))
    os.utime(fd, ns=(st.st_atime_ns, st.st_mtime_ns))
    os.utime(parent, ns=(kept.st_atime_ns, kept.st_mtime_ns))
    return fd


def _copy_file(entry: FileEntry, parent: int, name: str, owner: Owner) -> bool:
    """Copy one local file, hashing it on the way: False if it no longer has its digest."""
    source = os.path.realpath(entry.source)  # a file named directly may be a symlink
    src = os.open(source, os.O_RDONLY | os.O_NOFOLLOW)
    try:
        st = os.fstat(src)
        digest = sha256(st.st_size)
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW
        out = os.open(name, flags, 0o600, dir_fd=parent)
        try:
            while chunk := os.read(src, _CHUNK):
                digest.update(chunk)
                os.write(out, chunk)
            os.fchown(out, *owner)
            os.fchmod(out, entry.mode)
            os.utime(out, ns=(st.st_mtime_ns, st.st_mtime_ns))
        finally:
            os.close(out)
    finally:
        os.close(src)
    return digest.hexdigest() == entry.digest
