"""Registry credentials and auth challenges, the way Docker reads and answers them.

Credentials come from `$DOCKER_CONFIG/config.json` (default `~/.docker/config.json`): an
`auths` entry holding a base64 `auth` ("user:password") or `username`/`password`. Credential
helpers (`credsStore`, `credHelpers`) are not run: they are external programs, and a push
should not start one behind the user's back.

A from_registry secret gives credentials by its auth kind (definition/registryauth.py): plain
username/password; GCP's service-account JSON as the password of the user `_json_key`; for AWS
ECR the user `AWS` and the token `aws ecr get-login-password` prints (the aws CLI, run with the
secret's keys only, is the one external program started: the secret asked for it).
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from urllib.parse import urlsplit

from ..exception import InvalidError, RegistryError

TYPE_CHECKING = False  # typing.TYPE_CHECKING, without importing typing (_fasttyping.py)
if TYPE_CHECKING:
    from typing import NamedTuple
else:
    from .._namedtuple import NamedTuple  # typing's, made in a tenth of the time

__all__ = ["Challenge", "Credentials", "credentials_for", "parse_challenge", "secret_credentials"]

# Docker Hub's credentials are stored under its v1 index URL, not the v2 registry host.
_HUB_KEYS = ("https://index.docker.io/v1/", "index.docker.io", "docker.io")
HUB_REGISTRY = "registry-1.docker.io"


class Credentials(NamedTuple):
    username: str
    password: str

    def basic(self) -> str:
        import base64

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
    import base64

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


_ecr_tokens: dict[tuple[str, str, str], str] = {}  # valid 12 hours: one per process will do


def secret_credentials(auth: str, env: dict[str, str]) -> Credentials:
    """Credentials from a from_registry secret's `env`, for auth kind "basic", "gcp" or "aws".

    Raises:
        InvalidError: for an ECR role-ARN secret, or when the aws CLI is missing.
        RegistryError: when `aws ecr get-login-password` fails.
    """
    if auth == "basic":
        return Credentials(env["REGISTRY_USERNAME"], env["REGISTRY_PASSWORD"])
    if auth == "gcp":
        return Credentials("_json_key", env["SERVICE_ACCOUNT_JSON"])
    if "AWS_ACCESS_KEY_ID" not in env:
        raise InvalidError(
            "from_aws_ecr() with AWS_ROLE_ARN is not supported locally (Modal assumes the role "
            "with its own identity); give AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY and "
            "AWS_REGION instead."
        )
    memo = (env["AWS_ACCESS_KEY_ID"], env["AWS_REGION"], env.get("AWS_SESSION_TOKEN", ""))
    if memo not in _ecr_tokens:
        _ecr_tokens[memo] = _ecr_password(env)
    return Credentials("AWS", _ecr_tokens[memo])


def _ecr_password(env: dict[str, str]) -> str:
    import shutil
    import subprocess

    aws = shutil.which("aws")
    if aws is None:
        raise InvalidError(
            "from_aws_ecr() needs the aws CLI on PATH to turn the secret's keys into an ECR "
            "login token (`aws ecr get-login-password`)."
        )
    keys = ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_REGION")
    # Only the secret's keys: no profile or credentials file of this machine may stand in.
    child = {k: env[k] for k in keys if k in env}
    child.update(
        PATH=os.environ.get("PATH", "/usr/bin:/bin"),
        AWS_DEFAULT_REGION=env["AWS_REGION"],
        AWS_CONFIG_FILE=os.devnull,
        AWS_SHARED_CREDENTIALS_FILE=os.devnull,
    )
    try:
        proc = subprocess.run(
            [aws, "ecr", "get-login-password", "--region", env["AWS_REGION"]],
            env=child,
            capture_output=True,
            text=True,
            timeout=120,
        )
    except subprocess.TimeoutExpired:
        raise RegistryError("`aws ecr get-login-password` did not answer in 120 s") from None
    token = proc.stdout.strip()
    if proc.returncode != 0 or not token:
        detail = proc.stderr.strip()[-500:] or f"exit status {proc.returncode}"
        raise RegistryError(f"`aws ecr get-login-password` failed: {detail}")
    return token
