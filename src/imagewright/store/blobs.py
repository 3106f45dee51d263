"""Compressed layer blobs kept in the store, so each layer is tarred and compressed once.

Layout under the store root:

    blobs/sha256/<hex>                           a blob, named by its digest
    blobs/index/<layer key>.<encoding>.json   {digest, diff_id, size, ...} for one layer
    blobs/index/<layer key>.<encoding>.sde<epoch>.json   the same with SOURCE_DATE_EPOCH

(the encoding names the compression with its compressor's version and level: oci/compression.py)

One small index file per (layer, compression, epoch) means no shared file is ever rewritten:
concurrent exports only ever add files. Every file appears whole or not at all (a temp file in
the same directory, fsynced, then os.replace); an entry is written before its blob is renamed
into place, so a prune never sees a finished blob that no entry names. An entry is used only
while the layer it was made from is the one in the store (its `created` time matches: `build
--force` replaces layers under the same key) and the blob it names is there with the recorded
size. Blobs are not trusted further than that here: whatever copies one out checks its digest
(export/layout.py), and `discard` drops a blob that failed the check, so it is made again.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

from ..oci.compression import encoding
from .atomic import atomic_file, sweep_dead_temps, write_atomic
from .store import LayerRecord, Store

TYPE_CHECKING = False  # typing.TYPE_CHECKING, without importing typing (_fasttyping.py)
if TYPE_CHECKING:
    from typing import NamedTuple
else:
    from .._namedtuple import NamedTuple  # typing's, made in a tenth of the time

__all__ = ["LayerBlob", "LayerBlobs"]

# Bump when the tar a layer gives changes (walk order, header fields), so old blobs are redone.
TAR_FORMAT = 1
_DIGEST = re.compile(r"sha256:[0-9a-f]{64}")


class LayerBlob(NamedTuple):
    digest: str
    diff_id: str
    size: int
    compression: str
    path: Path  # the blob's file in the store


class LayerBlobs:
    """The store's blob directory: find or make the compressed blob of a committed layer."""

    def __init__(self, store: Store):
        self.store = store
        self.root = store.root / "blobs"
        self.blob_dir = self.root / "sha256"
        self.index_dir = self.root / "index"
        # digests `make` compressed itself (digested as written), not found made by another
        self.written: set[str] = set()

    def path_of(self, digest: str) -> Path:
        return self.blob_dir / digest.removeprefix("sha256:")

    def cached(
        self, record: LayerRecord, compression: str, clamp_mtime: int | None
    ) -> LayerBlob | None:
        """The stored blob of `record`'s layer, if one was made before."""
        return self._read(self._entry_path(record, compression, clamp_mtime), record, compression)

    def make(
        self,
        record: LayerRecord,
        lowers: list[Path],
        compression: str,
        clamp_mtime: int | None,
    ) -> LayerBlob:
        """Tar and compress `record`'s layer into the store (unless another export just did).

        `lowers` are the diff dirs under the layer (top first), for the whiteout rules.
        """
        entry_path = self._entry_path(record, compression, clamp_mtime)
        with self.store.lock(f"blob-{entry_path.stem}"):
            found = self._read(entry_path, record, compression)
            if found is not None:
                return found
            sweep_dead_temps(self.blob_dir)
            sweep_dead_temps(self.index_dir)
            from ..oci.compression import BlobWriter  # (a stored blob needs none of these)
            from ..oci.lowers import LowerLayers
            from ..oci.tarball import write_layer

            upper = self.store.layer_dir(record.key) / "diff"
            with atomic_file(self.blob_dir) as out:
                writer = BlobWriter(out.file, compression)
                write_layer(upper, LowerLayers(lowers), writer, clamp_mtime=clamp_mtime)
                digests = writer.finish()
                out.name = digests.digest.removeprefix("sha256:")
                entry = {"tar_format": TAR_FORMAT, "layer_created": record.created}
                write_atomic(entry_path, json.dumps({**entry, **digests._asdict()}).encode())
            self.written.add(digests.digest)
        return LayerBlob(*digests, compression, self.path_of(digests.digest))

    def prune(self) -> int:
        """Drop index entries of layers no longer in the store, then blobs no entry names.

        Returns the bytes freed. Called by `imagewright prune` after layers were removed.
        Layers a live process uses keep their entries, so an export in flight keeps its blobs.
        """
        freed = 0
        with self.store.pruning() as in_use:
            layers = {record.key for record in self.store.layers()} | in_use
            live_digests: set[str] = set()
            for entry_path in self.index_dir.glob("*.json"):
                key = entry_path.name.split(".", 1)[0]
                if key not in layers:
                    entry_path.unlink(missing_ok=True)
                    continue
                try:
                    digest = json.loads(entry_path.read_text()).get("digest")
                except (FileNotFoundError, ValueError, AttributeError):
                    continue
                live_digests.add(str(digest).removeprefix("sha256:"))
            for blob in self.blob_dir.glob("*"):
                if blob.name not in live_digests and not blob.name.startswith("."):
                    freed += blob.stat().st_size
                    blob.unlink(missing_ok=True)
        return freed

    def discard(self, digest: str) -> None:
        """Drop a stored blob that failed its digest check; the next use makes it again."""
        self.path_of(digest).unlink(missing_ok=True)

    def _entry_path(self, record: LayerRecord, compression: str, clamp_mtime: int | None) -> Path:
        suffix = f".sde{clamp_mtime}" if clamp_mtime is not None else ""
        return self.index_dir / f"{record.key}.{encoding(compression)}{suffix}.json"

    def _read(self, entry_path: Path, record: LayerRecord, compression: str) -> LayerBlob | None:
        try:
            entry = json.loads(entry_path.read_text())
            if entry["tar_format"] != TAR_FORMAT or entry["layer_created"] != record.created:
                return None
            blob = LayerBlob(
                str(entry["digest"]), str(entry["diff_id"]), int(entry["size"]), compression,
                self.path_of(str(entry["digest"])),
            )  # fmt: skip
        except (FileNotFoundError, ValueError, KeyError, TypeError):  # missing or unreadable
            return None
        if not _DIGEST.fullmatch(blob.digest) or not _DIGEST.fullmatch(blob.diff_id):
            return None
        try:
            if blob.path.stat().st_size != blob.size:
                return None
        except FileNotFoundError:  # pruned, or lost: make it again
            return None
        return blob
