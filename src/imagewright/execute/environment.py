"""The environment and mounts a build step gets: image ENV, secrets, host CA, proxies, caches.

The host CA bundle, proxy settings and package caches reach the step through environment
variables and bind mounts only, so none of them is written into a layer or the image config.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping
from functools import cache
from pathlib import Path

from .._digest import hexdigest
from ..definition.config import ImageConfig
from ..exception import ExecutionError
from ..store.store import Store
from .overlay import Bind

__all__ = [
    "cache_binds",
    "cache_scope",
    "container_env",
    "host_ca_bundle",
    "step_binds",
    "step_env",
    "uv_binary",
]

_CA_IN_SANDBOX = "/tmp/.imagewright/ca-certificates.crt"
_CACHE_IN_SANDBOX = "/tmp/.imagewright/cache"
_CA_VARS = (
    "SSL_CERT_FILE",
    "PIP_CERT",
    "REQUESTS_CA_BUNDLE",
    "CURL_CA_BUNDLE",
    "GIT_SSL_CAINFO",
    "NODE_EXTRA_CA_CERTS",
)
_PROXY_VARS = (
    "HTTP_PROXY",
    "HTTPS_PROXY",
    "NO_PROXY",
    "ALL_PROXY",
    "http_proxy",
    "https_proxy",
    "no_proxy",
    "all_proxy",
    "UV_PYTHON_INSTALL_MIRROR",
)


@cache
def host_ca_bundle() -> str | None:
    """The host's CA bundle: TLS-intercepting proxies are trusted only through it."""
    for path in (
        os.environ.get("SSL_CERT_FILE"),
        "/etc/ssl/certs/ca-certificates.crt",
        "/etc/pki/tls/certs/ca-bundle.crt",
    ):
        if path and os.path.isfile(path):
            return path
    return None


def container_env(config: ImageConfig, extra: Mapping[str, str]) -> dict[str, str]:
    """Any container's environment: HOME, the host CA bundle and proxy settings (which reach
    containers without being written into the image), then the image's ENV, then `extra`."""
    # another user's HOME comes from the image's /etc/passwd, inside the sandbox (user.py)
    env = {"HOME": "/root"} if config.runs_as_root else {}
    if host_ca_bundle():
        env.update(dict.fromkeys(_CA_VARS, _CA_IN_SANDBOX))
    env.update({k: os.environ[k] for k in _PROXY_VARS if k in os.environ})
    env.update(config.env_dict())
    env.update(extra)
    return env


def step_env(config: ImageConfig, secrets: dict[str, str]) -> dict[str, str]:
    """A build step's environment: package caches on the bind-mounted host caches, then the
    container environment with the step's secrets."""
    caches = {
        "UV_CACHE_DIR": f"{_CACHE_IN_SANDBOX}/uv",
        "UV_LINK_MODE": "copy",  # the cache and the layer are different filesystems
        "PIP_CACHE_DIR": f"{_CACHE_IN_SANDBOX}/pip",
        "PIP_ROOT_USER_ACTION": "ignore",
    }
    return {**caches, **container_env(config, secrets)}


def step_binds(store: Store, uv: str | None, scope: str) -> tuple[Bind, ...]:
    """Bind mounts for a build step: resolver, CA bundle, package caches, and uv if needed.

    The apt, uv and pip caches are writable, and code from a package runs while they are
    mounted, so a step could plant a poisoned package there for the next reader. Each `scope`
    (see `cache_scope`) therefore has caches of its own.
    """
    caches = f"packages/{scope}"
    apt = store.cache_dir(f"{caches}/apt")
    (apt / "partial").mkdir(exist_ok=True)
    binds = [
        Bind("/etc/resolv.conf", "/etc/resolv.conf"),
        Bind(str(apt), "/var/cache/apt/archives", readonly=False),
        Bind(str(store.cache_dir(f"{caches}/uv")), f"{_CACHE_IN_SANDBOX}/uv", readonly=False),
        Bind(str(store.cache_dir(f"{caches}/pip")), f"{_CACHE_IN_SANDBOX}/pip", readonly=False),
    ]
    ca = host_ca_bundle()
    if ca:
        binds.append(Bind(ca, _CA_IN_SANDBOX))
    if uv is not None:
        binds.append(Bind(uv_binary(store, uv), "/.uv/uv"))
    return tuple(binds)


def cache_scope(callsite: str) -> str:
    """Whose package caches a step uses: those of the file that defines it (`callsite` is
    "file:line"). Images of one definition file share them, so editing a package list or an
    earlier step keeps them warm; images defined in different files never read what the other
    wrote."""
    path = os.path.abspath(callsite.rpartition(":")[0] or callsite)
    return hexdigest(path.encode())[:32]


def cache_binds(store: Store, targets: tuple[str, ...]) -> tuple[Bind, ...]:
    """RUN --mount=type=cache: one host dir per target path, kept in the store across builds.

    Nothing written under the target lands in the image; the mount point itself does, empty,
    as in Docker.
    """
    binds = []
    for target in targets:
        name = hexdigest(target.encode())[:16]
        source = str(store.cache_dir(f"dockerfile-{name}"))
        binds.append(Bind(source, target, readonly=False, keep_mount_point=True))
    return tuple(binds)


def uv_binary(store: Store, version: str) -> str:
    """The uv executable for `version` ("" for the one that ships in our own environment).

    Other versions come from their PyPI wheel, fetched once with pip and kept in the store.
    """
    from ..version import BUNDLED_UV

    if version in ("", BUNDLED_UV):
        from uv import find_uv_bin

        return find_uv_bin()
    target = store.root / "tools" / f"uv-{version}" / "uv"
    if not target.exists():
        with store.lock(f"uv-{version}"), store.scratch() as area:
            if not target.exists():
                _fetch_uv(version, area.root, target)
    return str(target)


def _fetch_uv(version: str, workdir: Path, target: Path) -> None:
    import platform
    import subprocess
    import zipfile

    wheel_dir = workdir / "wheel"
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "download",
            "--quiet",
            "--no-deps",
            "--only-binary=:all:",
            "--platform",
            f"manylinux_2_17_{platform.machine()}",
            f"uv=={version}",
            "-d",
            str(wheel_dir),
        ],
        capture_output=True,
        text=True,
    )
    wheels = list(wheel_dir.glob("uv-*.whl"))
    if proc.returncode != 0 or not wheels:
        detail = (proc.stderr.strip().splitlines() or ["no wheel found"])[-1]
        raise ExecutionError(
            f"uv_version={version!r}: could not fetch uv {version} with pip: {detail}"
        )
    with zipfile.ZipFile(wheels[0]) as wheel:
        binary = wheel.read(f"uv-{version}.data/scripts/uv")
    target.parent.mkdir(parents=True, exist_ok=True)
    staged = workdir / "uv"
    staged.write_bytes(binary)
    staged.chmod(0o755)
    os.replace(staged, target)
