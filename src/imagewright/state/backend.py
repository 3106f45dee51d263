"""The interface every Dict and Queue backend speaks, and what the backends share.

A backend stores bytes: distributed.py pickles keys and values before they get here. Objects
are found by kind ("dict" or "queue") and key ("name/NAME" for named ones, "ephemeral/TOKEN"
for those of `X.ephemeral()`), and then used by an integer id that is never reused, so that a
handle to a deleted object cannot write into one created later under the same name.

Ephemeral objects record the process that made them (boot id, pid and start time): when that
process is gone, killed before its `with` block could end, the next process on the host that
opens the backend deletes them. Imported in containers (Python 3.9).
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from typing import Protocol

from ..exception import NotFoundError

__all__ = [
    "PARTITION_LIMIT",
    "Backend",
    "gone",
    "owner",
    "owner_alive",
    "pauses",
]

PARTITION_LIMIT = 5000  # items in one queue partition, as on Modal


class Backend(Protocol):
    """What distributed.py asks of a store of Dicts and Queues."""

    def lookup(self, kind: str, key: str, create: bool) -> int | None:
        """The object's id, made now if `create`; None if it does not exist."""
        ...

    def create(self, kind: str, key: str, owner: str | None) -> int | None:
        """Make the object and return its id; None if it exists already."""
        ...

    def delete(self, kind: str, key: str) -> bool:
        """Delete the object and what it holds; False if it did not exist."""
        ...

    def listing(self, kind: str) -> dict[str, float]:
        """Each object of `kind` (by key) with the time it was made."""
        ...

    def dict_get(self, oid: int, key: bytes) -> bytes | None: ...

    def dict_put(self, oid: int, entries: list[tuple[bytes, bytes]], if_missing: bool) -> bool:
        """Write `entries` (only missing keys if `if_missing`); whether any was written."""
        ...

    def dict_pop(self, oid: int, key: bytes) -> bytes | None: ...

    def dict_contains(self, oid: int, key: bytes) -> bool: ...

    def dict_len(self, oid: int) -> int: ...

    def dict_items(self, oid: int) -> list[tuple[bytes, bytes]]: ...

    def dict_clear(self, oid: int) -> None: ...

    def queue_put(self, oid: int, partition: bytes, values: list[bytes], ttl: int) -> bool:
        """Append `values` unless the partition would hold more than PARTITION_LIMIT items
        (then False, and nothing is written)."""
        ...

    def queue_get(self, oid: int, partition: bytes, n: int, timeout: float | None) -> list[bytes]:
        """Take up to `n` items, waiting up to `timeout` seconds (None: forever) for the first;
        [] if none came."""
        ...

    def queue_len(self, oid: int, partition: bytes | None) -> int:
        """Items in the partition, or in all partitions if it is None."""
        ...

    def queue_clear(self, oid: int, partition: bytes | None) -> None:
        """Empty the partition, or all partitions if it is None."""
        ...

    def queue_after(self, oid: int, partition: bytes, last: int) -> list[tuple[int, bytes]]:
        """The items queued after item number `last` (0: all), oldest first, with their
        numbers, which only grow; nothing is taken."""
        ...


def gone(kind: str) -> NotFoundError:
    """The error for writing through a handle whose object was deleted meanwhile."""
    return NotFoundError(f"this {kind.capitalize()} was deleted")


def pauses(timeout: float | None) -> Iterator[float]:
    """Sleeps for polling until `timeout` seconds have passed (None: forever): 1 ms at first,
    doubling to 50 ms, so a waiter answers fast yet costs little while it waits. Each sleep
    happens before its value is yielded; the last one ends at the deadline."""
    deadline = None if timeout is None else time.monotonic() + timeout
    pause = 0.001
    while True:
        left = None if deadline is None else deadline - time.monotonic()
        if left is not None and left <= 0:
            return
        nap = pause if left is None else min(pause, left)
        time.sleep(nap)
        yield nap
        pause = min(pause * 2, 0.05)


def owner() -> str | None:
    """Who makes an ephemeral object: this process, as owner_alive() can check later; None
    inside a container, whose pids mean nothing on the host."""
    if os.environ.get("IMAGEWRIGHT_IN_CONTAINER") == "1":
        return None
    started = _start_time(os.getpid())
    return f"{_boot_id()}/{os.getpid()}/{started}" if started else None


def owner_alive(who: str) -> bool:
    """Whether the process `who` names still runs; True when this host cannot tell (it
    names another boot or machine)."""
    boot, _, rest = who.partition("/")
    pid, _, started = rest.partition("/")
    if boot != _boot_id() or not pid.isdigit():
        return True
    return _start_time(int(pid)) == started


def _boot_id() -> str:
    try:
        with open("/proc/sys/kernel/random/boot_id") as f:
            return f.read().strip()
    except OSError:
        return "unknown"


def _start_time(pid: int) -> str:
    """The process's start time in clock ticks since boot (pids are reused, this pair is
    not); "" if there is no such process."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            stat = f.read()
    except OSError:
        return ""
    return stat.rpartition(")")[2].split()[19]  # field 22; the name before ")" may hold spaces
