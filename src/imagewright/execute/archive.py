"""ADD of a local tar archive: unpack it safely on the host, then copy the tree into the layer.

Unpacking reuses the untrusted-layer unpacker (no absolute paths, no `..`, no links out of the
tree), so an archive from the build context cannot write outside its destination.
"""

from __future__ import annotations

import bz2
import lzma
import os
import posixpath
from collections.abc import Callable
from typing import IO

from ..exception import RegistryError
from ..oci.compression import gunzip
from ..oci.unpack import LayerStream, unpack_layer
from ..plan.files import collect_dir
from ..plan.planner import ExtractArchive
from ..store.store import Scratch
from .copies import copy_into
from .overlay import Overlay

__all__ = ["extract_archive"]


def _decompressed(path: str, raw: IO[bytes]) -> LayerStream:
    if path.endswith((".gz", ".tgz")):
        return gunzip(raw)  # type: ignore[arg-type]  # a file opened "rb"
    if path.endswith((".xz", ".txz")):
        return lzma.LZMAFile(raw)
    if path.endswith(".bz2"):
        return bz2.BZ2File(raw)
    return raw


def extract_archive(
    action: ExtractArchive, overlay: Overlay, area: Scratch, on_line: Callable[[str], None]
) -> int:
    tree = area.root / "archive"
    tree.mkdir()
    try:
        with open(action.source, "rb") as raw, _decompressed(action.source, raw) as stream:
            count = unpack_layer(stream, tree, f"ADD {action.source}")
    except (RegistryError, OSError, EOFError, lzma.LZMAError) as exc:
        on_line(f"cannot unpack {action.source}: {exc}")
        return 1
    on_line(f"unpacked {count} entries from {action.source} into {action.dest}")
    # As in Docker, the archive's entries keep their owners; --chown reaches only the
    # directories the copy creates.
    entries = []
    for entry in collect_dir(str(tree), action.dest, ()):
        st = os.lstat(tree / posixpath.relpath(entry.dest, action.dest))
        entries.append(entry._replace(owner=(st.st_uid, st.st_gid)))
    return copy_into(overlay, tuple(entries), on_line, action.owner)
