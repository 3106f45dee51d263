"""Pull side of from_registry: resolve a reference to one linux/amd64 image, then fetch and
unpack its layers, verifying every digest.

`resolve` runs at plan time and fetches only the manifest and config (small), so steps on top
of a pulled image get the right cache keys and base config. A reference with a digest
(`name@sha256:…`, `name:tag@sha256:…`) is pulled by that digest alone, as Docker does, and what
the registry serves for it must hash to it. `pull_layer` runs when a layer's step is not in the
store. Layers are streamed to a file while being hashed, checked against the manifest's digest,
and only then decompressed and unpacked. A build with several layers to pull downloads them
ahead, in parallel (`Prefetch`), while the steps before them unpack: each step then takes its
checked blob, or downloads it itself if the prefetch has not.

A registry's documents are untrusted input: a manifest, index or config of the wrong shape, or a
digest that is not `sha256:<64 hex>`, is a RegistryError naming the image, never a KeyError.
"""

from __future__ import annotations

import errno
import hashlib
import json
import re
from pathlib import Path
from typing import IO, Any, NamedTuple

from ..definition.config import DEFAULT_PATH, ImageConfig
from ..definition.reference import parse_pull_reference
from ..exception import RegistryError
from ..oci.compression import gunzip
from ..oci.reference import split_registry
from ..oci.unpack import LayerStream, unpack_layer
from .auth import Credentials
from .client import RegistryClient

__all__ = ["LayerRef", "Prefetch", "PulledImage", "prefetching", "pull_layer", "resolve"]

_INDEX_TYPES = (
    "application/vnd.oci.image.index.v1+json",
    "application/vnd.docker.distribution.manifest.list.v2+json",
)
_MANIFEST_TYPES = (
    "application/vnd.oci.image.manifest.v1+json",
    "application/vnd.docker.distribution.manifest.v2+json",
)
_PLATFORM = {"os": "linux", "architecture": "amd64"}
_DIGEST = re.compile(r"sha256:[0-9a-f]{64}")


class LayerRef(NamedTuple):
    """Where one layer blob lives and what it is: enough to fetch and check it."""

    registry: str
    repository: str
    digest: str
    size: int
    media_type: str
    reference: str = ""  # the image it belongs to, as the user wrote it, for error messages


class PulledImage(NamedTuple):
    reference: str  # as the user wrote it
    manifest_digest: str
    config: ImageConfig
    layers: tuple[LayerRef, ...]


def _digest(data: bytes) -> str:
    return f"sha256:{hashlib.sha256(data).hexdigest()}"


def resolve(tag: str, credentials: Credentials | None) -> PulledImage:
    """The linux/amd64 image `tag` names: manifest digest, config and layers."""
    ref = parse_pull_reference(tag)
    registry, repository = split_registry(ref.name)
    what = f"manifest of {tag}"
    try:
        with RegistryClient(registry, repository, credentials=credentials, push=False) as client:
            data, media_type = client.get_manifest(ref.manifest, (*_INDEX_TYPES, *_MANIFEST_TYPES))
            if ref.digest is not None and _digest(data) != ref.digest:
                raise RegistryError(
                    f"{tag}: {registry} served a manifest whose digest is {_digest(data)}, not "
                    f"the {ref.digest} the reference names; refusing it"
                )
            document = _load(data, what)
            media_type = document.get("mediaType") or media_type
            if media_type in _INDEX_TYPES:
                what = f"image index of {tag}"
                chosen = _checked_digest(_pick_platform(document, tag)["digest"], what)
                data, media_type = client.get_manifest(chosen, _MANIFEST_TYPES)
                if _digest(data) != chosen:
                    raise RegistryError(f"{tag}: manifest {chosen} arrived corrupted")
                what = f"manifest {chosen} of {tag}"
                document = _load(data, what)
                media_type = document.get("mediaType") or media_type
            if media_type not in _MANIFEST_TYPES:
                raise RegistryError(f"{tag}: unsupported manifest type {media_type!r}")
            config_digest = _checked_digest(document["config"]["digest"], what)
            layers = tuple(
                LayerRef(registry, repository, _checked_digest(d["digest"], what), *_sized(d), tag)
                for d in document.get("layers") or []
            )
            config_bytes = b"".join(client.get_blob(config_digest))
            if _digest(config_bytes) != config_digest:
                raise RegistryError(f"{tag}: config blob {config_digest} failed its digest check")
        what = f"config of {tag}"
        config = _image_config(_load(config_bytes, what).get("config") or {})
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        detail = f"no {exc}" if isinstance(exc, KeyError) else str(exc)
        raise RegistryError(f"{what} is malformed ({type(exc).__name__}: {detail})") from None
    return PulledImage(tag, _digest(data), config, layers)


def _sized(descriptor: dict[str, Any]) -> tuple[int, str]:
    """A layer descriptor's size and media type."""
    return int(descriptor["size"]), str(descriptor.get("mediaType", ""))


def _checked_digest(value: object, what: str) -> str:
    """`value` if it is a sha256 digest: it goes into URLs and is compared with hashes."""
    if not isinstance(value, str) or not _DIGEST.fullmatch(value):
        raise RegistryError(f"{what} names {value!r}, which is not a sha256 digest")
    return value


def _load(data: bytes, what: str) -> dict[str, Any]:
    try:
        document = json.loads(data)
    except ValueError as exc:
        raise RegistryError(f"{what} is not valid JSON: {exc}") from None
    if not isinstance(document, dict):
        raise RegistryError(f"{what} is not a JSON object")
    return document


def _pick_platform(index: dict[str, Any], tag: str) -> dict[str, Any]:
    offered = []
    entries: list[dict[str, Any]] = index.get("manifests") or []  # a bad shape: see resolve()
    for entry in entries:
        platform = entry.get("platform") or {}
        if all(platform.get(k) == v for k, v in _PLATFORM.items()):
            return entry
        offered.append(f"{platform.get('os')}/{platform.get('architecture')}")
    raise RegistryError(f"{tag} has no linux/amd64 image; it offers {', '.join(offered) or 'none'}")


def _image_config(config: dict[str, Any]) -> ImageConfig:
    """The pulled image's runtime settings, as the base config of what is built on it."""
    split = (e.partition("=") for e in config.get("Env") or [] if "=" in e)
    env = tuple((k, v) for k, _, v in split)
    if not any(k == "PATH" for k, _ in env):
        env = (("PATH", DEFAULT_PATH), *env)  # Docker's default when an image sets none
    entrypoint, cmd = config.get("Entrypoint"), config.get("Cmd")
    return ImageConfig(
        env=env,
        workdir=config.get("WorkingDir") or "/",
        user=config.get("User") or "",
        entrypoint=tuple(entrypoint) if entrypoint else None,
        cmd=tuple(cmd) if cmd else None,
        shell=tuple(config.get("Shell") or ("/bin/sh", "-c")),
        labels=tuple(sorted((config.get("Labels") or {}).items())),
    )


def pull_layer(layer: LayerRef, credentials: Credentials | None, scratch: Path, upper: Path) -> int:
    """Fetch `layer` (or take it from the running prefetch), check its digest, unpack it into
    `upper`; returns entries."""
    what = _what(layer)
    blob = _prefetch.take(layer.digest) if _prefetch is not None else None
    if blob is None:
        blob = scratch / "blob"
        _download(layer, credentials, blob)
    try:
        with open(blob, "rb") as raw, _decompressed(raw, layer.media_type, what) as stream:
            return unpack_layer(stream, upper, what)
    finally:
        blob.unlink()


def _what(layer: LayerRef) -> str:
    return f"layer {layer.digest} of {layer.reference or f'{layer.registry}/{layer.repository}'}"


def _download(layer: LayerRef, credentials: Credentials | None, blob: Path) -> None:
    """Stream `layer` to the file `blob`, hashing it; a RegistryError unless it checks out."""
    what = _what(layer)
    sha = hashlib.sha256()
    with (
        RegistryClient(
            layer.registry, layer.repository, credentials=credentials, push=False
        ) as client,
        open(blob, "wb") as out,
    ):
        try:
            for piece in client.get_blob(layer.digest):
                sha.update(piece)
                try:
                    out.write(piece)
                except OSError as exc:  # no space left, say: name the file, as open() would
                    if exc.errno in (errno.ENOSPC, errno.EDQUOT) and exc.filename is None:
                        raise OSError(exc.errno, exc.strerror, str(blob)) from None
                    raise
        except RegistryError as exc:  # the client names the repository; say which image
            raise RegistryError(f"{what}: {exc}", exc.status, exc.code) from None
    if f"sha256:{sha.hexdigest()}" != layer.digest:
        blob.unlink()
        raise RegistryError(
            f"{what}: the blob failed its digest check (got sha256:{sha.hexdigest()})"
        )


class Prefetch:
    """Downloads of the layers a build is about to pull, a few at a time, into `directory`.

    Only the build's own thread takes blobs; a download that failed is retried by the step,
    which reports it. `close()` (the build's end) stops what has not started and removes
    whatever was not taken.
    """

    _WORKERS = 4

    def __init__(self, directory: Path, layers: list[tuple[LayerRef, Credentials | None]]):
        import concurrent.futures

        self._directory = directory
        self._pool = concurrent.futures.ThreadPoolExecutor(
            self._WORKERS, thread_name_prefix="imagewright-prefetch"
        )
        self._pending = {
            layer.digest: self._pool.submit(self._fetch, layer, credentials)
            for layer, credentials in layers
        }

    def _fetch(self, layer: LayerRef, credentials: Credentials | None) -> Path:
        blob = self._directory / layer.digest.replace(":", "-")
        _download(layer, credentials, blob)
        return blob

    def take(self, digest: str) -> Path | None:
        """The checked blob of `digest`, once downloaded; None if it was not prefetched or
        its download failed (the caller then downloads it and reports what goes wrong)."""
        future = self._pending.pop(digest, None)
        if future is None:
            return None
        try:
            return future.result()
        except Exception:
            return None

    def close(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)
        for future in self._pending.values():
            if not future.cancelled() and future.exception() is None:
                future.result().unlink(missing_ok=True)
        self._pending.clear()


_prefetch: Prefetch | None = None  # the build's, while it runs (execute/builder.py)


def prefetching(prefetch: Prefetch | None) -> None:
    """Make `prefetch` the one `pull_layer` takes blobs from (None: no more)."""
    global _prefetch
    _prefetch = prefetch


def _decompressed(raw: IO[bytes], media_type: str, what: str) -> LayerStream:
    """The layer's tar stream, by media type (checked against the blob's first bytes)."""
    magic = raw.read(4)
    raw.seek(0)
    if media_type.endswith("gzip") or (not media_type and magic[:2] == b"\x1f\x8b"):
        return gunzip(raw)  # type: ignore[arg-type]  # a file opened "rb"
    if media_type.endswith("zstd") or (not media_type and magic == b"\x28\xb5\x2f\xfd"):
        import zstandard

        return zstandard.ZstdDecompressor().stream_reader(raw)
    if media_type.endswith(".tar") or media_type.endswith("diff.tar") or not media_type:
        return raw
    raise RegistryError(f"{what}: unsupported layer media type {media_type!r}")
