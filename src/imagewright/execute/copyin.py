"""Copy planned local files into a layer, from inside a chroot of the merged overlay.

Run as `python -I -S copyin.py MERGED SPEC` in a helper sandbox (sandbox.spawn_helper): a plain
script that needs only the standard library. It opens the sandbox's root first (where the
sources' directories are bound read-only), then chroots into the image: every destination path,
symlinks included, resolves inside the image and never on the host, while sources are opened
relative to the saved root with O_NOFOLLOW. Nothing here looks up a user or group name, so
libc never loads a library from the image. Each file is hashed
as it is copied; a file that no longer matches the digest the plan was keyed on fails the step
(exit status 3). Entries belong to root, or to the --chown owner, or keep the owner an entry
names itself (files unpacked from an ADD archive).
"""

from __future__ import annotations

import marshal
import os
import sys

TYPE_CHECKING = False  # typing.TYPE_CHECKING, without importing typing (and with it re)
if TYPE_CHECKING or __package__:
    from .._copyrules import ROOT, enter_image, make_parents
    from .._digest import constructor
else:  # run as a plain script (-I): the package directory holds _copyrules.py and _digest.py
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    from _copyrules import ROOT, enter_image, make_parents
    from _digest import constructor

if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import TypedDict

    from .._digest import Hash

    class _Entry(TypedDict):
        dest: str
        kind: str  # "file", "dir" or "symlink"
        mode: int
        digest: str
        source: str
        target: str

    class CopyEntry(_Entry, total=False):
        uid: int  # with gid: the owner an entry keeps (files unpacked from an ADD archive)
        gid: int

    class CopySpec(TypedDict):
        owner: str | None  # a --chown value
        entries: list[CopyEntry]


__all__ = ["main"]

CHANGED_DURING_BUILD = 3
Owner = tuple[int, int]


def _owner(entry: CopyEntry, default: Owner) -> Owner:
    uid, gid = entry.get("uid"), entry.get("gid")
    return (uid, gid) if isinstance(uid, int) and isinstance(gid, int) else default


def _replace_non_dir(path: str) -> None:
    if os.path.lexists(path) and not os.path.isdir(path):
        os.unlink(path)


def _copy_file(host_root: int, entry: CopyEntry, owner: Owner, sha256: Callable[[], Hash]) -> bool:
    dest, source = entry["dest"], entry["source"].lstrip("/")
    src = os.open(source, os.O_RDONLY | os.O_NOFOLLOW, dir_fd=host_root)
    try:
        make_parents(dest, owner)
        _replace_non_dir(dest)
        out = os.open(dest, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o600)
        digest = sha256()
        try:
            while chunk := os.read(src, 1 << 20):
                digest.update(chunk)
                os.write(out, chunk)
            os.fchown(out, *_owner(entry, owner))
            os.fchmod(out, entry["mode"])
            st = os.fstat(src)
            os.utime(out, ns=(st.st_mtime_ns, st.st_mtime_ns))
        finally:
            os.close(out)
    finally:
        os.close(src)
    return digest.hexdigest() == entry["digest"]


def _make_dir(entry: CopyEntry, owner: Owner) -> None:
    dest = entry["dest"]
    if os.path.isdir(dest):
        return
    make_parents(dest, owner)
    _replace_non_dir(dest)
    os.mkdir(dest)
    os.chown(dest, *_owner(entry, owner))
    os.chmod(dest, entry["mode"])


def _make_symlink(entry: CopyEntry, owner: Owner) -> None:
    dest = entry["dest"]
    make_parents(dest, owner)
    _replace_non_dir(dest)
    os.symlink(entry["target"], dest)
    os.lchown(dest, *_owner(entry, owner))


def main(argv: list[str]) -> int:
    """Copy the entries listed in SPEC (written by copies.copy_into) into the tree MERGED."""
    merged, spec_path = argv
    with open(spec_path, "rb") as f:
        spec: CopySpec = marshal.load(f)  # as copies.copy_into wrote it
    host_root = os.open("/", os.O_RDONLY | os.O_DIRECTORY)
    # (SHA-256 from the interpreter for a few small files, OpenSSL's for more: see _digest)
    total = sum(os.stat(e["source"]).st_size for e in spec["entries"] if e["kind"] == "file")
    sha256 = constructor(total)
    owner = enter_image(merged, spec["owner"]) or ROOT
    for entry in spec["entries"]:
        kind = entry["kind"]
        if kind == "dir":
            _make_dir(entry, owner)
        elif kind == "symlink":
            _make_symlink(entry, owner)
        elif not _copy_file(host_root, entry, owner, sha256):
            print(f"{entry['source']} changed while it was being copied", file=sys.stderr)
            return CHANGED_DURING_BUILD
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main(sys.argv[1:]))
    except (OSError, LookupError) as exc:
        print(f"copy failed: {exc}", file=sys.stderr)
        sys.exit(1)
