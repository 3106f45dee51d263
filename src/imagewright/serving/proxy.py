"""The front of each endpoint: a port on 127.0.0.1 forwarding connections to its containers.

Connections are forwarded as bytes, whatever they carry: HTTP/1.1 with keep-alive, streamed
and server-sent responses, large uploads, websockets. The front opens its side of each one
inside the container's network namespace (execute/network.py), to the port the endpoint
listens on there.

A connection counts as one input of the container it goes to, the least busy that has room
(`capacity`, from `@concurrent`). With none free, another container starts, up to
`max_containers`, and the connection waits for the first with room. At least
`min_containers` (and never fewer than one) stay up; one idle for `scaledown_window` beyond
that stops. `replace()` swaps every container for new ones after an edit: the new ones take
new connections as soon as they are up, and the old ones finish what they serve first.

An endpoint that asks for proxy auth checks the first request of each connection for Modal's
Modal-Key and Modal-Secret headers: the connection is its client's once it has shown them.
Everything here runs on one event loop, in a thread of its own; containers start and stop in
worker threads.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import socket
import time
from collections.abc import Callable, Coroutine
from typing import TYPE_CHECKING, Any

from ..exception import Error
from .endpoints import EXIT_GRACE, Endpoint

if TYPE_CHECKING:
    from ..execute.functions import Container

__all__ = ["Front"]

_CHUNK = 1 << 16
_MAX_HEAD = 64 * 1024
_SCALE_TICK = 1.0


class _Replica:
    def __init__(self, container: Container):
        self.container = container
        self.active = 0
        self.idle_since = time.monotonic()
        self.draining = False


class Front:
    """One endpoint's port and containers."""

    def __init__(
        self,
        endpoint: Endpoint,
        log: Callable[[str], None],
        token: tuple[str, str],
    ):
        self.endpoint = endpoint
        self._log, self._token = log, token
        self._replicas: list[_Replica] = []
        self._starting = 0
        self._changed: asyncio.Condition | None = None
        self._server: asyncio.base_events.Server | None = None
        self._failure: str | None = None  # why the last container failed to start
        self._tasks: set[asyncio.Task[None]] = set()

    # ---- lifecycle --------------------------------------------------------------------------

    async def open(self) -> None:
        """Start the floor of containers, wait for one, then listen."""
        self._changed = asyncio.Condition()
        await self._grow(self._floor())
        async with self._changed:
            await self._changed.wait_for(lambda: bool(self._replicas) or self._starting == 0)
        if not self._replicas:
            raise Error(f"{self.endpoint.what} did not start: {self._failure}")
        self._server = await asyncio.start_server(
            self._client, "127.0.0.1", self.endpoint.port, reuse_port=True, limit=_CHUNK
        )
        self._spawn(self._scale_down())

    async def close(self) -> None:
        """Stop listening and stop every container (each finishing its requests first)."""
        if self._server is not None:
            self._server.close()
        for task in list(self._tasks):
            task.cancel()
        replicas, self._replicas = self._replicas, []
        await asyncio.gather(*(self._retire(r) for r in replicas))

    async def replace(self, endpoint: Endpoint) -> None:
        """Serve `endpoint` (the same label, edited) from new containers; retire the old."""
        assert self._changed is not None
        old = list(self._replicas)
        self.endpoint = endpoint
        fresh: list[_Replica] = []
        for _ in range(self._floor()):
            replica = await self._start_one(add=False)
            if replica is not None:
                fresh.append(replica)
        if not fresh:
            self._log(f"kept the previous version: the new one did not start ({self._failure})")
            return
        async with self._changed:
            for replica in old:
                replica.draining = True
            self._replicas = [*fresh, *(r for r in self._replicas if r not in old)]
            self._changed.notify_all()
        for replica in old:
            self._spawn(self._retire(replica))

    def _floor(self) -> int:
        return max(self.endpoint.min_containers, 1)

    def _spawn(self, work: Coroutine[Any, Any, Any]) -> None:
        task = asyncio.ensure_future(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # ---- containers -------------------------------------------------------------------------

    async def _grow(self, count: int) -> None:
        self._starting += count  # counted now: a waiter must not think nothing is starting
        for _ in range(count):
            self._spawn(self._start_one(add=True))

    async def _start_one(self, add: bool) -> _Replica | None:
        """Start a container; with `add` (counted in _starting by _grow), serve from it."""
        assert self._changed is not None
        loop = asyncio.get_running_loop()
        try:
            container = await loop.run_in_executor(None, self.endpoint.start, self._log)
        except Exception as exc:
            self._failure = _reason(exc)
            self._log(f"a container failed to start: {self._failure}")
            return None
        finally:
            async with self._changed:
                self._starting -= add
                self._changed.notify_all()
        replica = _Replica(container)
        if add:
            async with self._changed:
                self._replicas.append(replica)
                self._changed.notify_all()
        return replica

    async def _retire(self, replica: _Replica) -> None:
        """Stop a container once its connections are done (up to the grace period).

        uvicorn, asked to stop, finishes its requests and closes idle keep-alive connections
        itself; a server of the user's own is left its connections until they end.
        """
        assert self._changed is not None
        replica.draining = True
        if self.endpoint.kind in ("web_server", "server"):
            async with self._changed:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(
                        self._changed.wait_for(lambda: replica.active == 0), EXIT_GRACE
                    )
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(None, replica.container.stop, EXIT_GRACE)

    async def _scale_down(self) -> None:
        assert self._changed is not None
        while True:
            await asyncio.sleep(_SCALE_TICK)
            now, window = time.monotonic(), self.endpoint.scaledown_window
            async with self._changed:
                live = [r for r in self._replicas if not r.draining]
                dead = [r for r in live if not r.container.alive()]
                if dead:
                    self._log("a container exited; another takes its place")
                idle = [r for r in live if r.active == 0 and now - r.idle_since > window]
                surplus = idle[: max(len(live) - len(dead) - self._floor(), 0)]
                gone = [*dead, *(r for r in surplus if r not in dead)]
                self._replicas = [r for r in self._replicas if r not in gone]
            for replica in gone:
                if replica not in dead:
                    self._log("stopping an idle container (scaledown_window)")
                self._spawn(self._retire(replica))
            missing = self._floor() - len(self._replicas) - self._starting
            if missing > 0 and not self._failure:
                await self._grow(missing)

    async def _acquire(self) -> _Replica:
        assert self._changed is not None
        async with self._changed:
            while True:
                ready = [
                    r
                    for r in self._replicas
                    if not r.draining and r.active < self.endpoint.capacity and r.container.alive()
                ]
                if ready:
                    replica = min(ready, key=lambda r: r.active)
                    replica.active += 1
                    return replica
                if len(self._replicas) + self._starting < self.endpoint.max_containers:
                    self._failure = None
                    await self._grow(1)
                elif not self._replicas and not self._starting:
                    raise Error(f"no container could start: {self._failure}")
                await self._changed.wait()
                if not self._replicas and not self._starting and self._failure:
                    raise Error(f"no container could start: {self._failure}")

    async def _release(self, replica: _Replica) -> None:
        assert self._changed is not None
        async with self._changed:
            replica.active -= 1
            replica.idle_since = time.monotonic()
            self._changed.notify_all()

    # ---- connections ------------------------------------------------------------------------

    async def _client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = b""
            if self.endpoint.auth:
                head = await _read_head(reader)
                if not self._authorized(head):
                    await _respond(writer, 401, "Missing or invalid Modal-Key and Modal-Secret")
                    return
            try:
                replica = await self._acquire()
            except Error as exc:
                await _respond(writer, 503, str(exc))
                return
            try:
                await self._forward(replica, head, reader, writer)
            finally:
                await self._release(replica)
        except (ConnectionError, asyncio.IncompleteReadError, asyncio.LimitOverrunError):
            pass
        finally:
            writer.close()

    async def _forward(
        self,
        replica: _Replica,
        head: bytes,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
    ) -> None:
        loop = asyncio.get_running_loop()
        sock = replica.container.socket_to()
        try:
            await loop.sock_connect(sock, ("127.0.0.1", self.endpoint.inner_port))
        except OSError as exc:
            sock.close()
            await _respond(writer, 502, f"the container refused the connection: {exc}")
            return
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        inner_reader, inner_writer = await asyncio.open_connection(sock=sock, limit=_CHUNK)
        try:
            if head:
                inner_writer.write(head)
            upstream = asyncio.ensure_future(_pump(reader, inner_writer))
            downstream = asyncio.ensure_future(_pump(inner_reader, writer))
            await downstream  # the container's side ends the exchange
            upstream.cancel()
            with contextlib.suppress(asyncio.CancelledError, ConnectionError):
                await upstream
        finally:
            inner_writer.close()

    def _authorized(self, head: bytes) -> bool:
        found: dict[str, str] = {}
        for line in head.split(b"\r\n")[1:]:
            name, sep, value = line.partition(b":")
            if sep:
                found[name.strip().lower().decode("latin-1")] = value.strip().decode("latin-1")
        key, secret = self._token
        return hmac.compare_digest(found.get("modal-key", ""), key) and hmac.compare_digest(
            found.get("modal-secret", ""), secret
        )


async def _pump(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Copy until end of stream, then half-close: the other direction may still be talking."""
    try:
        while True:
            data = await reader.read(_CHUNK)
            if not data:
                break
            writer.write(data)
            await writer.drain()
        if writer.can_write_eof():
            writer.write_eof()
    except (ConnectionError, OSError):
        pass


async def _read_head(reader: asyncio.StreamReader) -> bytes:
    head = await reader.readuntil(b"\r\n\r\n")
    if len(head) > _MAX_HEAD:
        raise asyncio.LimitOverrunError("request head too large", len(head))
    return head


async def _respond(writer: asyncio.StreamWriter, status: int, message: str) -> None:
    reason = {401: "Unauthorized", 502: "Bad Gateway", 503: "Service Unavailable"}[status]
    body = (message + "\n").encode()
    writer.write(
        f"HTTP/1.1 {status} {reason}\r\ncontent-type: text/plain; charset=utf-8\r\n"
        f"content-length: {len(body)}\r\nconnection: close\r\n\r\n".encode()
        + body
    )
    with contextlib.suppress(ConnectionError):
        await writer.drain()


def _reason(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[-1] if text else ''}"
