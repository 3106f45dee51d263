"""Operation value types: the instructions one image layer is made of.

A layer is a tuple of ops, much like the lines of a Dockerfile stage. Ops are pure data: they
name local paths but never read them; the planner hashes local content into cache keys.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

TYPE_CHECKING = False  # typing.TYPE_CHECKING, without importing typing (_fasttyping.py)
if TYPE_CHECKING:
    from typing import NamedTuple, TypeAlias

    from ..volume import Volume
    from .image import Image
else:
    from .._namedtuple import NamedTuple  # typing's, made in a tenth of the time

__all__ = [
    "Bootstrap",
    "CopyFromImage",
    "CopyLocal",
    "Download",
    "FromRegistry",
    "Run",
    "RunFunction",
    "SetConfig",
]

if TYPE_CHECKING:  # (a name for annotations only, as is Op below)
    IgnoreSpec: TypeAlias = tuple[str, ...] | Callable[[Path], bool]


class Bootstrap(NamedTuple):
    """Create a base root filesystem from a distribution's package archive."""

    distro: str  # "debian" or "ubuntu"
    python_version: str | None  # None: the host's major.minor, validated at plan time


class FromRegistry(NamedTuple):
    """Start from an image in an OCI registry (credentials come from the layer's secret)."""

    tag: str
    add_python: str | None = None  # a series to add as a standalone CPython in /usr/local
    auth: str = ""  # "aws", "gcp" or "basic" (definition/registryauth.py); "" for none


class Run(NamedTuple):
    """Run one shell command in the sandbox, with the image's SHELL, ENV and WORKDIR."""

    command: str
    # uv to bind at /.uv/uv while the command runs: None for none, "" for the uv that ships
    # with imagewright, or a version to fetch from PyPI (uv_version=)
    uv: str | None = None
    argv: tuple[str, ...] | None = None  # Dockerfile exec form: run this argv, not the SHELL
    cache_targets: tuple[str, ...] = ()  # RUN --mount=type=cache targets, bound from the store
    # Dockerfile RUN: /tmp is the image's own, as in Docker, rather than a private tmpfs that
    # nothing written to survives (Modal's steps)
    image_tmp: bool = False
    env: tuple[tuple[str, str], ...] = ()  # for this command only (a Dockerfile's build args)


class CopyLocal(NamedTuple):
    """Copy a local file or directory tree into the image.

    `remote` may be relative; it then resolves against the image's WORKDIR. A remote ending in
    "/" (or ".") names a directory that a copied file goes into under its own name.
    """

    local: str
    remote: str
    ignore: IgnoreSpec = ()
    is_dir: bool = False
    chmod: int | None = None  # COPY --chmod: the mode of every copied file and directory
    extract: bool = False  # ADD of a local tar archive: unpack it into `remote`
    owner: str | None = None  # COPY --chown: user[:group], resolved in the image


class Download(NamedTuple):
    """Dockerfile `ADD <url> <remote>`: a file fetched when the image is planned (mode 600
    unless `chmod`, as in Docker). `remote` names the file and may be relative, as in CopyLocal.
    """

    url: str
    remote: str
    checksum: str | None = None  # ADD --checksum=sha256:<hex>
    chmod: int | None = None
    owner: str | None = None


class CopyFromImage(NamedTuple):
    """Copy paths out of another image's root filesystem (Dockerfile `COPY --from=stage`).

    Each source is a path in `source`; a directory's contents go into `remote`, a file
    becomes `remote` (or goes into it, when `remote` ends in "/"). `remote` may be relative,
    as in CopyLocal.
    """

    source: Image
    paths: tuple[str, ...]  # may hold wildcards, matched in the source image
    remote: str
    chmod: int | None = None
    owner: str | None = None  # --chown; without it, entries keep their owners in `source`


class SetConfig(NamedTuple):
    """Change image config: ENV, WORKDIR, ENTRYPOINT, CMD, SHELL, USER or LABEL."""

    field: str  # one of ImageConfig's field names
    value: tuple[str, ...] | tuple[tuple[str, str], ...] | str | None


class RunFunction(NamedTuple):
    """Call a Python function in a container of the image; what it writes becomes the layer."""

    function: Callable[..., object]
    args: tuple[object, ...]
    kwargs: tuple[tuple[str, object], ...]
    timeout: float
    include_source: bool
    # (mount point, volume): bound read-write, so what the function writes there stays out of
    # the layer
    volumes: tuple[tuple[str, Volume], ...] = ()


if TYPE_CHECKING:
    Op: TypeAlias = (
        Bootstrap
        | FromRegistry
        | Run
        | CopyLocal
        | Download
        | CopyFromImage
        | SetConfig
        | RunFunction
    )
