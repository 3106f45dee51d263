"""Dockerfile `ADD <url>`: fetch the file when the image is planned (RegistryResolver.fetch_url),
so that its content, not its address, keys the step (a changed file rebuilds it, as in BuildKit).

Each URL is fetched once per process into a temporary directory removed at exit; the copy step
then reads it like any local file.
"""

from __future__ import annotations

import hashlib
import os
import tempfile

from .._http import http_client
from ..exception import InvalidError

__all__ = ["fetch"]

_fetched: dict[str, tuple[str, str]] = {}  # url -> (local path, sha256 of the content)
_downloads: tempfile.TemporaryDirectory[str] | None = None


def fetch(url: str, where: str, checksum: str | None = None) -> tuple[str, str]:
    """(local path, sha256) of what `url` serves; InvalidError naming `where` when it cannot be
    had, or when it does not match `checksum` ("sha256:<hex>", ADD --checksum)."""
    if url not in _fetched:
        _fetched[url] = _download(url, where)
    path, digest = _fetched[url]
    if checksum is not None and checksum != f"sha256:{digest}":
        raise InvalidError(f"{where}: ADD {url}: checksum is sha256:{digest}, not {checksum}")
    return path, digest


def _download(url: str, where: str) -> tuple[str, str]:
    import httpx

    global _downloads
    if _downloads is None:
        _downloads = tempfile.TemporaryDirectory(prefix="imagewright-add-")
    fd, path = tempfile.mkstemp(dir=_downloads.name)
    digest = hashlib.sha256()
    try:
        with (
            os.fdopen(fd, "wb") as out,
            http_client(follow_redirects=True) as client,
            client.stream("GET", url) as response,
        ):
            if response.status_code != 200:
                raise InvalidError(f"{where}: ADD {url}: HTTP {response.status_code}")
            for chunk in response.iter_bytes(1 << 20):
                digest.update(chunk)
                out.write(chunk)
    except httpx.HTTPError as exc:
        raise InvalidError(f"{where}: ADD {url}: {exc}") from None
    return path, digest.hexdigest()
