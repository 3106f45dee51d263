"""COPY --from: copy paths from another image's tree into a layer, each side in its own chroot.

Run as `python -I -S copyfrom.py SOURCE MERGED SPEC` in a helper sandbox
(sandbox.spawn_helper), with SOURCE the other image mounted read-only and MERGED this step's
overlay. Everything it imports is imported before it chroots (an import afterwards would read
Python files from the image), and tar never looks up user or group names (glibc would load the
image's NSS libraries for that): owners are copied as numbers. It forks: the child
chroots into SOURCE and writes the paths as a tar stream, so every source path and symlink
resolves inside the source image and never on the host; the parent chroots into MERGED and
unpacks the stream there, so destinations resolve inside this image. Symlinks are copied as
symlinks. As in BuildKit, entries keep their owners unless --chown names one (resolved in this
image), and --chmod sets the mode of every entry but symlinks. A copied directory's contents go
into the destination directory, which is created afresh (755, root or the --chown owner) when
missing and left as it is when present.
"""

from __future__ import annotations

import fnmatch  # noqa: F401  (used by _copyrules.glob_paths after the chroot)
import marshal
import os
import sys
import tarfile

TYPE_CHECKING = False  # typing.TYPE_CHECKING, without importing typing (and with it re)
if TYPE_CHECKING or __package__:
    from .._copyrules import ROOT, enter_image, glob_paths, has_magic, make_parents
else:  # run as a plain script (-I): the package directory holds _copyrules.py
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    from _copyrules import ROOT, enter_image, glob_paths, has_magic, make_parents

if TYPE_CHECKING:
    from typing import Literal, TypedDict

    class CopyFromSpec(TypedDict):
        paths: list[str]  # in the source image, globs allowed
        dest: str
        chmod: int | None  # --chmod
        owner: str | None  # --chown

    class _Filter(TypedDict, total=False):
        filter: Literal["fully_trusted"]


__all__ = ["main"]

# No name lookups: numeric owners only (see the docstring).
tarfile.pwd = tarfile.grp = None  # type: ignore[attr-defined]  # tarfile's own imports, not in typeshed
# Python 3.14 refuses absolute symlinks by default; the chroot is what keeps us inside.
_TRUSTED: _Filter = {"filter": "fully_trusted"} if hasattr(tarfile, "fully_trusted_filter") else {}
# Marks the destination directory of a directory copy: it takes no metadata from its source.
_DESTINATION = "IMAGEWRIGHT.destination"


def _sources(patterns: list[str]) -> list[str] | None:
    """The paths `patterns` name in the current root; None (having said why) if one is missing."""
    found = []
    for pattern in patterns:
        matches = ["/" + p for p in glob_paths("/", pattern)] if has_magic(pattern) else [pattern]
        if not matches or not os.path.lexists(os.path.realpath(matches[0])):
            print(f"COPY --from: {pattern} not found in the source image", file=sys.stderr)
            return None
        found += matches
    return found


def _pack(patterns: list[str], dest: str, chmod: int | None, out: int) -> int:
    """Write what `patterns` match (inside the current root) as a tar stream of destinations."""

    def mode(info: tarfile.TarInfo) -> tarfile.TarInfo:
        if info.name in destinations:
            info.mode, info.uid, info.gid, info.pax_headers = 0o755, 0, 0, {_DESTINATION: "1"}
        elif chmod is not None and not info.issym():
            info.mode = chmod
        return info

    paths = _sources(patterns)
    if paths is None:
        return 1
    if len(paths) > 1 and not dest.endswith("/"):
        print(
            "When using COPY with more than one source file, the destination must be a "
            "directory and end with a /",
            file=sys.stderr,
        )
        return 1
    destinations = set()
    with (
        os.fdopen(out, "wb") as stream,
        tarfile.open(fileobj=stream, mode="w|", format=tarfile.PAX_FORMAT) as tar,
    ):
        for path in paths:
            real = os.path.realpath(path)  # chrooted: a symlink cannot lead out of the image
            into = dest.endswith("/") and not os.path.isdir(real)
            target = (dest + os.path.basename(path.rstrip("/")) if into else dest).strip("/")
            if os.path.isdir(real):
                destinations.add(target or ".")
            tar.add(real, arcname=target or ".", filter=mode)
    return 0


def _unpack(stream: int, owner: tuple[int, int] | None) -> None:
    with os.fdopen(stream, "rb") as raw, tarfile.open(fileobj=raw, mode="r|") as tar:
        for member in tar:
            path = "/" + member.name
            if _DESTINATION in member.pax_headers and os.path.isdir(path):
                continue
            make_parents(path, owner or ROOT)
            if not member.isdir() and os.path.lexists(path):
                if os.path.isdir(path) and not os.path.islink(path):
                    print(f"COPY --from: cannot replace directory {path}", file=sys.stderr)
                    sys.exit(1)
                os.unlink(path)  # replace, never write through, what is there
            if owner is not None:
                member.uid, member.gid = owner
            tar.extract(member, "/", numeric_owner=True, **_TRUSTED)


def main(argv: list[str]) -> int:
    """Copy the paths listed in SPEC (written by copies.copy_from) from tree SOURCE into MERGED."""
    source, merged, spec_path = argv
    with open(spec_path, "rb") as f:
        spec: CopyFromSpec = marshal.load(f)  # as copies.copy_from wrote it
    source_root = os.open(source, os.O_RDONLY | os.O_DIRECTORY)
    owner = enter_image(merged, spec["owner"])  # before forking: a bad --chown starts nothing
    read, write = os.pipe()
    child = os.fork()
    if child == 0:
        os.close(read)
        os.fchdir(source_root)  # the source tree, opened before entering this image
        os.chroot(".")
        os.chdir("/")
        os._exit(_pack(spec["paths"], spec["dest"], spec["chmod"], write))
    os.close(write)
    unpacked = True
    try:
        _unpack(read, owner)
    except tarfile.TarError as exc:  # often because the source side failed and says why
        print(f"COPY --from: {exc}", file=sys.stderr)
        unpacked = False
    status = os.waitpid(child, 0)[1]
    return 0 if unpacked and status == 0 else 1


if __name__ == "__main__":
    try:
        sys.exit(main(sys.argv[1:]))
    except (OSError, LookupError) as exc:
        print(f"copy failed: {exc}", file=sys.stderr)
        sys.exit(1)
