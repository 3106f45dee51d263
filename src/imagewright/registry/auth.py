"""Registry credentials and auth challenges, the way Docker reads and answers them.

Credentials come from `$DOCKER_CONFIG/config.json` (default `~/.docker/config.json`): an
`auths` entry holding a base64 `auth` ("user:password") or `username`/`password`. Credential
helpers (`credsStore`, `credHelpers`) are not run: they are external programs, and a push
should not start one behind the user's back.
"""

from __future__ import annotations

import base64
import json
import os
import re
from pathlib import Path
from typing import NamedTuple
from urllib.parse import urlsplit

from ..exception import InvalidError

__all__ = ["Challenge", "Credentials", "credentials_for", "parse_challenge"]

# Docker Hub's credentials are stored under its v1 index URL, not the v2 registry host.
_HUB_KEYS = ("https://index.docker.io/v1/", "index.docker.io", "docker.io")
HUB_REGISTRY = "registry-1.docker.io"


class Credentials(NamedTuple):
    username: str
    password: str

    def basic(self) -> str:
        token = base64.b64encode(f"{self.username}:{self.password}".encode()).decode()
        return f"Basic {token}"


class Challenge(NamedTuple):
    scheme: str  # "basic" or "bearer", lowercased
    params: dict[str, str]  # realm, service, scope, ...


def credentials_for(registry: str) -> Credentials | None:
    """The stored credentials for `registry` (host[:port]), or None."""
    directory = os.environ.get("DOCKER_CONFIG") or os.path.expanduser("~/.docker")
    path = Path(directory) / "config.json"
    try:
        auths = json.loads(path.read_text()).get("auths") or {}
    except FileNotFoundError:
        return None
    except ValueError as exc:
        raise InvalidError(f"{path} is not valid JSON: {exc}") from None
    wanted = _HUB_KEYS if registry == HUB_REGISTRY else (registry,)
    for key, entry in auths.items():
        host = urlsplit(key).netloc if "://" in key else key.rstrip("/")
        if key in wanted or host in wanted:
            return _decode(entry, path, key)
    return None


def _decode(entry: dict[str, str], path: Path, key: str) -> Credentials | None:
    if entry.get("username") and entry.get("password"):
        return Credentials(entry["username"], entry["password"])
    if not entry.get("auth"):
        return None
    try:
        username, sep, password = base64.b64decode(entry["auth"]).decode().partition(":")
    except ValueError:
        sep = ""
    if not sep:
        raise InvalidError(f"{path}: the auth entry for {key} is not base64 of 'user:password'")
    return Credentials(username, password)


_PARAM = re.compile(r'(\w+)=(?:"((?:[^"\\]|\\.)*)"|([^\s,]+))')


def parse_challenge(header: str) -> Challenge:
    """Split a WWW-Authenticate header: `Bearer realm="…",service="…",scope="…"`."""
    scheme, _, rest = header.strip().partition(" ")
    params = {m[1].lower(): m[2] if m[2] is not None else m[3] for m in _PARAM.finditer(rest)}
    return Challenge(scheme.lower(), params)
