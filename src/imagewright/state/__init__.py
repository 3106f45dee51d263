"""Where Dict and Queue contents live: a SQLite file by default, a Redis server on request.

`backend()` opens the one this process uses, chosen by settings: IMAGEWRIGHT_REDIS_URL picks
Redis (redisdb.py), otherwise the SQLite file under settings.state_dir() (sqlite.py). Both
speak the byte-level interface of backend.py; distributed.py pickles keys and values on top.

Imported in containers (Python 3.9, standard library only): sqlite3 and redis are imported
only when a Dict or Queue is first used.
"""

from __future__ import annotations

import os
import threading

from .. import settings
from ..exception import InvalidError
from .backend import Backend

__all__ = ["Backend", "backend"]

_lock = threading.Lock()
_opened: dict[tuple[int, str], Backend] = {}


def backend() -> Backend:
    """The backend settings choose, opened once per process (and per setting, so a test that
    changes IMAGEWRIGHT_HOME or IMAGEWRIGHT_REDIS_URL gets the new one)."""
    url = settings.redis_url()
    if not url and settings.in_container() and not os.environ.get(settings.STATE_DIR):
        # a build step (run_function): a file written here would land in the image's layer
        raise InvalidError(
            "Dict and Queue cannot be used while an image builds: use them in functions"
        )
    if not url and settings.cluster():
        raise InvalidError(
            "Dict and Queue on a Ray cluster need a Redis server that every node reaches: set "
            f"{settings.REDIS_URL} (redis://HOST:PORT/DB) where the app runs"
        )
    where = url or str(settings.state_dir())
    key = (os.getpid(), where)  # a forked child must not share its parent's connections
    with _lock:
        found = _opened.get(key)
        if found is None:
            if url:
                from .redisdb import RedisBackend

                found = RedisBackend(url)
            else:
                from .sqlite import SqliteBackend

                found = SqliteBackend(settings.state_dir())
            _opened[key] = found
        return found
