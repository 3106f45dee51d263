"""Push a built image to a registry: layer blobs and config (skipping what is there), then
the manifest under the tag.

Blobs, config and manifest are the export's own (`image_layers`, `image_files`), so a pushed
image has the manifest digest an export of it has. A blob the registry already holds is never
sent again (HEAD first), which is also how an interrupted push resumes; a tag that already
names the very manifest costs one HEAD in all. Where each blob was pushed is remembered under
`<store>/registry/pushed/`, one file per blob with a line per repository, so pushing the same
layers to a second repository of the same registry mounts them instead of uploading them. Blobs
go a few at a time; the manifest goes last, once all are there.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable
from pathlib import Path

from ..definition.image import Image
from ..exception import InvalidError
from ..execute.builder import LayerCache, build_image
from ..execute.events import Reporter
from ..oci.manifest import MANIFEST_MEDIA_TYPE
from ..oci.reference import parse_reference, split_registry
from ..registry.client import CHUNK_THRESHOLD, RegistryClient
from ..store.store import Store
from .exporter import image_files, image_layers, source_date_epoch

TYPE_CHECKING = False  # typing.TYPE_CHECKING, without importing typing (_fasttyping.py)
if TYPE_CHECKING:
    from typing import NamedTuple

    from ..registry.progress import TransferProgress
else:
    from .._namedtuple import NamedTuple  # typing's, made in a tenth of the time

__all__ = ["PUSH_COMPRESSIONS", "PushResult", "push_image"]

PUSH_COMPRESSIONS = ("gzip", "zstd")
_PARALLEL_BLOBS = 4


class PushResult(NamedTuple):
    reference: str  # registry/repository:tag
    manifest_digest: str
    uploaded: tuple[str, ...]  # digests sent
    mounted: tuple[str, ...]  # digests mounted from another repository
    present: tuple[str, ...]  # digests the registry already had


def push_image(
    image: Image,
    target: str,
    *,
    insecure: bool = False,
    compression: str = "gzip",
    store: Store | None = None,
    reporter: Reporter | None = None,
    cache: LayerCache | None = None,
    chunk_size: int = CHUNK_THRESHOLD,
    progress: Callable[[str], None] | None = None,
) -> PushResult:
    """Build `image` if needed (through `cache`, default build_image's), then push it as
    `target` (REGISTRY/REPO[:TAG]).

    Raises:
        InvalidError: for a bad reference or compression.
        RegistryError: when the registry cannot be reached, refuses us, or drops the upload.
    """
    if compression not in PUSH_COMPRESSIONS:
        raise InvalidError(f"Unknown push compression {compression!r}; use gzip or zstd.")
    ref = parse_reference(target)
    registry, repository = split_registry(ref.name)
    store = store or Store.default()
    plan = build_image(image, store=store, reporter=reporter, cache=cache).plan
    epoch = source_date_epoch()
    layers, history, _ = image_layers(plan, store, compression, epoch, progress)
    files = image_files(plan.config, layers, history, compression, epoch, ref, "oci")
    manifest = files.blobs[files.manifest.digest]
    assert isinstance(manifest, bytes)
    record = _PushRecord(store.root / "registry" / "pushed", registry)
    done: dict[str, list[str]] = {"uploaded": [], "mounted": [], "present": []}
    blobs: list[tuple[str, str, Path | bytes]] = [
        (f"layer {i}", blob.digest, blob.path) for i, blob in enumerate(layers, 1)
    ]
    blobs.append(("config", files.config.digest, files.blobs[files.config.digest]))
    with RegistryClient(registry, repository, insecure=insecure, chunk_size=chunk_size) as client:
        # The tag already names this very manifest: the registry checked its blobs when it was
        # put, so there is nothing to send (one HEAD, where checking each blob is one per blob).
        if client.names_manifest(ref.tag, MANIFEST_MEDIA_TYPE, files.manifest.digest):
            done["present"] = [digest for _, digest, _ in blobs]
            for digest in done["present"]:
                record.add(digest, repository)
        else:
            _push_blobs(client, record, blobs, done)
            client.put_manifest(ref.tag, manifest, MANIFEST_MEDIA_TYPE, files.manifest.digest)
    return PushResult(
        f"{registry}/{repository}:{ref.tag}",
        files.manifest.digest,
        tuple(done["uploaded"]),
        tuple(done["mounted"]),
        tuple(done["present"]),
    )


def _push_blobs(
    client: RegistryClient,
    record: _PushRecord,
    blobs: list[tuple[str, str, Path | bytes]],
    done: dict[str, list[str]],
) -> None:
    """Make every blob present in the repository, a few at a time, noting how in `done`."""
    import concurrent.futures

    from ..registry.progress import TransferProgress

    # a few blobs at a time, as skopeo and Docker push: a HEAD per blob is a round trip, and
    # one upload rarely fills the link
    with (
        TransferProgress("Pushing") as bars,
        concurrent.futures.ThreadPoolExecutor(_PARALLEL_BLOBS) as pool,
    ):
        outcomes = [
            pool.submit(_push_blob, client, record, bars, label, digest, source)
            for label, digest, source in blobs
        ]
        for (_, digest, _), outcome in zip(blobs, outcomes, strict=True):
            done[outcome.result()].append(digest)
            record.add(digest, client.repository)


def _push_blob(
    client: RegistryClient,
    record: _PushRecord,
    bars: TransferProgress,
    label: str,
    digest: str,
    source: Path | bytes,
) -> str:
    """Make `digest` present in the repository; returns "present", "mounted" or "uploaded"."""
    size = source.stat().st_size if isinstance(source, Path) else len(source)
    bars.start(label, digest, size)
    if client.blob_exists(digest):
        bars.finish(label, digest, "already there")
        return "present"
    location = None
    others = record.repositories(digest, exclude=client.repository)
    if others:
        # 201: mounted. 202: the registry would not mount it and opened an upload instead.
        location = client.mount_blob(digest, others[0])
        if location is None:
            bars.finish(label, digest, f"mounted from {others[0]}")
            return "mounted"
    client.upload_blob(
        digest, source, location=location, progress=lambda n: bars.advance(digest, n)
    )
    bars.finish(label, digest, "pushed")
    return "uploaded"


class _PushRecord:
    """Which repositories of one registry we pushed each blob to (append-only files)."""

    def __init__(self, root: Path, registry: str):
        self.dir = root / registry.replace(":", "_").replace("/", "_")

    def repositories(self, digest: str, *, exclude: str) -> list[str]:
        try:
            lines = (self.dir / digest.replace(":", "_")).read_text().splitlines()
        except FileNotFoundError:
            return []
        return [r for r in dict.fromkeys(lines) if r and r != exclude]

    def add(self, digest: str, repository: str) -> None:
        if repository in self.repositories(digest, exclude=""):
            return
        self.dir.mkdir(parents=True, exist_ok=True)
        # One short O_APPEND write is atomic, so concurrent pushes never interleave lines.
        fd = os.open(self.dir / digest.replace(":", "_"), os.O_WRONLY | os.O_CREAT | os.O_APPEND)
        with contextlib.closing(os.fdopen(fd, "a")) as f:
            f.write(repository + "\n")
