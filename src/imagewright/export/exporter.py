"""Export a built image: its layers as stored blobs, then config, manifest and the output.

Reproducibility: the config's `created` times are SOURCE_DATE_EPOCH (epoch 0 when unset), so
the image ID and manifest digest depend only on the layers and settings. Layer mtimes follow
BuildKit: left as they are, or clamped to SOURCE_DATE_EPOCH when it is set.

Files added with `copy=False` are not part of the image, as in Modal, where they are attached
when a container starts; add them with `copy=True` to export them.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Callable
from pathlib import Path

from ..definition.config import ImageConfig
from ..definition.image import Image
from ..exception import ExecutionError, InvalidError
from ..execute.builder import LayerCache, build_image
from ..execute.events import Reporter
from ..oci.compression import COMPRESSIONS
from ..oci.manifest import (
    CONFIG_MEDIA_TYPE,
    MANIFEST_MEDIA_TYPE,
    Descriptor,
    HistoryEntry,
    docker_manifest,
    image_config,
    image_manifest,
    layer_media_type,
    rfc3339,
)
from ..oci.reference import Reference, parse_reference
from ..plan.planner import Plan
from ..store.atomic import CorruptBlobError
from ..store.blobs import LayerBlob, LayerBlobs
from ..store.store import Store
from .layout import ImageFiles, blob_name, write_archive, write_oci_dir

TYPE_CHECKING = False  # typing.TYPE_CHECKING, without importing typing (_fasttyping.py)
if TYPE_CHECKING:
    from typing import NamedTuple
else:
    from .._namedtuple import NamedTuple  # typing's, made in a tenth of the time

__all__ = [
    "FORMATS",
    "ExportResult",
    "check_format",
    "export_image",
    "image_files",
    "image_layers",
    "source_date_epoch",
]

FORMATS = ("oci", "docker")
DEFAULT_TAG = "imagewright:latest"
_DEFAULT_COMPRESSION = {"oci": "gzip", "docker": "gzip"}  # as BuildKit and Podman
_ARCHITECTURES = {"x86_64": "amd64", "aarch64": "arm64", "armv7l": "arm", "i686": "386"}


class ExportResult(NamedTuple):
    path: Path
    format: str
    compression: str
    reference: str  # name:tag
    manifest_digest: str
    image_id: str  # the config digest, as Docker and podman report it
    layers: int
    reused: int  # layers whose compressed blob was already in the store


def export_image(
    image: Image,
    path: str | os.PathLike[str],
    *,
    format: str = "oci",
    compression: str | None = None,
    tag: str = DEFAULT_TAG,
    store: Store | None = None,
    reporter: Reporter | None = None,
    cache: LayerCache | None = None,
    progress: Callable[[str], None] | None = None,
) -> ExportResult:
    """Build `image` if needed, then write it to `path`.

    Args:
        format: "oci" for an OCI image layout (a directory, or a tar of one when `path` ends in
            .tar); "docker" for a docker-archive tar that `docker load` and `podman load` take.
        compression: "gzip" (the default, which every consumer reads), "zstd" (smaller and
            faster, for consumers that read it; Docker's schema2 has none) or "none".
        tag: NAME[:TAG] recorded in the output (RepoTags, ref.name).
        progress: called with a line before each layer is compressed.
        cache: a shared layer cache for the build (default: build_image's).

    Raises:
        InvalidError: for a bad format, compression, tag or SOURCE_DATE_EPOCH.
    """
    compression = check_format(format, compression)
    ref = parse_reference(tag)
    epoch = source_date_epoch()
    store = store or Store.default()
    plan = build_image(image, store=store, reporter=reporter, cache=cache).plan
    if plan.mounts:
        warnings.warn(
            "Files added with copy=False are attached when a container starts and are not "
            "part of the exported image; use copy=True to include them.",
            stacklevel=2,
        )
    out = Path(path)
    for attempt in (1, 2):
        layers, history, made = image_layers(plan, store, compression, epoch, progress)
        files = image_files(plan.config, layers, history, compression, epoch, ref, format)
        files = files._replace(fresh=frozenset(made))
        try:
            if format == "docker" or out.name.endswith(".tar"):
                write_archive(out, files, mtime=epoch or 0)
            else:
                write_oci_dir(out, files)
            break
        except CorruptBlobError as exc:
            # The stored blob changed on disk since it was made (an older export's hard link
            # edited in place, say): drop it and make it again, once.
            if attempt == 2:
                raise
            LayerBlobs(store).discard(exc.digest)
            if progress is not None:
                progress(f"{exc}: making it again")
    return ExportResult(
        out,
        format,
        compression,
        str(ref),
        files.manifest.digest,
        files.config.digest,
        len(layers),
        len(layers) - len(made),
    )


def image_layers(
    plan: Plan,
    store: Store,
    compression: str,
    epoch: int | None,
    progress: Callable[[str], None] | None,
) -> tuple[list[LayerBlob], list[HistoryEntry], list[str]]:
    """The blob of every non-empty layer (made or reused), the history, and the digest of
    each blob this process made now (digested as it was written)."""
    blobs = LayerBlobs(store)
    layers: list[LayerBlob] = []
    history: list[HistoryEntry] = []
    below: list[Path] = []  # diff dirs of the layers so far, bottom first
    made: list[str] = []
    for step in plan.steps:
        record = store.lookup(step.key)
        if record is None:
            raise ExecutionError(f"layer {step.short} of {plan.image_id} vanished from the store")
        created_by = "\n".join(step.history) or step.description
        history.append(HistoryEntry(created_by, step.description, record.empty))
        if record.empty:
            continue
        blob = blobs.cached(record, compression, epoch)
        if blob is None:
            if progress is not None:
                progress(f"Compressing layer {len(layers) + 1} ({compression}): {step.description}")
            blob = blobs.make(record, below[::-1], compression, epoch)
            if blob.digest in blobs.written:  # (not one another export made meanwhile)
                made.append(blob.digest)
        layers.append(blob)
        below.append(store.layer_dir(step.key) / "diff")
    return layers, history, made


def image_files(
    settings: ImageConfig,
    layers: list[LayerBlob],
    history: list[HistoryEntry],
    compression: str,
    epoch: int | None,
    ref: Reference,
    format: str,
) -> ImageFiles:
    """Config, manifest and index entry for the layers, and Docker's manifest.json if asked."""
    machine = os.uname().machine  # (platform.machine(), without importing platform)
    arch = _ARCHITECTURES.get(machine, machine)
    diff_ids = [blob.diff_id for blob in layers]
    created = rfc3339(epoch or 0)
    config = image_config(settings, diff_ids, history, created=created, architecture=arch)
    config_desc = Descriptor.of(CONFIG_MEDIA_TYPE, config)
    layer_descs = [Descriptor(layer_media_type(compression), b.digest, b.size) for b in layers]
    manifest = image_manifest(config_desc, layer_descs)
    manifest_desc = Descriptor.of(MANIFEST_MEDIA_TYPE, manifest)._replace(
        annotations={
            "org.opencontainers.image.ref.name": ref.tag,
            "io.containerd.image.name": ref.qualified,  # the name podman and containerd load
        },
        platform={"architecture": arch, "os": "linux"},
    )
    contents: dict[str, Path | bytes] = {b.digest: b.path for b in layers}
    contents[config_desc.digest] = config
    contents[manifest_desc.digest] = manifest
    docker = None
    if format == "docker":
        paths = [blob_name(b.digest) for b in layers]
        docker = docker_manifest(blob_name(config_desc.digest), paths, str(ref))
    return ImageFiles(manifest_desc, config_desc, contents, docker)


def check_format(format: str, compression: str | None) -> str:
    if format not in FORMATS:
        raise InvalidError(f"Unknown export format {format!r}; use one of {', '.join(FORMATS)}.")
    compression = compression or _DEFAULT_COMPRESSION[format]
    if compression not in COMPRESSIONS:
        raise InvalidError(
            f"Unknown compression {compression!r}; use one of {', '.join(COMPRESSIONS)}."
        )
    if format == "docker" and compression == "zstd":
        raise InvalidError(
            "A docker-archive cannot hold zstd layers (Docker's schema2 has no zstd type); "
            "use --compression gzip or none, or --format oci."
        )
    return compression


def source_date_epoch() -> int | None:
    value = os.environ.get("SOURCE_DATE_EPOCH", "").strip()
    if not value:
        return None
    if not value.isdigit():
        raise InvalidError(f"SOURCE_DATE_EPOCH must be whole seconds since 1970, not {value!r}.")
    return int(value)
