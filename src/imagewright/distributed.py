"""Modal's `Dict` and `Queue`: names that load now, and run locally in a later release.

`Dict.from_name("x", create_if_missing=True)` and `Queue.ephemeral()` work where Modal
programs write them (at module level); reading or writing one raises UnimplementedError. The
methods have Modal's signatures, each with an awaitable `.aio` twin. Imported in containers
(Python 3.9).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from datetime import datetime
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from ._aio import iter_twin, twin
from ._unsupported import NotYetContext, not_yet
from .cloud import Client, ModalObject
from .exception import InvalidError

if TYPE_CHECKING:
    from .types import DictInfo, QueueInfo

__all__ = ["Dict", "Queue"]

_DICT = "modal.Dict"
_QUEUE = "modal.Queue"

T = TypeVar("T")


class _NotYetObjects(Generic[T]):
    """`modal.Dict.objects` and `modal.Queue.objects`: creating, listing and deleting named
    ones, which run locally in the same later release as the objects themselves."""

    def __init__(self, feature: str):
        self._feature = f"{feature}.objects"

    @twin
    def create(
        self,
        name: str,
        *,
        allow_existing: bool = False,
        environment_name: str | None = None,
        client: Client | None = None,
    ) -> None:
        raise not_yet(f"{self._feature}.create")

    @twin
    def delete(
        self,
        name: str,
        *,
        allow_missing: bool = False,
        environment_name: str | None = None,
        client: Client | None = None,
    ) -> None:
        raise not_yet(f"{self._feature}.delete")

    @twin
    def list(
        self,
        *,
        max_objects: int | None = None,
        created_before: datetime | str | None = None,
        environment_name: str = "",
        client: Client | None = None,
    ) -> list[T]:
        raise not_yet(f"{self._feature}.list")


class Dict(ModalObject):
    """A named key-value store shared by a program's functions."""

    _id_prefix = "di"

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
        d = Dict.__new__(Dict)
        d._name = name
        return d

    @staticmethod
    def from_id(dict_id: str, client: Client | None = None) -> Dict:
        raise not_yet(f"{_DICT}.from_id")

    @classmethod
    def ephemeral(
        cls, *, client: Client | None = None, environment_name: str | None = None
    ) -> NotYetContext[Dict]:
        return NotYetContext(f"{_DICT}.ephemeral")

    objects: _NotYetObjects[Dict] = _NotYetObjects(_DICT)
    _name: str | None

    @property
    def name(self) -> str | None:
        return self._name

    def _id_name(self) -> str:
        return str(self._name)

    @twin
    def clear(self) -> None:
        raise not_yet(_DICT)

    @twin
    def contains(self, key: Any) -> bool:
        raise not_yet(_DICT)

    @twin
    def get(self, key: Any, default: Any | None = None) -> Any:
        raise not_yet(_DICT)

    @twin
    def info(self) -> DictInfo:
        raise not_yet(_DICT)

    @twin
    def len(self) -> int:
        raise not_yet(_DICT)

    @twin
    def pop(self, key: Any, default: Any = None) -> Any:
        raise not_yet(_DICT)

    @twin
    def put(self, key: Any, value: Any, *, skip_if_exists: bool = False) -> bool:
        raise not_yet(_DICT)

    @twin  # keywords are entries, as in dict.update
    def update(self, other: Mapping[Any, Any] | None = None, /, **kwargs: Any) -> None:
        raise not_yet(_DICT)

    @iter_twin
    def items(self) -> Iterator[tuple[Any, Any]]:
        raise not_yet(_DICT)

    @iter_twin
    def keys(self) -> Iterator[Any]:
        raise not_yet(_DICT)

    @iter_twin
    def values(self) -> Iterator[Any]:
        raise not_yet(_DICT)

    def __getitem__(self, key: Any) -> Any:
        raise not_yet(_DICT)

    def __setitem__(self, key: Any, value: Any) -> None:
        raise not_yet(_DICT)

    def __delitem__(self, key: Any) -> None:
        raise not_yet(_DICT)

    def __contains__(self, key: Any) -> bool:
        raise not_yet(_DICT)

    def __repr__(self) -> str:
        return f"Dict.from_name({self._name!r})"


class Queue(ModalObject):
    """A named FIFO queue (with optional partitions) shared by a program's functions."""

    _id_prefix = "qu"

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
        q = Queue.__new__(Queue)
        q._name = name
        return q

    @staticmethod
    def from_id(queue_id: str, client: Client | None = None) -> Queue:
        raise not_yet(f"{_QUEUE}.from_id")

    @classmethod
    def ephemeral(
        cls, client: Client | None = None, environment_name: str | None = None
    ) -> NotYetContext[Queue]:
        return NotYetContext(f"{_QUEUE}.ephemeral")

    @staticmethod
    def validate_partition_key(partition: str | None) -> bytes:
        """The partition's key as bytes (b"" for the default partition); 1 to 64 bytes."""
        if partition is None:
            return b""
        key = partition.encode("utf-8")
        if not 1 <= len(key) <= 64:
            raise InvalidError("Queue partition key must be between 1 and 64 characters.")
        return key

    objects: _NotYetObjects[Queue] = _NotYetObjects(_QUEUE)
    _name: str | None

    @property
    def name(self) -> str | None:
        return self._name

    def _id_name(self) -> str:
        return str(self._name)

    @twin
    def clear(self, *, partition: str | None = None, all: bool = False) -> None:
        raise not_yet(_QUEUE)

    @twin
    def get(
        self, block: bool = True, timeout: float | None = None, *, partition: str | None = None
    ) -> Any | None:
        raise not_yet(_QUEUE)

    @twin
    def get_many(
        self,
        n_values: int,
        block: bool = True,
        timeout: float | None = None,
        *,
        partition: str | None = None,
    ) -> list[Any]:
        raise not_yet(_QUEUE)

    @twin
    def info(self) -> QueueInfo:
        raise not_yet(_QUEUE)

    @iter_twin
    def iterate(
        self, *, partition: str | None = None, item_poll_timeout: float = 0.0
    ) -> Iterator[Any]:
        raise not_yet(_QUEUE)

    @twin
    def len(self, *, partition: str | None = None, total: bool = False) -> int:
        raise not_yet(_QUEUE)

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
        raise not_yet(_QUEUE)

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
        raise not_yet(_QUEUE)

    def __repr__(self) -> str:
        return f"Queue.from_name({self._name!r})"
