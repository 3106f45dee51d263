"""COPY --from: copy paths from another image's tree into a layer, each side in its own chroot.

Run as `python -I -S copyfrom.py SOURCE MERGED SPEC` by the sandbox's mount script, with
SOURCE the other image mounted read-only and MERGED this step's overlay. It forks: the child
chroots into SOURCE and writes the paths as a tar stream, so every source path and symlink
resolves inside the source image and never on the host; the parent chroots into MERGED and
unpacks the stream there, so destinations resolve inside this image. Symlinks are copied as
symlinks; every copied entry belongs to root, as with COPY.
"""

from __future__ import annotations

import json
import os
import sys
import tarfile

__all__ = ["main"]

# Python 3.14 refuses absolute symlinks by default; the chroot is what keeps us inside.
_TRUSTED = {"filter": "fully_trusted"} if hasattr(tarfile, "fully_trusted_filter") else {}


def _as_root(info: tarfile.TarInfo) -> tarfile.TarInfo:
    info.uid = info.gid = 0
    info.uname = info.gname = "root"
    return info


def _pack(paths: list[str], dest: str, out: int) -> int:
    """Write `paths` (inside the current root) as a tar stream of their destinations."""
    with os.fdopen(out, "wb") as stream, tarfile.open(fileobj=stream, mode="w|") as tar:
        for path in paths:
            real = os.path.realpath(path)  # chrooted: a symlink cannot lead out of the image
            if not os.path.lexists(real):
                print(f"COPY --from: {path} not found in the source image", file=sys.stderr)
                return 1
            into = dest.endswith("/") and not os.path.isdir(real)
            target = dest + os.path.basename(path.rstrip("/")) if into else dest
            tar.add(real, arcname=target.strip("/") or ".", filter=_as_root)
    return 0


def _unpack(stream: int) -> None:
    with os.fdopen(stream, "rb") as raw, tarfile.open(fileobj=raw, mode="r|") as tar:
        for member in tar:
            path = "/" + member.name
            if not member.isdir() and os.path.lexists(path):
                if os.path.isdir(path) and not os.path.islink(path):
                    print(f"COPY --from: cannot replace directory {path}", file=sys.stderr)
                    sys.exit(1)
                os.unlink(path)  # replace, never write through, what is there
            tar.extract(member, "/", numeric_owner=True, **_TRUSTED)  # type: ignore[arg-type]


def main(argv: list[str]) -> int:
    """Copy the paths listed in the JSON file SPEC from tree SOURCE into tree MERGED."""
    source, merged, spec_path = argv
    with open(spec_path) as f:
        spec = json.load(f)
    read, write = os.pipe()
    child = os.fork()
    if child == 0:
        os.close(read)
        os.chroot(source)
        os.chdir("/")
        os._exit(_pack(spec["paths"], spec["dest"], write))
    os.close(write)
    os.chroot(merged)
    os.chdir("/")
    os.umask(0)
    unpacked = True
    try:
        _unpack(read)
    except tarfile.TarError as exc:  # often because the source side failed and says why
        print(f"COPY --from: {exc}", file=sys.stderr)
        unpacked = False
    status = os.waitpid(child, 0)[1]
    return 0 if unpacked and status == 0 else 1


if __name__ == "__main__":
    try:
        sys.exit(main(sys.argv[1:]))
    except OSError as exc:
        print(f"copy failed: {exc}", file=sys.stderr)
        sys.exit(1)
