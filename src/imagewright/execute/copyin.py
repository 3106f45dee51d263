"""Copy planned local files into a layer, from inside a chroot of the merged overlay.

Run as `python -I -S copyin.py MERGED SPEC` by the sandbox's mount script: a plain script that
needs only the standard library. It opens the host root first, then chroots into the image:
every destination path, symlinks included, resolves inside the image and never on the host,
while sources are opened relative to the saved host root with O_NOFOLLOW. Each file is hashed
as it is copied; a file that no longer matches the digest the plan was keyed on fails the step
(exit status 3).
"""

from __future__ import annotations

import hashlib
import json
import os
import sys

__all__ = ["main"]

CHANGED_DURING_BUILD = 3


def _ensure_parent(path: str) -> None:
    parent = os.path.dirname(path)
    if parent and not os.path.isdir(parent):
        os.makedirs(parent, mode=0o755, exist_ok=True)


def _replace_non_dir(path: str) -> None:
    if os.path.lexists(path) and not os.path.isdir(path):
        os.unlink(path)


def _copy_file(host_root: int, entry: dict[str, object]) -> bool:
    dest, source = str(entry["dest"]), str(entry["source"]).lstrip("/")
    src = os.open(source, os.O_RDONLY | os.O_NOFOLLOW, dir_fd=host_root)
    try:
        _ensure_parent(dest)
        _replace_non_dir(dest)
        out = os.open(dest, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o600)
        digest = hashlib.sha256()
        try:
            while chunk := os.read(src, 1 << 20):
                digest.update(chunk)
                os.write(out, chunk)
            os.fchown(out, 0, 0)
            os.fchmod(out, int(entry["mode"]))  # type: ignore[call-overload]
            st = os.fstat(src)
            os.utime(out, ns=(st.st_mtime_ns, st.st_mtime_ns))
        finally:
            os.close(out)
    finally:
        os.close(src)
    return digest.hexdigest() == entry["digest"]


def _make_dir(entry: dict[str, object]) -> None:
    dest = str(entry["dest"])
    if os.path.isdir(dest):
        return
    _ensure_parent(dest)
    _replace_non_dir(dest)
    os.mkdir(dest)
    os.chown(dest, 0, 0)
    os.chmod(dest, int(entry["mode"]))  # type: ignore[call-overload]


def _make_symlink(entry: dict[str, object]) -> None:
    dest = str(entry["dest"])
    _ensure_parent(dest)
    _replace_non_dir(dest)
    os.symlink(str(entry["target"]), dest)
    os.lchown(dest, 0, 0)


def main(argv: list[str]) -> int:
    """Copy the entries listed in the JSON file SPEC into the tree MERGED."""
    merged, spec_path = argv
    with open(spec_path) as f:
        entries = json.load(f)
    host_root = os.open("/", os.O_RDONLY | os.O_DIRECTORY)
    os.chroot(merged)
    os.chdir("/")
    os.umask(0)
    for entry in entries:
        kind = entry["kind"]
        if kind == "dir":
            _make_dir(entry)
        elif kind == "symlink":
            _make_symlink(entry)
        elif not _copy_file(host_root, entry):
            print(f"{entry['source']} changed while it was being copied", file=sys.stderr)
            return CHANGED_DURING_BUILD
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main(sys.argv[1:]))
    except OSError as exc:
        print(f"copy failed: {exc}", file=sys.stderr)
        sys.exit(1)
