"""Copies into a step's overlay, each in a helper sandbox: host files in (copyin.py), and paths
out of another built image (copyfrom.py). Neither runs anything of the image on the host. Host
files that meet nothing of the image on their way in skip the helper (copydirect.py).
"""

from __future__ import annotations

import marshal
import os
from collections.abc import Callable

from ..plan.files import FileEntry
from ..plan.planner import CopyFromPlan
from .overlay import Bind, Overlay

TYPE_CHECKING = False  # typing.TYPE_CHECKING, without importing typing (_fasttyping.py)
if TYPE_CHECKING:
    from .copyfrom import CopyFromSpec
    from .copyin import CopyEntry, CopySpec

__all__ = ["copy_from", "copy_into"]

_HOST = "/.host"  # where the copy helper sees the host files it copies


def copy_into(
    overlay: Overlay,
    entries: tuple[FileEntry, ...],
    on_line: Callable[[str], None],
    owner: str | None = None,
) -> int:
    """Create `entries` in the overlay's upper dir (copyin.py, in a helper sandbox that chroots
    into the merged tree); `owner` is a --chown value for entries that carry no owner of their
    own. The helper sees the host only through read-only binds of the sources' directories;
    where nothing of the image is in the way, the builder writes them itself (copydirect.py)."""
    from .copydirect import copy_direct

    status = copy_direct(overlay, entries, on_line, owner)
    if status is not None:
        return status
    spec = overlay.work.parent / "copy.spec"
    listed: list[CopyEntry] = []
    for e in entries:
        # a file named directly may be a symlink: its target is what was hashed, and is copied
        source = _HOST + os.path.realpath(e.source) if e.kind == "file" else e.source
        entry: CopyEntry = {
            "dest": e.dest,
            "kind": e.kind,
            "mode": e.mode,
            "digest": e.digest,
            "source": source,
            "target": e.target,
        }
        if e.owner is not None:
            entry["uid"], entry["gid"] = e.owner
        listed.append(entry)
    # marshal, not JSON: the script runs on this same interpreter, and importing json (and
    # with it re) would cost a fresh interpreter more time than the copy itself
    listing: CopySpec = {"owner": owner, "entries": listed}
    spec.write_bytes(marshal.dumps(dict(listing)))  # dict(): marshal's stub takes no TypedDict
    files = [entry["source"][len(_HOST) :] for entry in listed if entry["kind"] == "file"]
    binds = [Bind(path, _HOST + path) for path in _source_roots(files)]
    from . import copyin

    binds.append(Bind(str(spec), "/spec"))
    from .sandbox import spawn_helper, stream  # (only now: a direct copy starts no sandbox)

    proc = spawn_helper(overlay, copyin.__file__, ["/image", "/spec"], binds)
    return stream(proc, on_line)


def _source_roots(paths: list[str]) -> list[str]:
    """The fewest paths to bind so that each of `paths` is visible: their directories, minus
    those inside another, and the files themselves where a directory would be the host's /."""
    roots: list[str] = []
    for path in sorted({os.path.dirname(p) if os.path.dirname(p) != "/" else p for p in paths}):
        if not roots or not path.startswith(roots[-1].rstrip("/") + "/"):
            roots.append(path)
    return roots


def copy_from(
    action: CopyFromPlan,
    overlay: Overlay,
    source_lowers: tuple[str, ...],
    on_line: Callable[[str], None],
) -> int:
    """Copy `action.paths` from its (built) source image into the overlay (copyfrom.py, in a
    helper sandbox with the source image, `source_lowers`, mounted read-only at /source)."""
    spec = overlay.work.parent / "copy-from.spec"
    fields: CopyFromSpec = {
        "paths": list(action.paths),
        "dest": action.dest,
        "chmod": action.chmod,
        "owner": action.owner,
    }
    spec.write_bytes(marshal.dumps(dict(fields)))
    source = overlay.work.parent / "source"
    source.mkdir()
    from . import copyfrom

    binds = [Bind(str(source), "/source"), Bind(str(spec), "/spec")]
    args = ["/source", "/image", "/spec"]
    readonly = (source_lowers, source)
    from .sandbox import spawn_helper, stream

    proc = spawn_helper(overlay, copyfrom.__file__, args, binds, readonly=readonly)
    return stream(proc, on_line)
