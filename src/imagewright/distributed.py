"""Modal's `Dict` and `Queue`, shared by the host and every container of a program.

They live in a backend of the state package: by default one SQLite file under the home
(state/sqlite.py, bound read-write into every function container), or a Redis server when
IMAGEWRIGHT_REDIS_URL names one (state/redisdb.py). Named objects (`from_name`) persist there
across runs until deleted (`X.objects.delete`, `imagewright dict|queue delete`); those of
`with X.ephemeral() as x:` are deleted when the block ends, or when their process exits, or,
if it was killed, by the next process that opens the backend.

Keys and values cross as Modal's do, pickled (runtime/protocol.py). A key is found by its
pickle's bytes, so keys that are equal in Python but pickle differently (1, 1.0 and True;
two sets in different orders) are different keys here; strings, bytes, ints and tuples of them,
what Modal programs use, behave as in a dict. Queue semantics are Modal 1.6's: FIFO per
partition, `get(block=False)` gives None on an empty queue and a blocking get with a timeout
raises `queue.Empty`; a partition holds at most 5,000 items (more raises `queue.Full`) and is
emptied `partition_ttl` seconds after its last put. Modal has no atomic increment, and neither
has imagewright: `d[k] = d.get(k, 0) + 1` from many containers loses updates here as there,
while `put(k, v, skip_if_exists=True)`, `update`, `pop` and each queue operation are atomic.

Handles are cheap and lazy, as in Modal: `from_name` checks the name and nothing else, and the
first use (or `hydrate()`) finds the object, NotFoundError if it does not exist and may not be
created. A handle whose object is deleted afterwards reads it as empty and cannot write to it
(nor to a new object of the same name). Passed to a function, a handle names the same object
inside the container. Ephemeral ones can be made in a container too, but one that is killed
inside its `with` block leaves its objects behind: no host process owns them. Each method
has an awaitable `.aio` twin. Imported in containers (Python 3.9): the backend and its driver
(sqlite3, redis) load on first use.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import queue
import threading
import warnings
from collections.abc import Iterator, Mapping
from datetime import datetime
from types import TracebackType
from typing import TYPE_CHECKING, Any, ClassVar, Generic, TypeVar

from ._aio import iter_twin, twin
from .cloud import Client, ModalObject
from .exception import AlreadyExistsError, InvalidError, NotFoundError
from .runtime.protocol import dumps, loads
from .state import backend
from .state.backend import PARTITION_LIMIT, owner, pauses
from .volume import check_name, local_time, newest_first

if TYPE_CHECKING:
    from .types import DictInfo, QueueInfo

__all__ = ["Dict", "Queue"]

H = TypeVar("H", bound="_Shared")


class _NoDefault:
    def __repr__(self) -> str:
        return "..."


_NO_DEFAULT: Any = _NoDefault()
_EPHEMERAL_ID = "ephemeral:"


class _Shared(ModalObject):
    """What Dict and Queue share: a kind, a name or an ephemeral token, and the id the
    backend gives the object, found on first use."""

    _kind: ClassVar[str]  # "dict" or "queue", as the backend files them
    _name: str | None
    _token: str | None
    _create: bool
    _oid: int | None

    @classmethod
    def _handle(cls: type[H], name: str | None, token: str | None, create: bool) -> H:
        obj = cls.__new__(cls)
        obj._name, obj._token, obj._create, obj._oid = name, token, create, None
        return obj

    @classmethod
    def _from_id(cls: type[H], object_id: str) -> H:
        rest = object_id[3:] if object_id.startswith(f"{cls._id_prefix}-") else ""
        if rest.startswith(_EPHEMERAL_ID) and rest[len(_EPHEMERAL_ID) :].isalnum():
            return cls._handle(None, rest[len(_EPHEMERAL_ID) :], False)
        if not rest or rest.startswith(_EPHEMERAL_ID):
            raise InvalidError(f"Invalid {cls.__name__} id: {object_id!r}")
        return cls._handle(check_name(rest, cls.__name__), None, False)

    def __reduce__(self) -> tuple[Any, ...]:
        # passed to a function, it names the same object inside the container
        return (_restore, (type(self), self._name, self._token, self._create))

    def __repr__(self) -> str:
        kind = type(self).__name__
        return f"{kind}.ephemeral()" if self._name is None else f"{kind}.from_name({self._name!r})"

    @property
    def name(self) -> str | None:
        return self._name

    def _id_name(self) -> str:
        return self._name if self._name is not None else f"{_EPHEMERAL_ID}{self._token}"

    def _key(self) -> str:
        return f"name/{self._name}" if self._name is not None else f"ephemeral/{self._token}"

    def _resolve(self) -> None:
        self._id()

    def _id(self) -> int:
        if self._oid is None:
            found = backend().lookup(self._kind, self._key(), self._create)
            if found is None:
                raise self._missing()
            self._oid = found
        return self._oid

    def _missing(self) -> NotFoundError:
        kind = type(self).__name__
        if self._name is None:
            return NotFoundError(f"{self!r} no longer exists: its `with` block has ended")
        return NotFoundError(
            f"{kind} {self._name!r} not found: use {kind}.from_name({self._name!r}, "
            f"create_if_missing=True), or create it with {kind}.objects.create({self._name!r})"
        )

    def _created(self) -> datetime:
        when = backend().listing(self._kind).get(self._key())
        if when is None:
            raise self._missing()
        return local_time(when)


def _restore(cls: type[H], name: str | None, token: str | None, create: bool) -> H:
    return cls._handle(name, token, create)


class _Manager(Generic[H]):
    """`modal.Dict.objects` and `modal.Queue.objects`: the named ones, as `imagewright dict`
    and `imagewright queue` list and delete them."""

    def __init__(self, cls: type[H]):
        self._cls = cls

    @twin
    def create(
        self,
        name: str,
        *,
        allow_existing: bool = False,
        environment_name: str | None = None,
        client: Client | None = None,
    ) -> None:
        """Create the named object (AlreadyExistsError if it exists, unless
        `allow_existing`)."""
        kind = self._cls.__name__
        made = backend().create(self._cls._kind, f"name/{check_name(name, kind)}", None)
        if made is None and not allow_existing:
            raise AlreadyExistsError(f"{kind} {name!r} already exists")

    @twin
    def delete(
        self,
        name: str,
        *,
        allow_missing: bool = False,
        environment_name: str | None = None,
        client: Client | None = None,
    ) -> None:
        """Delete the named object and everything in it."""
        kind = self._cls.__name__
        found = backend().delete(self._cls._kind, f"name/{check_name(name, kind)}")
        if not found and not allow_missing:
            raise NotFoundError(f"{kind} {name!r} not found")

    @twin
    def list(
        self,
        *,
        max_objects: int | None = None,
        created_before: datetime | str | None = None,
        environment_name: str = "",
        client: Client | None = None,
    ) -> list[H]:
        """The named objects, newest first: at most `max_objects`, only those made before
        `created_before` (a datetime or an ISO date, local time if it has no zone)."""
        listing = backend().listing(self._cls._kind)
        named = {k[len("name/") :]: t for k, t in listing.items() if k.startswith("name/")}
        names = newest_first(named, max_objects, created_before)
        return [self._cls._handle(name, None, False) for name in names]


_open_ephemerals: set[_Shared] = set()
_open_lock = threading.Lock()


class _Ephemeral(Generic[H]):
    """What `X.ephemeral()` returns: `with` (or `async with`) an anonymous object, deleted
    when the block ends (or when this process exits, if it never does)."""

    def __init__(self, cls: type[H]):
        self._cls = cls
        self._obj: H | None = None

    def __enter__(self) -> H:
        token = os.urandom(8).hex()
        obj = self._cls._handle(None, token, False)
        obj._oid = backend().create(obj._kind, obj._key(), owner())
        self._obj = obj
        with _open_lock:
            if not _open_ephemerals:
                atexit.register(_delete_open_ephemerals)
            _open_ephemerals.add(obj)
        return obj

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._obj is not None:
            _delete_ephemeral(self._obj)

    async def __aenter__(self) -> H:
        import asyncio

        return await asyncio.to_thread(self.__enter__)

    async def __aexit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        import asyncio

        await asyncio.to_thread(self.__exit__, kind, exc, tb)


def _delete_ephemeral(obj: _Shared) -> None:
    with _open_lock:
        _open_ephemerals.discard(obj)
    backend().delete(obj._kind, obj._key())


def _delete_open_ephemerals() -> None:
    for obj in list(_open_ephemerals):
        # at exit, a backend gone away leaves them to the next process's reaping
        with contextlib.suppress(Exception):
            _delete_ephemeral(obj)


class Dict(_Shared):
    """A key-value store shared by the host and the program's containers."""

    _id_prefix = "di"
    _kind = "dict"

    def __init__(self) -> None:
        raise RuntimeError(
            "`Dict(...)` constructor is not allowed. "
            "Please use `Dict.from_name` or `Dict.ephemeral` instead"
        )

    @staticmethod
    def from_name(
        name: str,
        *,
        environment_name: str | None = None,
        create_if_missing: bool = False,
        client: Client | None = None,
    ) -> Dict:
        """The named Dict; it must exist when first used unless `create_if_missing`."""
        return Dict._handle(check_name(name, "Dict"), None, bool(create_if_missing))

    @staticmethod
    def from_id(dict_id: str, client: Client | None = None) -> Dict:
        """The Dict whose `object_id` this is; whether it exists is checked when it is used."""
        return Dict._from_id(dict_id)

    @classmethod
    def ephemeral(
        cls, *, client: Client | None = None, environment_name: str | None = None
    ) -> _Ephemeral[Dict]:
        """`with Dict.ephemeral() as d:` an anonymous Dict, deleted when the block ends."""
        return _Ephemeral(Dict)

    objects: _Manager[Dict]

    @twin
    def info(self) -> DictInfo:
        from .types import DictInfo  # (dataclasses: not for every container that names a Dict)

        return DictInfo(name=self._name, created_at=self._created(), created_by=None)

    @twin
    def clear(self) -> None:
        """Remove every entry."""
        backend().dict_clear(self._id())

    @twin
    def contains(self, key: Any) -> bool:
        return backend().dict_contains(self._id(), dumps(key))

    @twin
    def get(self, key: Any, default: Any | None = None) -> Any:
        """The value of `key`, or `default` if it has none."""
        found = backend().dict_get(self._id(), dumps(key))
        return default if found is None else loads(found)

    @twin
    def len(self) -> int:
        return backend().dict_len(self._id())

    @twin
    def pop(self, key: Any, default: Any = _NO_DEFAULT) -> Any:
        """Remove `key` and return its value; `default` if it has none, else KeyError."""
        found = backend().dict_pop(self._id(), dumps(key))
        if found is not None:
            return loads(found)
        if default is _NO_DEFAULT:
            raise KeyError(f"{key} not in dict {self.object_id}")
        return default

    @twin
    def put(self, key: Any, value: Any, *, skip_if_exists: bool = False) -> bool:
        """Set `key` to `value`; with `skip_if_exists`, only if `key` has no value yet (one
        atomic step). Whether it was written."""
        return backend().dict_put(self._id(), [(dumps(key), dumps(value))], skip_if_exists)

    @twin  # keywords are entries, as in dict.update
    def update(self, other: Mapping[Any, Any] | None = None, /, **kwargs: Any) -> None:
        """Set every entry of `other` and `kwargs`, in one atomic step."""
        contents = dict(other.items()) if other else {}
        contents.update(kwargs)
        if contents:
            entries = [(dumps(k), dumps(v)) for k, v in contents.items()]
            backend().dict_put(self._id(), entries, False)

    @iter_twin
    def items(self) -> Iterator[tuple[Any, Any]]:
        """The entries, as they were when iteration started."""
        for key, value in backend().dict_items(self._id()):
            yield loads(key), loads(value)

    @iter_twin
    def keys(self) -> Iterator[Any]:
        for key, _ in backend().dict_items(self._id()):
            yield loads(key)

    @iter_twin
    def values(self) -> Iterator[Any]:
        for _, value in backend().dict_items(self._id()):
            yield loads(value)

    def __getitem__(self, key: Any) -> Any:
        value = self.get(key, _NO_DEFAULT)
        if value is _NO_DEFAULT:
            raise KeyError(f"{key} not in dict {self.object_id}")
        return value

    def __setitem__(self, key: Any, value: Any) -> None:
        self.put(key, value)

    def __delitem__(self, key: Any) -> None:
        self.pop(key)

    def __contains__(self, key: Any) -> bool:
        return self.contains(key)


class Queue(_Shared):
    """A FIFO queue, with optional partitions, shared by the host and the containers."""

    _id_prefix = "qu"
    _kind = "queue"

    def __init__(self) -> None:
        raise RuntimeError(
            "`Queue(...)` constructor is not allowed. "
            "Please use `Queue.from_name` or `Queue.ephemeral` instead"
        )

    @staticmethod
    def from_name(
        name: str,
        *,
        environment_name: str | None = None,
        create_if_missing: bool = False,
        client: Client | None = None,
    ) -> Queue:
        """The named Queue; it must exist when first used unless `create_if_missing`."""
        return Queue._handle(check_name(name, "Queue"), None, bool(create_if_missing))

    @staticmethod
    def from_id(queue_id: str, client: Client | None = None) -> Queue:
        """The Queue whose `object_id` this is; whether it exists is checked when it is used."""
        return Queue._from_id(queue_id)

    @classmethod
    def ephemeral(
        cls, client: Client | None = None, environment_name: str | None = None
    ) -> _Ephemeral[Queue]:
        """`with Queue.ephemeral() as q:` an anonymous Queue, deleted when the block ends."""
        return _Ephemeral(Queue)

    @staticmethod
    def validate_partition_key(partition: str | None) -> bytes:
        """The partition's key as bytes (b"" for the default partition); 1 to 64 bytes."""
        if partition is None:
            return b""
        key = partition.encode("utf-8")
        if not 1 <= len(key) <= 64:
            raise InvalidError("Queue partition key must be between 1 and 64 characters.")
        return key

    objects: _Manager[Queue]

    @twin
    def info(self) -> QueueInfo:
        from .types import QueueInfo

        return QueueInfo(name=self._name, created_at=self._created(), created_by=None)

    @twin
    def clear(self, *, partition: str | None = None, all: bool = False) -> None:
        """Empty the partition (the default one if none is named), or every one with `all`."""
        if partition and all:
            raise InvalidError("Partition must be null when requesting to clear all.")
        key = self.validate_partition_key(partition)
        backend().queue_clear(self._id(), None if all else key)

    @twin
    def get(
        self, block: bool = True, timeout: float | None = None, *, partition: str | None = None
    ) -> Any | None:
        """The next item. Blocking, wait for one (at most `timeout` seconds, then raise
        queue.Empty); not blocking, None if there is none."""
        found = self._get(1, block, timeout, partition)
        return loads(found[0]) if found else None

    @twin
    def get_many(
        self,
        n_values: int,
        block: bool = True,
        timeout: float | None = None,
        *,
        partition: str | None = None,
    ) -> list[Any]:
        """Up to `n_values` items, as `get` waits for the first; [] when not blocking and
        there is none."""
        if n_values < 1:
            raise InvalidError(f"n_values must be at least 1, not {n_values}")
        return [loads(v) for v in self._get(n_values, block, timeout, partition)]

    def _get(
        self, n: int, block: bool, timeout: float | None, partition: str | None
    ) -> list[bytes]:
        key = self.validate_partition_key(partition)
        if not block:
            if timeout is not None:
                warnings.warn("Timeout is ignored for non-blocking get.", stacklevel=4)
            return backend().queue_get(self._id(), key, n, 0)
        found = backend().queue_get(self._id(), key, n, timeout)
        if not found:
            raise queue.Empty()
        return found

    @iter_twin
    def iterate(
        self, *, partition: str | None = None, item_poll_timeout: float = 0.0
    ) -> Iterator[Any]:
        """The items, oldest first, without taking them; after the last, wait up to
        `item_poll_timeout` seconds for another before stopping."""
        key = self.validate_partition_key(partition)
        last = 0
        waits = pauses(item_poll_timeout)
        while True:
            found = backend().queue_after(self._id(), key, last)
            for last, value in found:  # noqa: B007  # `last` is where the next read resumes
                yield loads(value)
            if found:
                waits = pauses(item_poll_timeout)
            elif next(waits, None) is None:
                return

    @twin
    def len(self, *, partition: str | None = None, total: bool = False) -> int:
        """Items in the partition (the default one if none is named), or in all with
        `total`."""
        if partition and total:
            raise InvalidError("Partition must be null when requesting total length.")
        key = self.validate_partition_key(partition)
        return backend().queue_len(self._id(), None if total else key)

    @twin
    def put(
        self,
        v: Any,
        block: bool = True,
        timeout: float | None = None,
        *,
        partition: str | None = None,
        partition_ttl: int = 86400,
    ) -> None:
        """Add `v` at the end. A full partition (5,000 items) makes a blocking put wait for
        room (at most `timeout` seconds) and a non-blocking one raise queue.Full."""
        self._put([v], block, timeout, partition, partition_ttl)

    @twin
    def put_many(
        self,
        vs: list[Any],
        block: bool = True,
        timeout: float | None = None,
        *,
        partition: str | None = None,
        partition_ttl: int = 86400,
    ) -> None:
        """Add every item of `vs` at the end, in order, as one step (see `put`)."""
        self._put(vs, block, timeout, partition, partition_ttl)

    def _put(
        self,
        vs: list[Any],
        block: bool,
        timeout: float | None,
        partition: str | None,
        ttl: int,
    ) -> None:
        key = self.validate_partition_key(partition)
        if not vs:
            return
        if len(vs) > PARTITION_LIMIT:
            raise queue.Full(f"{len(vs)} items cannot fit: a partition holds {PARTITION_LIMIT}")
        values, oid = [dumps(v) for v in vs], self._id()
        if not block and timeout is not None:
            warnings.warn("`timeout` argument is ignored for non-blocking put.", stacklevel=4)
        if backend().queue_put(oid, key, values, ttl):
            return
        if block:
            for _ in pauses(timeout):
                if backend().queue_put(oid, key, values, ttl):
                    return
        raise queue.Full(f"the partition is full ({PARTITION_LIMIT} items)")


Dict.objects = _Manager(Dict)
Queue.objects = _Manager(Queue)
