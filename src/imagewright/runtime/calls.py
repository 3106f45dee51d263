"""Inside a container: calls to other functions of the app (`other.remote(x)` in a function).

They go to the host on a channel of their own (the host hands its fd over as
IMAGEWRIGHT_CALLS_FD), so they never wait on the channel that brings this container its
inputs, whatever runs there. The host runs each in the target's own containers and sends the
replies back; it reads only the request's header (which function, which verb), never the
pickled inputs or results, which stay between the two containers.

A request is {"kind": "invoke", "id", "target", "verb", "sizes"} with the inputs' pickles one
after another; the answer is {"kind": "answer", "id", "replies"} with each reply's payload in
the same way. Many may be in flight: one reader thread hands each answer to its caller.
Standard library only, Python 3.9 syntax.
"""

from __future__ import annotations

import queue
import socket
import threading
from typing import Any

from .protocol import recv_message, send_message

__all__ = ["Client", "available", "call", "open_channel"]

Reply = tuple[dict[str, Any], bytes]


class Client:
    """Calls over one channel: a container's to its host, or a process's to a deployment."""

    def __init__(self, sock: socket.socket, token: bytes):
        self._sock, self._token = sock, token
        self._lock = threading.Lock()
        self._waiting: dict[int, queue.Queue[list[Reply] | None]] = {}
        self._next = 0
        self._reader: threading.Thread | None = None

    def call(self, target: dict[str, Any], verb: str, inputs: list[bytes]) -> list[Reply]:
        answer: queue.Queue[list[Reply] | None] = queue.Queue(maxsize=1)
        with self._lock:
            self._next += 1
            call = self._next
            self._waiting[call] = answer
            if self._reader is None:
                self._reader = threading.Thread(
                    target=self._read, name="imagewright-calls", daemon=True
                )
                self._reader.start()
            header = {
                "kind": "invoke",
                "id": call,
                "target": target,
                "verb": verb,
                "sizes": [len(data) for data in inputs],
            }
            send_message(self._sock, header, b"".join(inputs), token=self._token)
        replies = answer.get()
        if replies is None:
            raise ConnectionError("the host closed the calls channel")
        return replies

    def _read(self) -> None:
        while True:
            try:
                message = recv_message(self._sock)
            except OSError:
                message = None
            if message is None:
                with self._lock:
                    waiting, self._waiting = self._waiting, {}
                for answer in waiting.values():
                    answer.put(None)
                return
            header, payload = message
            replies, at = [], 0
            for reply in header.get("replies", []):
                size = int(reply.pop("size", 0))
                replies.append((reply, bytes(payload[at : at + size])))
                at += size
            with self._lock:
                found = self._waiting.pop(header.get("id", -1), None)
            if found is not None:
                found.put(replies)


_client: Client | None = None


def open_channel(fd: int, token: bytes) -> None:
    """Take over the calls channel (the bootstrap does, before any of the image's code runs)."""
    global _client
    sock = socket.socket(fileno=fd)
    sock.set_inheritable(False)
    _client = Client(sock, token)


def available() -> bool:
    return _client is not None


def call(target: dict[str, Any], verb: str, inputs: list[bytes]) -> list[Reply]:
    """Have the host run `verb` ("remote" or "map") of `target` on the pickled inputs; the
    replies, one per input, each a "result" or "exception" header with its pickle."""
    if _client is None:
        raise RuntimeError("this container cannot call other functions")
    return _client.call(target, verb, inputs)
