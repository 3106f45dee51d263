"""Exceptions across the channel: how a container sends one, and how the caller rebuilds it.

The container sends the exception's pickle when it round-trips, and always its type, message
and traceback text. The caller gets the same exception type back, with the remote traceback
attached as its cause; one that cannot be rebuilt becomes a RemoteError with its text. Used on
the host and inside containers (a function calling another), so: standard library and the
ground floor only, Python 3.9 syntax.
"""

from __future__ import annotations

import contextlib
import pickle
import traceback
from typing import Any

from ..exception import RemoteError
from .protocol import dumps, loads

__all__ = ["RemoteTraceback", "exception_message", "rebuild_exception"]


class RemoteTraceback(Exception):
    """Carries the traceback text of an exception raised inside a container."""

    def __str__(self) -> str:
        return str(self.args[0])


def exception_message(exc: BaseException, call: int | None = None) -> tuple[dict[str, Any], bytes]:
    """The "exception" message for `exc`: its pickle when it round-trips, and always its text."""
    try:
        pickled = dumps(exc)
        loads(pickled)  # an exception that pickles but cannot be rebuilt is sent as text only
    except Exception:
        pickled = b""
    header: dict[str, Any] = {
        "kind": "exception",
        "type": f"{type(exc).__module__}.{type(exc).__qualname__}",
        "message": str(exc),
        "traceback": "".join(traceback.format_exception(type(exc), exc, exc.__traceback__)),
    }
    if call is not None:
        header["id"] = call
    return header, pickled


def rebuild_exception(
    header: dict[str, Any], payload: bytes | memoryview, doing: str
) -> BaseException:
    """The exception an "exception" message carries; `doing` ("running mod:f") words the
    RemoteError used when it cannot be rebuilt."""
    exc: BaseException | None = None
    if len(payload):
        with contextlib.suppress(Exception):
            exc = pickle.loads(payload)
        if not isinstance(exc, BaseException):
            exc = None
    if exc is None:
        exc = RemoteError(f"{header.get('type')} while {doing}: {header.get('message')}")
    exc.__cause__ = RemoteTraceback(f"\n\nRemote traceback:\n{header.get('traceback')}")
    return exc
