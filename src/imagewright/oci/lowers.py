"""The lower layers of an overlay, looked up as overlayfs merges them: whiteouts (char 0:0)
delete, a directory marked `trusted.overlay.opaque=y` hides what deeper layers hold, and a file
or symlink hides everything below its path. Only lstat and getxattr, never through a link.

Apart from tarball.py, which writes layers with it, because copydirect.py needs it without
tarfile.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Sequence
from pathlib import Path

__all__ = ["OVERLAY_XATTR_PREFIX", "LowerLayers", "is_opaque", "is_whiteout"]

OVERLAY_XATTR_PREFIX = "trusted.overlay."
_OPAQUE_XATTR = "trusted.overlay.opaque"


def is_whiteout(st: os.stat_result) -> bool:
    return stat.S_ISCHR(st.st_mode) and st.st_rdev == 0


def is_opaque(path: str) -> bool:
    try:
        return os.getxattr(path, _OPAQUE_XATTR, follow_symlinks=False) == b"y"
    except OSError:  # ENODATA, or a filesystem without xattrs
        return False


class LowerLayers:
    """The layers under an upper dir (top first), looked up as overlayfs merges them."""

    def __init__(self, diffs: Sequence[Path]):
        self._diffs = [str(d) for d in diffs]

    def kind(self, rel: str) -> str | None:
        """ "dir" or "other" for what the merged lower tree has at `rel`, None if nothing."""
        found = self.find(rel)
        return found[0] if found is not None and found[0] != "deleted" else None

    def find(self, rel: str) -> tuple[str, str] | None:
        """What the merged lower tree has at `rel` and where: ("dir" or "other", the top
        layer's path of it), "deleted" when a whiteout removes it or a directory above it, or
        None if nothing."""
        parts = rel.split("/")
        for diff in self._diffs:
            found = _lookup(diff, parts)
            if found != "missing":
                return None if found is None else (found, os.path.join(diff, *parts))
        return None


def _lookup(diff: str, parts: list[str]) -> str | None:
    """What one layer says about a path: a kind, "deleted" (a whiteout), None (hidden), or
    "missing"."""
    path, sealed = diff, False
    for depth, part in enumerate(parts):
        path = os.path.join(path, part)
        try:
            st = os.lstat(path)
        except (FileNotFoundError, NotADirectoryError):
            # an opaque ancestor in this layer hides whatever deeper layers hold
            return None if sealed else "missing"
        if is_whiteout(st):
            return "deleted"
        if depth == len(parts) - 1:
            return "dir" if stat.S_ISDIR(st.st_mode) else "other"
        if not stat.S_ISDIR(st.st_mode):
            return None  # a file or symlink here shadows the lower path
        sealed = sealed or is_opaque(path)
    return None
