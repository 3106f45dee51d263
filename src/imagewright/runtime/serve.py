"""Inside the container: run the inputs the host sends, the way the function's decorators ask.

A `Service` says what a container serves: one entry for a function, one per `@method` of a
class instance, with the hooks to run first (`@enter`) and last (`@exit`), and its web
endpoints (web.py), of which the host names the one a container serves. imagewright's
Function and Cls build it (their `_imagewright_service`); a plain function gets one by default.

An input runs
- inline, one at a time: the default, and the cheapest path;
- in a pool of `max_inputs` threads (`@concurrent` on a plain `def`);
- on one event loop in its own thread (`async def`), as many at once as the host sends;
- in batches (`@batched`): inputs wait up to `wait_ms` to form lists of at most
  `max_batch_size`, the function takes lists and returns one, and each input gets its item.
A generator sends each value as an "item" message, then "done". The host decides how many
inputs are in flight (one, or the decorator's limit), so nothing here needs to count.

Replies leave from several threads at once, so sending holds a lock: a large message is several
datagrams, which must not interleave. Imported inside the container: standard library only,
Python 3.9 syntax.
"""

from __future__ import annotations

import queue
import socket
import sys
import threading
import time
import traceback
from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Any

from .context import input_ids
from .errors import exception_message
from .protocol import dumps, loads, recv_message, send_message

if TYPE_CHECKING:
    import asyncio
    import concurrent.futures

    from .web import WebApp

__all__ = ["Entry", "Service", "serve"]


# inspect's CO_* flags, read off the code object here: importing inspect (and the ast, dis
# and tokenize it brings) would cost every container's start several milliseconds
_CO_GENERATOR, _CO_COROUTINE, _CO_ASYNC_GENERATOR = 0x20, 0x80, 0x200


def _code_flags(call: Callable[..., Any]) -> int:
    """The flags of the function under `call` (a bound method's, a decorated one's)."""
    target: Any = call
    for _ in range(100):
        target = getattr(target, "__func__", target)
        inner = getattr(target, "__wrapped__", None)
        if inner is None:
            break
        target = inner
    code = getattr(target, "__code__", None)
    return int(code.co_flags) if code is not None else 0


class Entry:
    """One callable a container serves, with how its inputs run."""

    def __init__(self, call: Callable[..., Any], batch_size: int = 0, batch_wait_ms: int = 0):
        self.call = call
        flags = _code_flags(call)
        self.is_async = bool(flags & (_CO_COROUTINE | _CO_ASYNC_GENERATOR))
        self.is_generator = bool(flags & (_CO_GENERATOR | _CO_ASYNC_GENERATOR))
        self.batch_size = batch_size
        self.batch_wait = batch_wait_ms / 1000


class Service:
    """What one container serves: entries by name ("" for a function), and its hooks."""

    def __init__(
        self,
        entries: Mapping[str, Entry],
        max_inputs: int = 1,
        enter: Iterable[Callable[[], Any]] = (),
        exit: Iterable[Callable[[], Any]] = (),
        webs: Mapping[str, WebApp] | None = None,
    ):
        self.entries = dict(entries)
        self.max_inputs = max_inputs
        self.enter_hooks = list(enter)
        self.exit_hooks = list(exit)
        self.webs = dict(webs or {})

    @classmethod
    def of_function(cls, function: Callable[..., Any]) -> Service:
        return cls({"": Entry(function)})


class _Input:
    __slots__ = ("args", "call", "ids", "kwargs")

    def __init__(self, header: dict[str, Any], args: tuple[Any, ...], kwargs: dict[str, Any]):
        self.call: int = header["id"]
        self.ids = (str(header.get("input", "")), str(header.get("call", "")))
        self.args, self.kwargs = args, kwargs


class _Dispatcher:
    def __init__(self, sock: socket.socket, token: bytes, service: Service):
        self.sock, self.token, self.service = sock, token, service
        self._send_lock = threading.Lock()
        self._pool: concurrent.futures.ThreadPoolExecutor | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._batchers: dict[int, _Batcher] = {}
        self.stop_web: Callable[[float], None] | None = None
        if service.max_inputs > 1:
            import concurrent.futures  # (asyncio and the pool load only when needed: it is
            # what the container's start costs)

            self._pool = concurrent.futures.ThreadPoolExecutor(
                service.max_inputs, thread_name_prefix="imagewright-input"
            )

    # ---- sending ----------------------------------------------------------------------------

    def send(self, header: dict[str, Any], payload: bytes = b"") -> None:
        sys.stdout.flush()  # what the input printed is relayed before its answer
        sys.stderr.flush()
        with self._send_lock:
            send_message(self.sock, header, payload, token=self.token)

    def _reply(self, call: int, value: Any) -> None:
        try:
            payload = dumps(value)
        except Exception as exc:  # an unpicklable result is the input's error
            self.send(*exception_message(exc, call))
            return
        self.send({"kind": "result", "id": call}, payload)

    def _item(self, call: int, value: Any) -> None:
        self.send({"kind": "item", "id": call}, dumps(value))

    # ---- running ----------------------------------------------------------------------------

    def loop(self) -> asyncio.AbstractEventLoop:
        """The container's one event loop, started on first use in a thread of its own."""
        import asyncio

        if self._loop is None:
            loop = asyncio.new_event_loop()
            threading.Thread(target=loop.run_forever, name="imagewright-loop", daemon=True).start()
            self._loop = loop
        return self._loop

    def run_hook(self, hook: Callable[[], Any]) -> None:
        result = hook()
        if hasattr(result, "__await__"):  # an async hook
            import asyncio

            asyncio.run_coroutine_threadsafe(_awaited(result), self.loop()).result()

    def run_sync(self, entry: Entry, item: _Input) -> None:
        token = input_ids.set(item.ids)
        try:
            result = entry.call(*item.args, **item.kwargs)
            if entry.is_generator:
                for value in result:
                    self._item(item.call, value)
                self.send({"kind": "done", "id": item.call})
            else:
                self._reply(item.call, result)
        except BaseException as exc:  # the user's exception goes back to the caller
            self.send(*exception_message(exc, item.call))
        finally:
            input_ids.reset(token)

    async def run_async(self, entry: Entry, item: _Input) -> None:
        input_ids.set(item.ids)  # a task runs in a copy of the context: this stays in it
        try:
            if entry.is_generator:
                async for value in entry.call(*item.args, **item.kwargs):
                    self._item(item.call, value)
                self.send({"kind": "done", "id": item.call})
            else:
                self._reply(item.call, await entry.call(*item.args, **item.kwargs))
        except BaseException as exc:
            self.send(*exception_message(exc, item.call))

    def dispatch(self, entry: Entry, item: _Input) -> None:
        if entry.batch_size:
            self._batcher(entry).inputs.put(item)
        elif entry.is_async:
            import asyncio

            asyncio.run_coroutine_threadsafe(self.run_async(entry, item), self.loop())
        elif self._pool is not None:
            self._pool.submit(self.run_sync, entry, item)
        else:
            self.run_sync(entry, item)

    def _batcher(self, entry: Entry) -> _Batcher:
        batcher = self._batchers.get(id(entry))
        if batcher is None:
            batcher = self._batchers[id(entry)] = _Batcher(self, entry)
        return batcher

    # ---- the loop ---------------------------------------------------------------------------

    def serve(self) -> None:
        while True:
            request = recv_message(self.sock)
            if request is None:
                return
            header, payload = request
            if header["kind"] == "stop":
                self._stop(float(header.get("grace") or 0))
                return
            if header["kind"] == "call":
                self._take(header, payload)
            elif header["kind"] == "calls":  # several inputs of a .map in one message
                at = 0
                for call, input_id, size in zip(header["ids"], header["inputs"], header["sizes"]):  # noqa: B905 (3.9)
                    one = {"id": call, "input": input_id, "call": header.get("call", "")}
                    one["method"] = header.get("method", "")
                    self._take(one, payload[at : at + size])
                    at += size
            else:
                return

    def _take(self, header: dict[str, Any], payload: memoryview) -> None:
        """Start one input (or answer it with the error that stops it from starting)."""
        try:  # arguments that fail to unpickle are that input's error, not the container's
            args, kwargs = loads(payload)
        except BaseException as exc:
            self.send(*exception_message(exc, header["id"]))
            return
        item = _Input(header, args, kwargs)
        entry = self.service.entries.get(header.get("method", ""))
        if entry is None:
            error = AttributeError(f"no method {header.get('method')!r} to call")
            self.send(*exception_message(error, item.call))
            return
        self.dispatch(entry, item)

    def _stop(self, grace: float) -> None:
        """Let the web server finish its requests, run the @exit hooks, then say so: the host
        kills the container after that."""
        if self.stop_web is not None:
            self.stop_web(grace)
        if self._pool is not None:
            self._pool.shutdown(wait=True)
        for hook in self.service.exit_hooks:
            try:
                self.run_hook(hook)
            except BaseException:
                traceback.print_exc()
        self.send({"kind": "stopped"})


async def _awaited(awaitable: Any) -> Any:
    return await awaitable


class _Batcher:
    """Groups one entry's inputs into lists, calls it once per list, and splits the answer."""

    def __init__(self, dispatcher: _Dispatcher, entry: Entry):
        self.dispatcher, self.entry = dispatcher, entry
        import inspect

        self.inputs: queue.Queue[_Input] = queue.Queue()
        self.signature = inspect.signature(entry.call)
        threading.Thread(target=self._run, name="imagewright-batcher", daemon=True).start()

    def _run(self) -> None:
        while True:
            batch = [self.inputs.get()]
            deadline = time.monotonic() + self.entry.batch_wait
            while len(batch) < self.entry.batch_size:
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                try:
                    batch.append(self.inputs.get(timeout=left))
                except queue.Empty:
                    break
            self._call(batch)

    def _call(self, batch: list[_Input]) -> None:
        import asyncio

        dispatcher = self.dispatcher
        try:
            names = list(self.signature.parameters)
            columns: dict[str, list[Any]] = {name: [] for name in names}
            for item in batch:
                bound = self.signature.bind(*item.args, **item.kwargs)
                for name in names:
                    if name not in bound.arguments:
                        raise TypeError(f"a batched input is missing the argument {name!r}")
                    columns[name].append(bound.arguments[name])
            token = input_ids.set(batch[0].ids)
            try:
                result = self.entry.call(*columns.values())
                if hasattr(result, "__await__"):
                    result = asyncio.run_coroutine_threadsafe(
                        _awaited(result), dispatcher.loop()
                    ).result()
            finally:
                input_ids.reset(token)
            if not isinstance(result, list) or len(result) != len(batch):
                raise TypeError(
                    f"Output of batched function {self.entry.call.__name__} must be a list of "
                    f"the same length as its inputs ({len(batch)})"
                )
        except BaseException as exc:
            for item in batch:
                dispatcher.send(*exception_message(exc, item.call))
            return
        for item, value in zip(batch, result):  # noqa: B905  (3.9; lengths checked above)
            dispatcher._reply(item.call, value)


def serve(sock: socket.socket, token: bytes, service: Service, web: str | None = None) -> None:
    """Run the @enter hooks, start the web endpoint named `web` if any, say "ready", then
    answer inputs until the host stops or leaves.

    An exception from a hook, or from starting the endpoint, is the container's answer instead
    of "ready".
    """
    dispatcher = _Dispatcher(sock, token, service)
    try:
        for hook in service.enter_hooks:
            dispatcher.run_hook(hook)
        if web is not None:
            from .web import start_web

            if web not in service.webs:
                raise LookupError(f"no web endpoint {web!r} to serve")
            dispatcher.stop_web = start_web(service.webs[web])
    except BaseException as exc:
        dispatcher.send(*exception_message(exc))
        return
    dispatcher.send({"kind": "ready", "python": sys.version.split()[0]})
    dispatcher.serve()
