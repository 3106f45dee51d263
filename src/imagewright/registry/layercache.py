"""A layer cache shared through an OCI registry: the builder's LayerCache for
`--cache-registry REG/REPO` and $IMAGEWRIGHT_CACHE_REGISTRY.

Each layer is a tiny OCI image in the cache repository, tagged with its step's cache key: the
layer's zstd blob (the store's own, from LayerBlobs, so a zstd export reuses it) and an image
config whose label holds what the store needs to rebuild the LayerRecord. A config-only
(empty) layer has no blob. Before a step runs, its tag is looked up; on a hit the blob is
fetched, its digest checked, unpacked into a scratch area as an overlay upper dir (unpack.py:
whiteouts and opaque dirs become what overlayfs reads) and committed under the same key.

The cache is best effort: the first registry failure is reported once on stderr and the cache
is then left alone for the rest of the process, so the build goes on by running its steps.
Which layers were published is remembered under `<store>/registry/layercache/`, so a fully
cached build with a cache registry sends no request (and never imports httpx). That record is
trusted: a layer deleted from the registry is not published again by a store that sent it.

Trust: whoever can push to the cache repository decides what a cached step contains, as with
any shared build cache; entries are bound to their key and parent but not signed.
"""

from __future__ import annotations

import hashlib
import json
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..exception import InvalidError, RegistryError
from ..oci.reference import parse_reference, split_registry
from ..plan.planner import Plan
from ..store.store import LayerRecord, Store

if TYPE_CHECKING:
    from .client import RegistryClient

__all__ = ["RegistryLayerCache"]

_LABEL = "dev.imagewright.layer"
_FORMAT = 1  # bump when the record or the blob's tar changes meaning
# zstd: only imagewright reads these, and zstd unpacks faster than gzip; LayerBlobs keeps it
_COMPRESSION = "zstd"


class RegistryLayerCache:
    """Looks layers up in, and publishes them to, one registry repository."""

    def __init__(self, target: str):
        ref = parse_reference(target)
        if target.endswith(f":{ref.tag}"):
            raise InvalidError(
                f"the cache registry {target!r} must be REGISTRY/REPO without a tag: "
                "each layer is tagged with its cache key"
            )
        self.registry, self.repository = split_registry(ref.name)
        self.name = f"{self.registry}/{self.repository}"
        self.disabled = False

    # ---- LayerCache -----------------------------------------------------------------------

    def lookup(self, plan: Plan, index: int, store: Store) -> LayerRecord | None:
        if self.disabled:
            return None
        try:
            record = self._fetch(plan, index, store)
        except Exception as exc:  # any failure here must not fail the build
            self._give_up("fetching", exc)
            return None
        if record is not None:
            self._mark(store, record)  # it came from there: never push it back
        return record

    def publish(self, plan: Plan, index: int, store: Store, record: LayerRecord) -> None:
        if self.disabled or self._published(store, record):
            return
        try:
            self._push(plan, index, store, record)
        except Exception as exc:  # any failure here must not fail the build
            self._give_up("publishing", exc)
            return
        self._mark(store, record)

    # ---- fetching --------------------------------------------------------------------------

    def _fetch(self, plan: Plan, index: int, store: Store) -> LayerRecord | None:
        from .client import RegistryClient
        from .pull import LayerRef, pull_layer

        step = plan.steps[index]
        with RegistryClient(self.registry, self.repository, push=False) as client:
            manifest = self._manifest(client, step.key)
            if manifest is None:
                return None
            config_digest = manifest["config"]["digest"]
            config_bytes = b"".join(client.get_blob(config_digest))
        if f"sha256:{hashlib.sha256(config_bytes).hexdigest()}" != config_digest:
            raise RegistryError(f"config blob {config_digest} failed its digest check")
        saved = json.loads(json.loads(config_bytes)["config"]["Labels"][_LABEL])
        if (saved["format"], saved["key"], saved["parent"]) != (_FORMAT, step.key, step.parent_key):
            return None  # a tag that does not hold this step: treat it as a miss
        started = time.monotonic()
        with store.scratch() as area:
            for layer in manifest["layers"]:
                ref = LayerRef(
                    self.registry, self.repository, layer["digest"], layer["size"],
                    layer["mediaType"],
                )  # fmt: skip
                pull_layer(ref, None, area.root, area.upper)
            seconds = time.monotonic() - started
            return store.commit(area, step.key, step.parent_key, step.description, seconds)

    def _manifest(self, client: RegistryClient, key: str) -> dict[str, Any] | None:
        """The manifest tagged `key`, or None when the registry has no such tag."""
        from ..oci.manifest import MANIFEST_MEDIA_TYPE

        try:
            data, _ = client.get_manifest(key, (MANIFEST_MEDIA_TYPE,))
        except RegistryError as exc:
            if exc.status == 404:
                return None
            raise
        manifest: dict[str, Any] = json.loads(data)  # a wrong shape fails the (best-effort) fetch
        return manifest

    # ---- publishing ------------------------------------------------------------------------

    def _push(self, plan: Plan, index: int, store: Store, record: LayerRecord) -> None:
        from ..oci.manifest import (
            CONFIG_MEDIA_TYPE,
            MANIFEST_MEDIA_TYPE,
            Descriptor,
            canonical,
            image_manifest,
            layer_media_type,
        )
        from ..store.blobs import LayerBlob, LayerBlobs
        from .client import RegistryClient

        step = plan.steps[index]
        with RegistryClient(self.registry, self.repository) as client:
            if self._manifest(client, step.key) is not None:
                return  # another store published it first
            blob: LayerBlob | None = None
            if not record.empty:
                blobs = LayerBlobs(store)
                blob = blobs.cached(record, _COMPRESSION, None) or blobs.make(
                    record, _diffs_below(plan, index, store), _COMPRESSION, None
                )
                if not client.blob_exists(blob.digest):
                    client.upload_blob(blob.digest, blob.path)
            saved = {
                "format": _FORMAT,
                "key": step.key,
                "parent": step.parent_key,
                "description": record.description,
                "empty": record.empty,
                "size": record.size,
                "seconds": record.seconds,
                "blob_size": blob.size if blob else 0,
            }
            config = canonical(
                {
                    "architecture": "amd64",
                    "os": "linux",
                    "config": {"Labels": {_LABEL: json.dumps(saved, sort_keys=True)}},
                    "rootfs": {"type": "layers", "diff_ids": [blob.diff_id] if blob else []},
                }
            )
            config_desc = Descriptor.of(CONFIG_MEDIA_TYPE, config)
            if not client.blob_exists(config_desc.digest):
                client.upload_blob(config_desc.digest, config)
            layers = []
            if blob is not None:
                layers.append(Descriptor(layer_media_type(_COMPRESSION), blob.digest, blob.size))
            manifest = image_manifest(config_desc, layers)
            digest = Descriptor.of(MANIFEST_MEDIA_TYPE, manifest).digest
            client.put_manifest(step.key, manifest, MANIFEST_MEDIA_TYPE, digest)

    def _marker(self, store: Store, record: LayerRecord) -> Path:
        where = self.name.replace(":", "_").replace("/", "_")
        return store.root / "registry" / "layercache" / where / record.key

    def _published(self, store: Store, record: LayerRecord) -> bool:
        # A layer rebuilt with --force keeps its key but not its `created`: publish it again.
        try:
            return self._marker(store, record).read_text() == repr(record.created)
        except FileNotFoundError:
            return False

    def _mark(self, store: Store, record: LayerRecord) -> None:
        marker = self._marker(store, record)
        marker.parent.mkdir(parents=True, exist_ok=True)
        marker.write_text(repr(record.created))

    def _give_up(self, doing: str, exc: Exception) -> None:
        self.disabled = True
        print(
            f"Warning: layer cache {self.name}: {doing} failed ({type(exc).__name__}: {exc}); "
            "building without the cache",
            file=sys.stderr,
        )


def _diffs_below(plan: Plan, index: int, store: Store) -> list[Path]:
    """The diff dirs under step `index` (top first), which decide which whiteouts to keep."""
    below = []
    for step in plan.steps[:index]:
        record = store.lookup(step.key)
        if record is not None and not record.empty:
            below.append(store.layer_dir(step.key) / "diff")
    return below[::-1]
