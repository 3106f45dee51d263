"""Write an exported image: an OCI image layout directory, a tar of one, or a docker-archive.

The docker-archive is one tar that is both an OCI layout and what `docker load` reads: Docker's
`manifest.json` (Config, RepoTags, Layers) points into the same `blobs/sha256/` files, as
`docker save` has written since Docker 25 and BuildKit's docker exporter does.

A layout directory may already hold other images: blobs are added, and the index keeps every
manifest except one with the same tag (`org.opencontainers.image.ref.name`), as skopeo does.
Blobs come into a directory as copies of the store's (never hard links: editing an output in
place must not reach the store), and every blob copied out of the store, into a directory or an
archive, is checked against its digest on the way (CorruptBlobError otherwise). A blob already
in a directory is kept only if it has its digest. The `oci-layout` file is written first, so an
export stopped midway can be run again into the same directory, and the index last, so a reader
never sees it name a blob that is not there yet.
"""

from __future__ import annotations

import io
import json
from collections.abc import Mapping
from pathlib import Path

from ..exception import InvalidError
from ..oci.manifest import LAYOUT_FILE, Descriptor, image_index
from ..store.atomic import CorruptBlobError, atomic_file, file_digest, place_file, write_atomic

TYPE_CHECKING = False  # typing.TYPE_CHECKING, without importing typing (_fasttyping.py)
if TYPE_CHECKING:
    import tarfile
    from typing import BinaryIO, NamedTuple
else:
    from .._namedtuple import NamedTuple  # typing's, made in a tenth of the time

__all__ = ["ImageFiles", "write_archive", "write_oci_dir"]

REF_NAME = "org.opencontainers.image.ref.name"
_COPY_BUFFER = 1 << 20


class ImageFiles(NamedTuple):
    """Everything an output holds besides the fixed `oci-layout` file."""

    manifest: Descriptor  # the index entry: digest, tag annotations, platform
    config: Descriptor
    blobs: Mapping[str, Path | bytes]  # digest -> the store's file, or the bytes themselves
    docker_manifest: bytes | None  # Docker's manifest.json, for a docker-archive
    # blobs made just now (digested as they were written, moments ago): copied unchecked
    fresh: frozenset[str] = frozenset()


def blob_name(digest: str) -> str:
    algorithm, _, encoded = digest.partition(":")
    return f"blobs/{algorithm}/{encoded}"


def write_oci_dir(path: Path, files: ImageFiles) -> None:
    """Write (or add to) the OCI layout directory `path`."""
    if path.exists() and not path.is_dir():
        raise InvalidError(f"{path} exists and is not a directory; an OCI layout is a directory")
    layout = path / "oci-layout"
    if path.is_dir() and any(path.iterdir()) and not layout.is_file():
        raise InvalidError(f"{path} is not empty and holds no OCI layout; pick another path")
    if not layout.is_file():  # first, so an export stopped midway can be run again into it
        write_atomic(layout, LAYOUT_FILE)
    for digest, source in sorted(files.blobs.items()):
        dest = path / blob_name(digest)
        if dest.is_file() and dest.stat().st_size == _size(source) and file_digest(dest) == digest:
            continue  # already there, intact
        dest.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(source, Path):
            place_file(source, dest, None if digest in files.fresh else digest)
        else:
            write_atomic(dest, source)
    write_atomic(path / "index.json", image_index(_merged(path / "index.json", files.manifest)))


def _merged(index_path: Path, manifest: Descriptor) -> list[dict[str, object]]:
    """The manifests of an existing index, minus any with our tag, plus ours."""
    try:
        existing = json.loads(index_path.read_text()).get("manifests") or []
    except FileNotFoundError:
        existing = []
    except ValueError as exc:
        raise InvalidError(f"{index_path} is not valid JSON: {exc}") from None
    tag = manifest.annotations.get(REF_NAME)
    kept = [m for m in existing if (m.get("annotations") or {}).get(REF_NAME) != tag]
    return [*kept, manifest.to_json()]


def write_archive(path: Path, files: ImageFiles, *, mtime: int) -> None:
    """Write the layout as one tar at `path` (with manifest.json for a docker-archive).

    Members are sorted, owned by 0:0 with no user or group names, and dated `mtime`, so the
    same image always gives the same archive bytes.
    """
    members: list[tuple[str, Path | bytes | None, str]] = [("blobs/", None, "")]
    algorithms = sorted({d.partition(":")[0] for d in files.blobs})
    members += [(f"blobs/{a}/", None, "") for a in algorithms]
    members += [
        (blob_name(d), files.blobs[d], "" if d in files.fresh else d) for d in sorted(files.blobs)
    ]
    members.append(("index.json", image_index([files.manifest.to_json()]), ""))
    if files.docker_manifest is not None:
        members.append(("manifest.json", files.docker_manifest, ""))
    members.append(("oci-layout", LAYOUT_FILE, ""))
    import tarfile  # (only archives need it: a push or a layout directory does not)

    with atomic_file(path.parent, path.name) as out:
        # blobs copied 1 MiB at a time: tarfile's default, 16 KiB, costs 0.2-0.3 s more on
        # 400 MB here (the parameter is TarFile's own, since Python 3.8, but not documented)
        with tarfile.TarFile(
            fileobj=out.file, mode="w", format=tarfile.PAX_FORMAT, copybufsize=_COPY_BUFFER
        ) as tar:
            for name, source, digest in members:
                _add(tar, name, source, mtime, digest)
        out.name = path.name


def _add(
    tar: tarfile.TarFile, name: str, source: Path | bytes | None, mtime: int, digest: str
) -> None:
    """Add one member; a file `source` is checked against `digest` as it is copied, if any."""
    import tarfile

    info = tarfile.TarInfo(name)
    info.mtime = mtime
    if source is None:
        info.type, info.mode = tarfile.DIRTYPE, 0o755
        tar.addfile(info)
        return
    info.mode, info.size = 0o644, _size(source)
    if isinstance(source, Path) and not digest:
        with open(source, "rb") as f:
            tar.addfile(info, f)
    elif isinstance(source, Path):
        with open(source, "rb") as f:
            hashing = _Hashing(f)
            tar.addfile(info, hashing)
        if f"sha256:{hashing.sha.hexdigest()}" != digest:  # the archive is then not kept
            raise CorruptBlobError(source, digest)
    else:
        tar.addfile(info, io.BytesIO(source))


class _Hashing:
    """A reader that hashes what is read through it: a blob is checked as it is archived."""

    def __init__(self, f: BinaryIO):
        import hashlib  # (layers are big: OpenSSL's, at once)

        self.f = f
        self.sha = hashlib.sha256()

    def read(self, size: int = -1) -> bytes:
        data = self.f.read(size)
        self.sha.update(data)
        return data


def _size(source: Path | bytes) -> int:
    return source.stat().st_size if isinstance(source, Path) else len(source)
