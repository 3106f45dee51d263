"""Dicts and Queues in containers: what lets distributed.py, inside a function's container,
reach the backend the host uses.

With the SQLite backend, the state directory is bound read-write (the database, and the -wal
and -shm files that WAL mode shares between every process using it) and
IMAGEWRIGHT_STATE_DIR says where. With IMAGEWRIGHT_REDIS_URL, the URL is passed on (the
container shares the host's network, so 127.0.0.1 is the host's) and the host's `redis`
package is bound in next to imagewright, with async_timeout, which it imports on Pythons
before 3.11.3. The bind's mount point is not kept, so run_function layers get no trace of it.
"""

from __future__ import annotations

import importlib.util

from .. import settings
from .functions import _PY_IN_CONTAINER
from .overlay import Bind

__all__ = ["STATE_IN_CONTAINER", "cluster_state_binds", "state_binds"]

STATE_IN_CONTAINER = "/tmp/.imagewright/state"
_REDIS_PACKAGES = ("redis", "async_timeout")


def state_binds() -> tuple[list[Bind], dict[str, str]]:
    """The binds and environment a function's container needs for Dicts and Queues."""
    url = settings.redis_url()
    if url:
        return _package_binds(_REDIS_PACKAGES), {settings.REDIS_URL: url}
    directory = settings.state_dir()
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    bind = Bind(str(directory), STATE_IN_CONTAINER, readonly=False)
    return [bind], {settings.STATE_DIR: STATE_IN_CONTAINER}


def cluster_state_binds(redis_url: str | None) -> tuple[list[Bind], dict[str, str]]:
    """The same, on a cluster's node: Redis if the app has one, else nothing, and the
    container's Dicts and Queues then say they need it (a node's own file would be seen by
    that node alone)."""
    if not redis_url:
        return [], {}
    return _package_binds(_REDIS_PACKAGES), {settings.REDIS_URL: redis_url}


def _package_binds(names: tuple[str, ...]) -> list[Bind]:
    """Read-only binds of the host's packages `names`, those it has: a missing `redis` is
    reported inside the container, when a Dict or Queue is first used, so that functions
    that use neither still run."""
    binds = []
    for name in names:
        spec = importlib.util.find_spec(name)
        places = list(spec.submodule_search_locations or ()) if spec is not None else []
        if places:
            binds.append(Bind(places[0], f"{_PY_IN_CONTAINER}/{name}"))
    return binds
