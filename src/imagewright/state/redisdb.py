"""Dicts and Queues in a Redis server, when IMAGEWRIGHT_REDIS_URL names one.

For programs whose containers already share a Redis, or that want its blocking pops: a queue
get waits in the server (BLPOP), not in a polling loop. Keys live under `imagewright:`:

    objects:KIND      hash: object key ("name/N", "ephemeral/T") -> {"id", "created", "owner"}
    live              set of the ids of existing objects
    ID:d              a Dict's hash: pickled key -> pickled value
    ID:q:PARTITION    a Queue partition's list (PARTITION in hex, "" for the default one); each
                      item is its 20-digit number, then its pickle; the list expires
                      `partition_ttl` seconds after its last put
    ID:parts, ID:seq  a Queue's partitions, and the counter numbering its items

Everything that must be atomic (creating and deleting objects, checking that an object still
exists before writing to it, a put that must fit in its partition) is one Lua script.
Imported in containers (Python 3.9); the `redis` package is bound in next to imagewright.
"""

from __future__ import annotations

import json
import time
from typing import Any
from urllib.parse import urlsplit

from ..exception import ConnectionError, InvalidError
from .backend import PARTITION_LIMIT, gone, owner, owner_alive

__all__ = ["RedisBackend"]

_PREFIX = "imagewright:"
_SEQ_DIGITS = 20
_KINDS = ("dict", "queue")

# KEYS: objects hash, id counter, live set. ARGV: key, mode ("find", "ensure" or "new"),
# created, owner. Returns the object's record, or nil ("find": none; "new": it exists).
_OBJECT = """
local found = redis.call('HGET', KEYS[1], ARGV[1])
if found then
  if ARGV[2] == 'new' then return false end
  return found
end
if ARGV[2] == 'find' then return false end
local oid = redis.call('INCR', KEYS[2])
local record = cjson.encode({id = oid, created = tonumber(ARGV[3]), owner = ARGV[4]})
redis.call('HSET', KEYS[1], ARGV[1], record)
redis.call('SADD', KEYS[3], oid)
return record
"""
# KEYS: objects hash, live set. ARGV: key, prefix. Returns 1 if it existed.
_DELETE = """
local found = redis.call('HGET', KEYS[1], ARGV[1])
if not found then return 0 end
local oid = cjson.decode(found).id
redis.call('HDEL', KEYS[1], ARGV[1])
redis.call('SREM', KEYS[2], oid)
local base = ARGV[2] .. string.format('%d', oid)
for _, part in ipairs(redis.call('SMEMBERS', base .. ':parts')) do
  redis.call('DEL', base .. ':q:' .. part)
end
redis.call('DEL', base .. ':d', base .. ':parts', base .. ':seq')
return 1
"""
# KEYS: live set, the dict's hash. ARGV: id, "1" to keep existing keys, then keys and values.
# Returns the number of keys written, -1 if the object is gone.
_DICT_PUT = """
if redis.call('SISMEMBER', KEYS[1], ARGV[1]) == 0 then return -1 end
local written = 0
for i = 3, #ARGV, 2 do
  if ARGV[2] == '1' then
    written = written + redis.call('HSETNX', KEYS[2], ARGV[i], ARGV[i + 1])
  else
    redis.call('HSET', KEYS[2], ARGV[i], ARGV[i + 1])
    written = written + 1
  end
end
return written
"""
# KEYS: live set, the partition's list, the parts set, the counter. ARGV: id, partition (hex),
# ttl, limit, then the values. Returns 1, 0 if they do not fit, -1 if the object is gone.
_QUEUE_PUT = """
if redis.call('SISMEMBER', KEYS[1], ARGV[1]) == 0 then return -1 end
local n = #ARGV - 4
if redis.call('LLEN', KEYS[2]) + n > tonumber(ARGV[4]) then return 0 end
local last = redis.call('INCRBY', KEYS[4], n)
for i = 1, n do
  redis.call('RPUSH', KEYS[2], string.format('%020d', last - n + i) .. ARGV[4 + i])
end
redis.call('SADD', KEYS[3], ARGV[2])
redis.call('EXPIRE', KEYS[2], ARGV[3])
return 1
"""
# KEYS: the parts set. ARGV: the partitions' key prefix, "len" or "clear".
_QUEUE_ALL = """
local total = 0
for _, part in ipairs(redis.call('SMEMBERS', KEYS[1])) do
  if ARGV[2] == 'len' then
    total = total + redis.call('LLEN', ARGV[1] .. part)
  else
    redis.call('DEL', ARGV[1] .. part)
  end
end
if ARGV[2] == 'clear' then redis.call('DEL', KEYS[1]) end
return total
"""


class RedisBackend:
    """Dicts and Queues in the Redis server at `url`."""

    def __init__(self, url: str):
        try:
            import redis
        except ImportError:
            raise InvalidError(
                "IMAGEWRIGHT_REDIS_URL is set, but the `redis` package is not installed: "
                "pip install 'imagewright[redis]'"
            ) from None
        # typed Any: redis-py's stubs type each reply as sync-or-async
        self._redis: Any = redis.Redis.from_url(url)
        self._where = _safe(url)
        self._object = self._redis.register_script(_OBJECT)
        self._delete = self._redis.register_script(_DELETE)
        self._dict_put = self._redis.register_script(_DICT_PUT)
        self._queue_put = self._redis.register_script(_QUEUE_PUT)
        self._queue_all = self._redis.register_script(_QUEUE_ALL)
        try:
            self._redis.ping()
        except redis.exceptions.ConnectionError as exc:
            raise ConnectionError(
                f"cannot reach the Redis server at {self._where}: {exc}"
            ) from None
        self._reap()

    # ---- objects --------------------------------------------------------------------------

    def lookup(self, kind: str, key: str, create: bool) -> int | None:
        return self._record(kind, key, "ensure" if create else "find", None)

    def create(self, kind: str, key: str, owner: str | None) -> int | None:
        return self._record(kind, key, "new", owner)

    def delete(self, kind: str, key: str) -> bool:
        keys = [_objects(kind), f"{_PREFIX}live"]
        return bool(self._delete(keys=keys, args=[key, _PREFIX]))

    def listing(self, kind: str) -> dict[str, float]:
        found: dict[bytes, bytes] = self._redis.hgetall(_objects(kind))
        return {k.decode(): float(json.loads(v)["created"]) for k, v in found.items()}

    def _record(self, kind: str, key: str, mode: str, owner: str | None) -> int | None:
        keys = [_objects(kind), f"{_PREFIX}next", f"{_PREFIX}live"]
        record = self._object(keys=keys, args=[key, mode, time.time(), owner or ""])
        return None if record is None else int(json.loads(record)["id"])

    # ---- dicts ----------------------------------------------------------------------------

    def dict_get(self, oid: int, key: bytes) -> bytes | None:
        value: bytes | None = self._redis.hget(f"{_PREFIX}{oid}:d", key)
        return value

    def dict_put(self, oid: int, entries: list[tuple[bytes, bytes]], if_missing: bool) -> bool:
        flat = [part for entry in entries for part in entry]
        keys = [f"{_PREFIX}live", f"{_PREFIX}{oid}:d"]
        written = int(self._dict_put(keys=keys, args=[oid, "1" if if_missing else "0", *flat]))
        if written < 0:
            raise gone("dict")
        return written > 0 or not if_missing

    def dict_pop(self, oid: int, key: bytes) -> bytes | None:
        pipe = self._redis.pipeline()  # MULTI: nothing runs between the read and the delete
        pipe.hget(f"{_PREFIX}{oid}:d", key)
        pipe.hdel(f"{_PREFIX}{oid}:d", key)
        value: bytes | None = pipe.execute()[0]
        return value

    def dict_contains(self, oid: int, key: bytes) -> bool:
        return bool(self._redis.hexists(f"{_PREFIX}{oid}:d", key))

    def dict_len(self, oid: int) -> int:
        return int(self._redis.hlen(f"{_PREFIX}{oid}:d"))

    def dict_items(self, oid: int) -> list[tuple[bytes, bytes]]:
        found: dict[bytes, bytes] = self._redis.hgetall(f"{_PREFIX}{oid}:d")
        return list(found.items())

    def dict_clear(self, oid: int) -> None:
        self._redis.delete(f"{_PREFIX}{oid}:d")

    # ---- queues ---------------------------------------------------------------------------

    def queue_put(self, oid: int, partition: bytes, values: list[bytes], ttl: int) -> bool:
        base = f"{_PREFIX}{oid}"
        keys = [f"{_PREFIX}live", _partition(oid, partition), f"{base}:parts", f"{base}:seq"]
        args: list[bytes | str | int] = [oid, partition.hex(), ttl, PARTITION_LIMIT, *values]
        done = int(self._queue_put(keys=keys, args=args))
        if done < 0:
            raise gone("queue")
        return done == 1

    def queue_get(self, oid: int, partition: bytes, n: int, timeout: float | None) -> list[bytes]:
        key = _partition(oid, partition)
        taken = self._pop(key, n)
        if taken or (timeout is not None and timeout <= 0):
            return taken
        # the server waits for us; 0 means forever to BLPOP, and it counts in milliseconds
        first: Any = self._redis.blpop([key], 0 if timeout is None else max(timeout, 0.001))
        if first is None:
            return []
        rest = self._pop(key, n - 1) if n > 1 else []
        return [first[1][_SEQ_DIGITS:], *rest]

    def queue_len(self, oid: int, partition: bytes | None) -> int:
        if partition is not None:
            return int(self._redis.llen(_partition(oid, partition)))
        keys = [f"{_PREFIX}{oid}:parts"]
        return int(self._queue_all(keys=keys, args=[f"{_PREFIX}{oid}:q:", "len"]))

    def queue_clear(self, oid: int, partition: bytes | None) -> None:
        if partition is not None:
            self._redis.delete(_partition(oid, partition))
            return
        self._queue_all(keys=[f"{_PREFIX}{oid}:parts"], args=[f"{_PREFIX}{oid}:q:", "clear"])

    def queue_after(self, oid: int, partition: bytes, last: int) -> list[tuple[int, bytes]]:
        found: list[bytes] = self._redis.lrange(_partition(oid, partition), 0, -1)
        numbered = ((int(item[:_SEQ_DIGITS]), item[_SEQ_DIGITS:]) for item in found)
        return [(seq, value) for seq, value in numbered if seq > last]

    def _pop(self, key: str, n: int) -> list[bytes]:
        found: list[bytes] | None = self._redis.lpop(key, n)
        return [item[_SEQ_DIGITS:] for item in found or ()]

    def _reap(self) -> None:
        """Delete the ephemeral objects whose process (on this host) died before it could."""
        if owner() is None:
            return
        for kind in _KINDS:
            found: dict[bytes, bytes] = self._redis.hgetall(_objects(kind))
            for key, record in found.items():
                who = json.loads(record).get("owner")
                if who and not owner_alive(who):
                    self.delete(kind, key.decode())


def _objects(kind: str) -> str:
    return f"{_PREFIX}objects:{kind}"


def _partition(oid: int, partition: bytes) -> str:
    return f"{_PREFIX}{oid}:q:{partition.hex()}"


def _safe(url: str) -> str:
    """`url` without its password, for messages."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    return url.replace(f":{parts.password}@", ":***@", 1)
