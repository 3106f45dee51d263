"""The wire format between the host and a container: length-prefixed pickles over a socket.

Imported on both sides, so it sticks to the standard library and to Python 3.9 syntax.
Values are pickled with the standard pickle where they can be, and with cloudpickle (bound into
the container next to this package) only for what plain pickle refuses, such as lambdas.
"""

from __future__ import annotations

import pickle
import socket
import struct
from typing import Any

__all__ = ["dumps", "loads", "recv_message", "send_message"]

_HEADER = struct.Struct("!Q")
PROTOCOL = 4  # readable by every Python from 3.8 on


def dumps(value: Any) -> bytes:
    """Pickle `value`, falling back to cloudpickle for functions and other local objects."""
    try:
        return pickle.dumps(value, protocol=PROTOCOL)
    except (pickle.PicklingError, AttributeError, TypeError):
        import cloudpickle

        return cloudpickle.dumps(value, protocol=PROTOCOL)


def loads(data: bytes) -> Any:
    return pickle.loads(data)


def send_message(sock: socket.socket, message: dict[str, Any]) -> None:
    """Send one message: a dict of picklable values."""
    body = pickle.dumps(message, protocol=PROTOCOL)
    sock.sendall(_HEADER.pack(len(body)) + body)


def recv_message(sock: socket.socket) -> dict[str, Any] | None:
    """Receive one message, or None when the peer closed the connection."""
    header = _recv_exactly(sock, _HEADER.size)
    if header is None:
        return None
    (size,) = _HEADER.unpack(header)
    body = _recv_exactly(sock, size)
    if body is None:
        return None
    return pickle.loads(body)


def _recv_exactly(sock: socket.socket, size: int) -> bytes | None:
    chunks = []
    while size:
        chunk = sock.recv(min(size, 1 << 20))
        if not chunk:
            return None
        chunks.append(chunk)
        size -= len(chunk)
    return b"".join(chunks)
