"""The JSON documents of an image: config, manifest, index, and Docker's manifest.json.

Every document is serialised canonically (sorted keys, no spaces), so the same inputs always
give the same bytes and therefore the same digests: the config digest is the image ID, the
manifest digest is what `skopeo inspect` and registries report.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping, Sequence

from .._digest import hexdigest
from ..definition.config import ImageConfig

TYPE_CHECKING = False  # typing.TYPE_CHECKING, without importing typing (_fasttyping.py)
if TYPE_CHECKING:
    from typing import NamedTuple
else:
    from .._namedtuple import NamedTuple  # typing's, made in a tenth of the time

__all__ = [
    "CONFIG_MEDIA_TYPE",
    "INDEX_MEDIA_TYPE",
    "LAYOUT_FILE",
    "MANIFEST_MEDIA_TYPE",
    "Descriptor",
    "HistoryEntry",
    "canonical",
    "docker_manifest",
    "image_config",
    "image_index",
    "image_manifest",
    "layer_media_type",
    "rfc3339",
]

INDEX_MEDIA_TYPE = "application/vnd.oci.image.index.v1+json"
MANIFEST_MEDIA_TYPE = "application/vnd.oci.image.manifest.v1+json"
CONFIG_MEDIA_TYPE = "application/vnd.oci.image.config.v1+json"
_LAYER_MEDIA_TYPES = {
    "gzip": "application/vnd.oci.image.layer.v1.tar+gzip",
    "zstd": "application/vnd.oci.image.layer.v1.tar+zstd",
    "none": "application/vnd.oci.image.layer.v1.tar",
}
LAYOUT_FILE = b'{"imageLayoutVersion":"1.0.0"}'  # the `oci-layout` file


def canonical(document: object) -> bytes:
    return json.dumps(document, sort_keys=True, separators=(",", ":")).encode()


def layer_media_type(compression: str) -> str:
    return _LAYER_MEDIA_TYPES[compression]


def rfc3339(epoch: int) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(epoch))


class Descriptor(NamedTuple):
    """A pointer to a blob: what it is, its digest and its size as stored."""

    media_type: str
    digest: str
    size: int
    annotations: Mapping[str, str] = {}
    platform: Mapping[str, str] = {}

    @classmethod
    def of(cls, media_type: str, data: bytes) -> Descriptor:
        return cls(media_type, f"sha256:{hexdigest(data)}", len(data))

    def to_json(self) -> dict[str, object]:
        out: dict[str, object] = {
            "mediaType": self.media_type,
            "digest": self.digest,
            "size": self.size,
        }
        if self.annotations:
            out["annotations"] = dict(self.annotations)
        if self.platform:
            out["platform"] = dict(self.platform)
        return out


class HistoryEntry(NamedTuple):
    created_by: str  # the step's Dockerfile-like lines
    comment: str  # the step as the user wrote it
    empty_layer: bool  # no filesystem change, so no entry in rootfs.diff_ids


def image_config(
    config: ImageConfig,
    diff_ids: Sequence[str],
    history: Sequence[HistoryEntry],
    *,
    created: str,
    architecture: str,
) -> bytes:
    """The image config; `created` is fixed by the caller so the image ID is reproducible."""
    entries = []
    for entry in history:
        item: dict[str, object] = {
            "created": created,
            "created_by": entry.created_by,
            "comment": entry.comment,
        }
        if entry.empty_layer:
            item["empty_layer"] = True
        entries.append(item)
    return canonical(
        {
            "created": created,
            "architecture": architecture,
            "os": "linux",
            "config": config.to_json(),
            "rootfs": {"type": "layers", "diff_ids": list(diff_ids)},
            "history": entries,
        }
    )


def image_manifest(config: Descriptor, layers: Sequence[Descriptor]) -> bytes:
    return canonical(
        {
            "schemaVersion": 2,
            "mediaType": MANIFEST_MEDIA_TYPE,
            "config": config.to_json(),
            "layers": [layer.to_json() for layer in layers],
        }
    )


def image_index(manifests: Sequence[Mapping[str, object]]) -> bytes:
    """An index of manifest descriptors, given in their JSON form (`Descriptor.to_json()`)."""
    return canonical(
        {"schemaVersion": 2, "mediaType": INDEX_MEDIA_TYPE, "manifests": list(manifests)}
    )


def docker_manifest(config_path: str, layer_paths: Sequence[str], repo_tag: str) -> bytes:
    """`manifest.json` of a docker-archive: what `docker load` reads (moby image spec v1.2)."""
    return canonical([{"Config": config_path, "RepoTags": [repo_tag], "Layers": list(layer_paths)}])
