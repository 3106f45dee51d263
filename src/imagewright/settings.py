"""Every IMAGEWRIGHT_* setting, read in this one place.

Each setting is read when asked for (not at import), so a test or the CLI can set the variable
and the next read sees it. The container-side variables of the function channel
(IMAGEWRIGHT_FUNCTION, IMAGEWRIGHT_CHANNEL_FD) are part of the wire protocol, not settings:
runtime/protocol.py names them.

- IMAGEWRIGHT_HOME: the store (layers, images, caches, logs); default
  $XDG_CACHE_HOME/imagewright, else ~/.cache/imagewright.
- IMAGEWRIGHT_FORCE_BUILD: "1" rebuilds every step, as `force_build=True` on each would.
- IMAGEWRIGHT_PROGRESS: "plain" prints lines even on a terminal.
- IMAGEWRIGHT_CACHE_REGISTRY: a registry repository sharing built layers (`--cache-registry`).
- IMAGEWRIGHT_UBUNTU_MIRROR: the Ubuntu archive for `Image.ubuntu()` bases.
- IMAGEWRIGHT_INSECURE_REGISTRIES: comma-separated host[:port] of registries spoken to over
  HTTPS without verification, then plain HTTP, for pulls, pushes and the cache registry alike
  (Docker's insecure-registries). Loopback registries always use plain HTTP.
- IMAGEWRIGHT_IN_CONTAINER: "1" inside containers imagewright starts (`Image.imports()` then
  raises instead of warning).
- IMAGEWRIGHT_ALLOW_NO_GPU: "1" runs functions that ask for a GPU on a machine without one,
  on the CPU, with a warning (otherwise they fail with a clear error).
- IMAGEWRIGHT_VOLUMES: inside containers, JSON mapping each mounted Volume to its mount point,
  so that Volume methods called there find it (set by execute/volumes.py).
- IMAGEWRIGHT_REDIS_URL: keep Dict and Queue contents in this Redis server (redis://host:port/db)
  instead of the SQLite file under state_dir(); containers get it in their environment.
- IMAGEWRIGHT_STATE_DIR: the directory of the SQLite file holding Dicts and Queues (default:
  state/ under the home); inside containers, where execute/state.py binds it.
- IMAGEWRIGHT_CLUSTER: run the app's calls on this Ray cluster (ray://HOST:PORT, `--cluster`);
  set inside containers running on one, too.
- IMAGEWRIGHT_VOLUMES_DIR: where named volumes live (default: volumes/ under the home). On a
  cluster it must be storage every node mounts at the same path (NFS or the like).
- IMAGEWRIGHT_WEB_URLS: JSON mapping each web endpoint `imagewright serve` serves (by its
  function's module.qualname) to its URL, on the host and in containers (`get_web_url()`).

Named volumes live in volumes_dir(), secrets in secrets_dir() (mode 0700, files 0600), Dicts
and Queues in state_dir() (mode 0700); all are under the store's home but are not the store:
`imagewright prune` never touches them.
"""

from __future__ import annotations

import os
from pathlib import Path

from .exception import InvalidError

__all__ = [
    "ALLOW_NO_GPU",
    "CLUSTER",
    "INSECURE_REGISTRIES",
    "IN_CONTAINER",
    "REDIS_URL",
    "STATE_DIR",
    "VOLUMES",
    "WEB_URLS",
    "allow_no_gpu",
    "apps_dir",
    "cache_registry",
    "cluster",
    "ephemeral_volumes_dir",
    "force_build",
    "home",
    "in_container",
    "insecure_registries",
    "plain_progress",
    "redis_url",
    "secrets_dir",
    "state_dir",
    "ubuntu_mirror",
    "use_cache_registry",
    "use_cluster",
    "volumes_dir",
    "volumes_dir_shared",
]

ALLOW_NO_GPU = "IMAGEWRIGHT_ALLOW_NO_GPU"
IN_CONTAINER = "IMAGEWRIGHT_IN_CONTAINER"
CACHE_REGISTRY = "IMAGEWRIGHT_CACHE_REGISTRY"
INSECURE_REGISTRIES = "IMAGEWRIGHT_INSECURE_REGISTRIES"
VOLUMES = "IMAGEWRIGHT_VOLUMES"
REDIS_URL = "IMAGEWRIGHT_REDIS_URL"
STATE_DIR = "IMAGEWRIGHT_STATE_DIR"
WEB_URLS = "IMAGEWRIGHT_WEB_URLS"
CLUSTER = "IMAGEWRIGHT_CLUSTER"
VOLUMES_DIR = "IMAGEWRIGHT_VOLUMES_DIR"


def home() -> Path:
    """Where the store lives."""
    explicit = os.environ.get("IMAGEWRIGHT_HOME")
    if explicit:
        return Path(explicit)
    cache = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(cache) / "imagewright"


def volumes_dir() -> Path:
    """Where named volumes live, one directory each."""
    explicit = os.environ.get(VOLUMES_DIR)
    return Path(explicit) if explicit else home() / "volumes"


def volumes_dir_shared() -> bool:
    """Whether volumes live where the user put them (IMAGEWRIGHT_VOLUMES_DIR), which is how
    a cluster's nodes all see them, rather than in this machine's home."""
    return bool(os.environ.get(VOLUMES_DIR))


def ephemeral_volumes_dir() -> Path:
    """Where `Volume.ephemeral()` volumes live until their `with` block ends."""
    explicit = os.environ.get(VOLUMES_DIR)  # (".ephemeral" is no volume's name)
    return Path(explicit) / ".ephemeral" if explicit else home() / "volumes-ephemeral"


def secrets_dir() -> Path:
    """Where `imagewright secret create` keeps named secrets."""
    return home() / "secrets"


def state_dir() -> Path:
    """Where the SQLite file holding Dicts and Queues lives (unless redis_url() is set)."""
    return Path(os.environ.get(STATE_DIR) or home() / "state")


def redis_url() -> str | None:
    """The Redis server holding Dicts and Queues, or None for the SQLite file."""
    return os.environ.get(REDIS_URL) or None


def force_build() -> bool:
    return os.environ.get("IMAGEWRIGHT_FORCE_BUILD") == "1"


def plain_progress() -> bool:
    return os.environ.get("IMAGEWRIGHT_PROGRESS", "auto") == "plain"


_cache_registry: str | None = None


def use_cache_registry(repository: str) -> None:
    """--cache-registry: wins over the variable for every build this process starts, those of
    the user's own code under `imagewright run` included."""
    global _cache_registry
    _cache_registry = repository


def cache_registry() -> str | None:
    return _cache_registry or os.environ.get(CACHE_REGISTRY) or None


_cluster: str | None = None


def use_cluster(address: str | None) -> None:
    """`app.run(cluster=...)` and --cluster: the cluster this process's calls go to."""
    global _cluster
    _cluster = address


def cluster() -> str | None:
    return _cluster or os.environ.get(CLUSTER) or None


def ubuntu_mirror() -> str:
    return os.environ.get("IMAGEWRIGHT_UBUNTU_MIRROR", "http://archive.ubuntu.com/ubuntu")


def insecure_registries() -> frozenset[str]:
    """The registries (host[:port], lowercase) that may use plain HTTP or unverified TLS.
    Raises InvalidError on an entry that is a URL or path rather than host[:port]."""
    entries = (e.strip().lower() for e in os.environ.get(INSECURE_REGISTRIES, "").split(","))
    found = frozenset(e for e in entries if e)
    for entry in sorted(found):
        if "/" in entry or "@" in entry:
            raise InvalidError(
                f"{INSECURE_REGISTRIES} lists {entry!r}: give host[:port] entries such as "
                "'registry.internal:5000', without a scheme or path."
            )
    return found


def in_container() -> bool:
    return os.environ.get(IN_CONTAINER) == "1"


def allow_no_gpu() -> bool:
    return os.environ.get(ALLOW_NO_GPU) == "1"


def apps_dir() -> Path:
    """Where `imagewright deploy` keeps its deployments: each one's state, log and socket."""
    return home() / "apps"
