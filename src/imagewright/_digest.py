"""SHA-256 objects that cost a short process little: the interpreter's own implementation for
the first few hundred KiB a process hashes, OpenSSL's (hashlib) for everything after.

`import hashlib` loads OpenSSL's libcrypto, about 3 ms of every start, while a cached build
hashes only a few small JSON documents and usually a few small files (and so does a copy
helper's run). The built-in module loads in a tenth of that time but hashes about 6 times
slower, so once a process has hashed _BULK bytes it switches to hashlib for good. Both compute
the same SHA-256: which one ran never shows in a digest.

It sits on the ground floor, standard library only, for the planner, the store and the copy
helper alike.
"""

from __future__ import annotations

TYPE_CHECKING = False  # typing.TYPE_CHECKING, without importing typing in the copy helper
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Protocol

    class Hash(Protocol):
        def update(self, data: bytes, /) -> None: ...

        def hexdigest(self) -> str: ...


__all__ = ["constructor", "hexdigest", "sha256"]

# Where loading hashlib has paid for itself: the built-in module takes ~4.5 ms more per MiB.
_BULK = 512 << 10
_hashed = 0


def _find_builtin() -> Callable[[], Hash] | None:
    for name in ("_sha256", "_sha2"):  # CPython up to 3.11, and from 3.12 on
        try:
            found: Callable[[], Hash] = __import__(name).sha256
            return found
        except ImportError:
            continue
    return None  # an interpreter built without it


_builtin = _find_builtin()


def sha256(size: int) -> Hash:
    """A new SHA-256 object, for hashing about `size` bytes."""
    global _hashed
    _hashed += size
    return constructor(_hashed)()


def constructor(total: int) -> Callable[[], Hash]:
    """The SHA-256 constructor for hashing `total` bytes in all, imported now: the copy helper
    (execute/copyin.py) gets it before it chroots, as nothing may be imported after that."""
    if _builtin is not None and total <= _BULK:
        return _builtin
    import hashlib

    return hashlib.sha256


def hexdigest(data: bytes) -> str:
    """The hex SHA-256 of `data`."""
    h = sha256(len(data))
    h.update(data)
    return h.hexdigest()
