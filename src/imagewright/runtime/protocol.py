"""The wire format between the host and a container: authenticated datagrams over a socketpair.

Imported on both sides, so it sticks to the standard library and to Python 3.9 syntax.

The channel is a SOCK_SEQPACKET socketpair whose container end the container inherits as an fd:
there is no socket path, so nothing else can connect. A message is a JSON header (plain data:
its kind, type names, traceback text) and an opaque payload. Only payloads are ever pickles
(a call's arguments, its result or exception), and the host unpickles one only as the answer to
a call it made: calling a function trusts its image, as it does in Modal.

Code in the container's process can still find the fd (a sitecustomize, say). So the host first
sends a random token, which the bootstrap reads before any such code runs, and every datagram
from the container must start with it: the host drops any other without losing its place, since
datagrams arrive whole and never interleaved.

Values are pickled with the standard pickle where they can be, and with cloudpickle (bound into
the container next to this package) only for what plain pickle refuses, such as lambdas.
"""

from __future__ import annotations

import hmac
import json
import pickle
import select
import socket
import struct
import threading
import time
from collections.abc import Iterator
from typing import Any

__all__ = [
    "CALLS_FD_ENV",
    "CHANNEL_FD_ENV",
    "FUNCTION_ENV",
    "TOKEN_SIZE",
    "ProtocolError",
    "dumps",
    "loads",
    "recv_message",
    "send_message",
]

PROTOCOL = 4  # readable by every Python from 3.8 on
TOKEN_SIZE = 32
# How the host hands the channel over in the container's environment: the fd of its end, and
# the function to serve ("module:qualname").
CHANNEL_FD_ENV = "IMAGEWRIGHT_CHANNEL_FD"
# the fd of the second channel, on which the container calls other functions (calls.py)
CALLS_FD_ENV = "IMAGEWRIGHT_CALLS_FD"
FUNCTION_ENV = "IMAGEWRIGHT_FUNCTION"
# Message bytes per datagram: well under the default socket buffer (about 200 KiB), which
# bounds a datagram's size.
_CHUNK = 1 << 16
_START = struct.Struct("!IQ")  # header length, payload length; then header, then payload
# Per message costs count (`.map` sends two per input): one JSON codec each way, compact, and
# one receive buffer per thread rather than a fresh 64 KiB one per datagram.
_ENCODE = json.JSONEncoder(separators=(",", ":")).encode
_DECODE = json.JSONDecoder().decode
_MSG_TRUNC = int(socket.MSG_TRUNC)
_buffers = threading.local()


class ProtocolError(Exception):
    """A message that carried the token but is not one our peer sends."""


def dumps(value: Any) -> bytes:
    """Pickle `value`, falling back to cloudpickle for functions and other local objects."""
    try:
        return pickle.dumps(value, protocol=PROTOCOL)
    except (pickle.PicklingError, AttributeError, TypeError):
        import cloudpickle  # untyped (no stubs): its dumps returns bytes, as pickle's does

        data: bytes = cloudpickle.dumps(value, protocol=PROTOCOL)
        return data


def loads(data: bytes | memoryview) -> Any:
    return pickle.loads(data)


def send_message(
    sock: socket.socket, header: dict[str, Any], payload: bytes = b"", token: bytes = b""
) -> None:
    """Send a header of plain data and an opaque payload, each datagram led by `token`."""
    meta = _ENCODE(header).encode()
    prefix = _START.pack(len(meta), len(payload)) + meta
    if len(prefix) + len(payload) <= _CHUNK:  # the common case: one datagram
        sock.sendmsg([token, prefix, payload])
        return
    for pieces in _datagrams((prefix, payload)):
        sock.sendmsg([token, *pieces])


def recv_message(
    sock: socket.socket, token: bytes = b"", timeout: float | None = None
) -> tuple[dict[str, Any], memoryview] | None:
    """The next message (header, payload) whose datagrams carry `token`, or None when the
    peer is gone. Raises TimeoutError after `timeout` seconds in all."""
    deadline = None if timeout is None else time.monotonic() + timeout
    first = getattr(_buffers, "first", None)
    if first is None:
        first = _buffers.first = bytearray(_CHUNK)
    size = _recv_datagram(sock, token, memoryview(first), deadline)
    if size is None:
        return None
    if size < _START.size:
        raise ProtocolError("a message shorter than its lengths")
    meta_size, payload_size = _START.unpack_from(first)
    total = _START.size + meta_size + payload_size
    if size > total:
        raise ProtocolError("a datagram longer than its message")
    if size == total:  # one datagram: copy out just its bytes (the buffer serves the next)
        view = memoryview(bytes(first[:size]))
    else:
        try:
            message = bytearray(total)
        except (MemoryError, OverflowError):
            raise ProtocolError(f"a message of {total} bytes") from None
        view = memoryview(message)
        view[:size] = first[:size]
    while size < total:
        got = _recv_datagram(sock, token, view[size : size + min(_CHUNK, total - size)], deadline)
        if got is None:
            return None
        size += got
    try:
        header = _DECODE(bytes(view[_START.size : _START.size + meta_size]).decode())
    except ValueError:  # UnicodeDecodeError too
        raise ProtocolError("a header that is not JSON") from None
    if not isinstance(header, dict) or not isinstance(header.get("kind"), str):
        raise ProtocolError("a header without a kind")
    return header, view[_START.size + meta_size :]


def _datagrams(parts: tuple[bytes, ...]) -> Iterator[list[memoryview]]:
    """`parts` as consecutive runs of at most _CHUNK bytes, without copying them."""
    pending: list[memoryview] = []
    room = _CHUNK
    for part in parts:
        view = memoryview(part).cast("B")
        while len(view):
            piece, view = view[:room], view[room:]
            pending.append(piece)
            room -= len(piece)
            if not room:
                yield pending
                pending, room = [], _CHUNK
    if pending:
        yield pending


def _recv_datagram(
    sock: socket.socket, token: bytes, into: memoryview, deadline: float | None
) -> int | None:
    """Receive the next datagram led by `token` into `into`; its length, or None at EOF.

    Any other datagram is dropped: whoever wrote it does not know the token. A datagram cannot
    be larger than `into` unless it is one of those.
    """
    mark = bytearray(len(token))
    buffers: list[bytearray | memoryview] = [mark, into] if token else [into]
    while True:
        if deadline is None:
            sock.settimeout(None)
        else:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError
            sock.settimeout(left)
        size, _, flags, _ = sock.recvmsg_into(buffers)
        if size == 0 and _hung_up(sock):
            return None
        if flags & _MSG_TRUNC or size < len(token) or not hmac.compare_digest(mark, token):
            continue
        return size - len(token)


def _hung_up(sock: socket.socket) -> bool:
    # recv gives 0 bytes both at EOF and for an empty datagram, which anyone holding the other
    # end may send: only a hangup ends the channel.
    poller = select.poll()
    poller.register(sock.fileno(), select.POLLRDHUP)
    return any(events & (select.POLLHUP | select.POLLRDHUP) for _, events in poller.poll(0))
