"""Function: a user function bound to an image, called locally or in containers.

Calls run in a function's pool of warm containers, as on Modal: at most `max_containers`, each
serving many inputs in turn (several at once under `@concurrent` or `@batched`), kept until idle
for the function's `scaledown_window`. `.remote()` takes one container of the pool for one input;
`.map()` spreads its inputs over the pool. A class's methods (cls.py) call through the same
machinery, `Invoker`, with containers that live as long as the app runs.

Every call has a function call id and every input an input id, which the function sees as
`current_function_call_id()` and `current_input_id()`. `Retries` retry each input, with their
backoff. Every blocking method has an async twin: `f.remote.aio(...)`, `f.map.aio(...)`.

A FunctionCall is one `.spawn()` or `.experimental_spawn_map()`: one input or many, whose
results `.get(index=...)` and `.iter()` wait for. What Modal's service tells of a function
(stats, logs, metrics, autoscaler settings) has no local counterpart and raises.
"""

from __future__ import annotations

import contextlib
import contextvars
import functools
import itertools
import os
import queue
import threading
import time
import weakref
from collections.abc import Callable, Iterable, Iterator, Mapping
from datetime import datetime
from pathlib import PurePosixPath
from typing import TYPE_CHECKING, Any, NamedTuple, NoReturn, TypeVar

from . import settings
from ._aio import iter_twin, twin
from ._callsite import warn_user
from ._unsupported import NoLocalMeaning, no_local_meaning
from .cloud import Client, ModalObject
from .exception import ExecutionError, InvalidError, NotFoundError, RemoteError
from .retries import Retries, retry_policy
from .schedule import Schedule

if TYPE_CHECKING:
    import concurrent.futures

    from .definition.image import Image
    from .execute.functions import Container, Runner
    from .execute.limits import Limits
    from .partial import PartialFunction
    from .runtime.serve import Service
    from .secret import Secret
    from .volume import Volume

__all__ = ["Deployed", "Function", "FunctionCall", "Invoker", "Options", "Pool"]

T = TypeVar("T")

_calls: dict[str, FunctionCall] = {}  # FunctionCall.from_id looks calls up here
# Function.from_id looks functions up here: the first made with an id (not its copies)
_functions: weakref.WeakValueDictionary[str, Function] = weakref.WeakValueDictionary()
# the spawned call the current thread runs, so that cancelling it finds its container
_current_call: contextvars.ContextVar[FunctionCall | None] = contextvars.ContextVar(
    "imagewright_call", default=None
)
_calls_lock = threading.Lock()


# How often an input runs again because the machine running it went away (ContainerLost),
# before that is its error.
_LOST_LIMIT = 3
_SCALEDOWN_WINDOW = 60.0  # Modal's default: seconds an idle container is kept warm
_BATCH = 32  # at most this many `.map` inputs in one message
_ID_PREFIX = os.urandom(5).hex()  # ids of different processes differ; within one, a count
_id_count = itertools.count()


def _new_id(prefix: str) -> str:
    return f"{prefix}-{_ID_PREFIX}{next(_id_count):08x}"


def _new_call(futures: list[concurrent.futures.Future[Any]]) -> FunctionCall:
    """A FunctionCall of these inputs' results, which FunctionCall.from_id finds."""
    call = FunctionCall(futures, _new_id("fc"))
    with _calls_lock:
        _calls[call.object_id] = call
    return call


class Options(NamedTuple):
    """How a function's (or class's) containers are made and its calls run."""

    image: Image
    secrets: tuple[Secret, ...]
    volumes: Mapping[str, Volume]
    timeout: float
    retries: Retries | None
    max_containers: int | None
    include_source: bool
    gpu: tuple[str, ...] | None  # acceptable GPU types, first choice first
    limits: Limits | None
    bucket_mounts: tuple[str, ...] = ()  # where CloudBucketMounts were asked for: not run here
    # what `imagewright serve` honours: warm and idle containers, and a schedule to run on
    min_containers: int | None = None
    scaledown_window: int | None = None
    schedule: Schedule | None = None


class FunctionCall(ModalObject):
    """A call started with `.spawn()` (one input) or `.experimental_spawn_map()` (one per
    item); `.get()` waits for a result, `.iter()` for each in turn."""

    _id_prefix = "fc"

    def __init__(self, futures: list[concurrent.futures.Future[Any]], object_id: str):
        self._futures = futures  # one per input, in order
        self._object_id = object_id
        self._cancelled = False
        self._running: set[Runner] = set()  # the containers running its inputs now
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"FunctionCall({self.object_id!r})"

    @property
    def object_id(self) -> str:
        return self._object_id

    def _get(self, timeout: float | None = None, index: int = 0) -> Any:
        import concurrent.futures

        if not 0 <= index < len(self._futures):
            raise InvalidError(f"Invalid index {index} for {len(self._futures)} inputs")
        try:
            return self._futures[index].result(timeout=timeout)
        except concurrent.futures.TimeoutError:
            from .exception import OutputExpiredError

            raise OutputExpiredError(f"the call did not finish within {timeout} s") from None
        except concurrent.futures.CancelledError:
            raise RemoteError(f"{self.object_id} was cancelled") from None

    @twin
    def get(self, timeout: float | None = None, *, index: int = 0) -> Any:
        """The return value (or exception) of the call's input `index` (0 for `.spawn()`),
        waiting at most `timeout` seconds."""
        return self._get(timeout, index)

    @iter_twin
    def iter(self, *, start: int = 0, end: int | None = None) -> Iterator[Any]:
        """The results of inputs `start` to `end` (excluded; default: all), in order, each as
        soon as it is there."""
        stop = len(self._futures) if end is None else end
        if start < 0 or stop > len(self._futures):
            raise ValueError(
                f"Invalid index range: {start} to {stop} for {len(self._futures)} inputs"
            )
        return (self._get(None, index) for index in range(start, stop))

    @twin
    def num_inputs(self) -> int:
        """How many inputs the call has: 1 for `.spawn()`, one per item for a spawned map."""
        return len(self._futures)

    logs = NoLocalMeaning()

    @twin
    def cancel(self, terminate_containers: bool = False) -> None:
        """Stop the call: the containers running its inputs are killed, inputs not started
        never will be, and `.get()` raises."""
        with self._lock:
            self._cancelled = True
            running = list(self._running)
        for future in self._futures:
            future.cancel()  # (those not started yet never will be)
        for container in running:
            container.kill()

    @contextlib.contextmanager
    def _runs_in(self, container: Runner) -> Iterator[None]:
        with self._lock:
            if self._cancelled:
                raise RemoteError(f"{self.object_id} was cancelled")
            self._running.add(container)
        try:
            yield
        finally:
            with self._lock:
                self._running.discard(container)

    @twin
    def get_call_graph(self) -> list[Any]:
        """Modal's call graph of a call: not recorded locally, so it is empty."""
        return []

    @staticmethod
    def from_id(function_call_id: str, client: object = None) -> FunctionCall:
        """The call with this id, spawned earlier by this process."""
        with _calls_lock:
            call = _calls.get(function_call_id)
        if call is None:
            raise NotFoundError(
                f"No function call {function_call_id!r}: imagewright finds calls spawned by this "
                "process only."
            )
        return call

    @staticmethod
    def gather(*function_calls: FunctionCall) -> list[Any]:
        """Wait for all the calls; their results in order (the first exception is raised)."""
        return [call._get() for call in function_calls]


class Pool:
    """Containers of one function or class instance, each with `capacity` inputs at once.

    `acquire()` hands out the fullest container that still has room, else starts a new one
    while there are fewer than `limit`; past that, a `bounded` pool (max_containers was set, or
    on a cluster) waits for room, and any other starts one more, as Modal's autoscaler would
    for calls at once.
    `.map` spreads over `limit` containers either way. A container that broke (timed out,
    died) is stopped on release; the rest stop on `close()`, or, with `scaledown`, once idle
    that many seconds (Modal's scaledown_window), so a program that maps again soon finds them
    warm and one that has moved on does not keep them.
    """

    def __init__(
        self,
        start: Callable[[], Runner],
        capacity: int,
        limit: int,
        grace: float = 0,
        scaledown: float | None = None,
        *,
        bounded: bool = True,
    ):
        self._start, self.capacity, self.limit, self._grace = start, capacity, limit, grace
        self._scaledown, self._bounded = scaledown, bounded
        self._busy: dict[Runner, int] = {}
        self._idle_since: dict[Runner, float] = {}
        self._reaping = False
        self._starting = 0
        self._closed = False
        self._room = threading.Condition()

    def acquire(self) -> Runner:
        with self._room:
            while True:
                if self._closed:
                    raise ExecutionError("the app stopped running")
                free = [c for c, n in self._busy.items() if n < self.capacity]
                if free:
                    container = max(free, key=self._busy.__getitem__)
                    self._busy[container] += 1
                    self._idle_since.pop(container, None)
                    return container
                # past `limit` (unbounded), only once the ones starting have started: inputs
                # waiting for room in those must not each start a container of their own
                under = len(self._busy) + self._starting < self.limit
                if under or (not self._bounded and not self._starting):
                    self._starting += 1
                    break
                self._room.wait()
        try:
            container = self._start()
        except BaseException:
            with self._room:
                self._starting -= 1
                self._room.notify_all()
            raise
        with self._room:
            self._starting -= 1
            self._busy[container] = 1
            self._room.notify_all()  # its other slots, and whether to start another
        return container

    def release(self, container: Runner, broken: bool) -> None:
        with self._room:
            self._busy[container] -= 1
            if broken:
                del self._busy[container]
                self._idle_since.pop(container, None)
            elif not self._busy[container]:
                self._idle_since[container] = time.monotonic()
            reap = self._scaledown is not None and not self._reaping and not self._closed
            self._reaping = self._reaping or reap
            self._room.notify_all()
        if broken:
            container.stop()
        if reap:
            from .execute.functions import start_thread

            start_thread(self._reap)

    def _reap(self) -> None:
        """Stop containers idle for `scaledown` seconds, until the pool closes."""
        assert self._scaledown is not None
        while True:
            with self._room:
                if self._closed:
                    return
                now = time.monotonic()
                idle = [c for c, t in self._idle_since.items() if now - t >= self._scaledown]
                for container in idle:
                    del self._busy[container], self._idle_since[container]
                wake = min(self._idle_since.values(), default=now) + self._scaledown
                if not idle:
                    self._room.wait(max(wake - now, 0.05))
            for container in idle:
                container.stop(self._grace)

    def close(self) -> None:
        with self._room:
            self._closed = True
            containers, self._busy = list(self._busy), {}
            self._idle_since = {}
            self._room.notify_all()
        for container in containers:
            container.stop(self._grace)


class Invoker:
    """The ways to call one function or method: `.remote`, `.map`, `.spawn`, ... with `.aio`.

    A subclass says how its containers start (`_with_container`), which pool `.map` uses,
    and how one input runs on the host (`_local`).
    """

    _options: Options
    _partial: PartialFunction | None
    _method_name = ""  # a class's method, by name; "" for a function
    __qualname__: str

    # ---- what subclasses provide ------------------------------------------------------------

    def _raw(self) -> Callable[..., Any]:
        raise NotImplementedError

    def _app(self) -> Any:
        raise NotImplementedError

    def _with_container(self, run: Callable[[Runner], T]) -> T:
        """`run` on a container for one input, from the function's or the instance's pool."""
        raise NotImplementedError

    def _gen_container(self) -> tuple[Runner, Callable[[], None]]:
        """A container for one generator input, and what to do with it afterwards."""
        raise NotImplementedError

    def _map_pool(self) -> tuple[Pool, bool]:
        """The pool `.map` uses, and whether `.map` closes it when done."""
        raise NotImplementedError

    # ---- what they share --------------------------------------------------------------------

    @property
    def _is_generator(self) -> bool:
        import inspect

        declared = self._partial.is_generator if self._partial is not None else None
        if declared is not None:
            return bool(declared)
        raw = self._raw()
        return inspect.isgeneratorfunction(raw) or inspect.isasyncgenfunction(raw)

    @property
    def _capacity(self) -> int:
        """How many inputs one container takes at once."""
        partial = self._partial
        if partial is None:
            return 1
        if partial.batch is not None:
            return int(partial.batch[0])
        return int(partial.max_inputs or 1)

    def _check_running(self, verb: str) -> None:
        if settings.in_container():
            if verb == "remote_gen":
                raise ExecutionError(
                    f"{self.__qualname__}.remote_gen() cannot be called from inside a container "
                    "yet: call it from the local entrypoint, or use .remote()/.map()."
                )
            return  # a call from one function to another: the host checks that the app runs
        self._app()._require_running(f"{self.__qualname__}.{verb}()")

    def _attempts(self, run: Callable[[], Any]) -> Any:
        from .execute.functions import ContainerLost

        retries = self._options.retries
        attempt = lost = 0
        while True:
            try:
                return run()
            except ContainerLost:
                lost += 1  # (not the input's doing: it does not count against its retries)
                if lost > _LOST_LIMIT:
                    raise
            except Exception:
                attempt += 1
                call = _current_call.get()
                if retries is None or attempt > retries.max_retries or (call and call._cancelled):
                    raise
                time.sleep(retries.delay(attempt))

    def _remote_once(
        self, args: tuple[Any, ...], kwargs: dict[str, Any], ids: tuple[str, str]
    ) -> Any:
        timeout, method = self._options.timeout, self._method_name
        return self._with_container(lambda c: c.call(args, kwargs, timeout, method=method, ids=ids))

    def _target(self) -> dict[str, Any]:
        """How the host finds this function from inside a container (see relay.py)."""
        raw = self._raw()
        return {"ref": f"{raw.__module__}:{raw.__qualname__}", "method": ""}

    def _relayed(
        self, verb: str, inputs: list[tuple[tuple[Any, ...], dict[str, Any]]]
    ) -> list[Any]:
        """Inside a container: have the host run the inputs; their results, or exceptions."""
        from .runtime import calls
        from .runtime.errors import rebuild_exception
        from .runtime.protocol import dumps, loads

        if not calls.available():
            raise ExecutionError(
                f"{self.__qualname__} cannot be called from here: a container started for "
                "run_function or `imagewright shell` does not call other functions."
            )
        replies = calls.call(self._target(), verb, [dumps(i) for i in inputs])
        return [
            loads(payload)
            if header.get("kind") == "result"
            else rebuild_exception(header, payload, f"running {self.__qualname__}")
            for header, payload in replies
        ]

    def _remote(self, args: tuple[Any, ...], kwargs: dict[str, Any], call_id: str) -> Any:
        if self._is_generator:
            raise InvalidError(
                "A generator function cannot be called with `.remote(...)`. "
                "Use `.remote_gen(...)` instead."
            )
        if settings.in_container():  # one function calling another: the host runs it
            (result,) = self._relayed("remote", [(args, kwargs)])
            if isinstance(result, BaseException):
                raise result
            return result
        self._check_running("remote")
        return self._attempts(lambda: self._remote_once(args, kwargs, (_new_id("in"), call_id)))

    @twin
    def remote(self, *args: Any, **kwargs: Any) -> Any:
        """Call the function in a container of its image and return its result."""
        return self._remote(args, kwargs, _new_id("fc"))

    @iter_twin
    def remote_gen(self, *args: Any, **kwargs: Any) -> Iterator[Any]:
        """Call a generator function in a container; yields its values as they come."""
        if not self._is_generator:
            raise InvalidError(
                "A non-generator function cannot be called with `.remote_gen(...)`. "
                "Use `.remote(...)` instead."
            )
        self._check_running("remote_gen")
        return self._stream(args, kwargs)

    def _stream(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Iterator[Any]:
        container, done = self._gen_container()
        ids = (_new_id("in"), _new_id("fc"))
        try:
            yield from container.call_gen(
                args, kwargs, self._options.timeout, method=self._method_name, ids=ids
            )
        finally:
            done()

    def _call_local(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        return self._raw()(*args, **kwargs)

    @twin
    def local(self, *args: Any, **kwargs: Any) -> Any:
        """Call the function in this process; the image does not matter."""
        return self._call_local(args, kwargs)

    @twin
    def spawn(self, *args: Any, **kwargs: Any) -> FunctionCall:
        """Start a call in the background; returns a FunctionCall to `.get()` it."""
        import concurrent.futures

        from .execute.functions import start_thread

        if self._is_generator:
            raise InvalidError("Cannot `spawn` a generator function.")
        self._check_running("spawn")
        future: concurrent.futures.Future[Any] = concurrent.futures.Future()
        call = _new_call([future])
        self._app()._spawned.add(call)  # (stopped with the app if still running then)

        def run() -> None:
            if not future.set_running_or_notify_cancel():
                return
            _current_call.set(call)
            try:
                future.set_result(self._remote(args, kwargs, call.object_id))
            except BaseException as exc:
                cancelled = RemoteError(f"{call.object_id} was cancelled")
                future.set_exception(cancelled if call._cancelled else exc)

        start_thread(run)
        return call

    @iter_twin
    def map(
        self,
        *input_iterators: Iterable[Any],
        kwargs: dict[str, Any] = {},  # noqa: B006  (Modal's signature; never mutated)
        order_outputs: bool = True,
        return_exceptions: bool = False,
        wrap_returned_exceptions: bool = True,
    ) -> Iterator[Any]:
        """Call the function on each input in parallel containers; yields the results."""
        # no zip(strict=): this module is imported by Python 3.9 inside containers too
        inputs = zip(*input_iterators)  # noqa: B905
        return self._map("map", inputs, kwargs, order_outputs, return_exceptions)

    @iter_twin
    def starmap(
        self,
        input_iterator: Iterable[tuple[Any, ...]],
        *,
        kwargs: dict[str, Any] = {},  # noqa: B006
        order_outputs: bool = True,
        return_exceptions: bool = False,
        wrap_returned_exceptions: bool = True,
    ) -> Iterator[Any]:
        """Like map, with each input already a tuple of arguments."""
        return self._map("starmap", input_iterator, kwargs, order_outputs, return_exceptions)

    @twin
    def for_each(
        self,
        *input_iterators: Iterable[Any],
        kwargs: dict[str, Any] = {},  # noqa: B006
        ignore_exceptions: bool = False,
    ) -> None:
        """Call the function on each input for its side effects; returns nothing."""
        inputs = zip(*input_iterators)  # noqa: B905
        for _ in self._map("for_each", inputs, kwargs, False, ignore_exceptions):
            pass

    @twin
    def spawn_map(
        self,
        *input_iterators: Iterable[Any],
        kwargs: dict[str, Any] = {},  # noqa: B006
    ) -> None:
        """Start `.map` in the background, for its side effects."""
        self._spawn_map(input_iterators, kwargs)

    @twin
    def experimental_spawn_map(
        self,
        *input_iterators: Iterable[Any],
        kwargs: dict[str, Any] = {},  # noqa: B006
    ) -> FunctionCall:
        """Start `.map` in the background; the FunctionCall's `.iter()` and `.get(index=...)`
        wait for its results."""
        return self._spawn_map(input_iterators, kwargs)

    def _spawn_map(
        self, input_iterators: tuple[Iterable[Any], ...], kwargs: dict[str, Any]
    ) -> FunctionCall:
        import concurrent.futures

        from .execute.functions import start_thread

        inputs = list(zip(*input_iterators))  # noqa: B905
        results = self._map("spawn_map", inputs, kwargs, True, True)
        futures: list[concurrent.futures.Future[Any]] = [
            concurrent.futures.Future() for _ in inputs
        ]
        call = _new_call(futures)
        self._app()._spawned.add(call)

        def run() -> None:
            _current_call.set(call)  # the map's workers run in a copy of this context
            for future, value in zip(futures, results):  # noqa: B905  (as many of each)
                if call._cancelled:
                    value = RemoteError(f"{call.object_id} was cancelled")
                with contextlib.suppress(concurrent.futures.InvalidStateError):  # cancelled
                    if isinstance(value, BaseException):
                        future.set_exception(value)
                    else:
                        future.set_result(value)

        start_thread(run)
        return call

    def _map(
        self,
        verb: str,
        inputs: Iterable[tuple[Any, ...]],
        kwargs: dict[str, Any],
        order_outputs: bool,
        return_exceptions: bool,
    ) -> Iterator[Any]:
        if self._is_generator:
            raise InvalidError(f"A generator function cannot be called with `.{verb}(...)`.")
        self._check_running(verb)
        items = list(enumerate(inputs))
        if not items:
            return iter(())
        if settings.in_container():
            relayed = self._relayed("map", [(args, kwargs) for _, args in items])
            return _relayed_results(relayed, return_exceptions)
        pool, owned = self._map_pool()
        return _MapRun(self, pool, owned, items, kwargs, order_outputs, return_exceptions).results()


class Deployed:
    """What Modal's service tells of a deployed function or server, which has no local
    counterpart: each raises."""

    autoscaler = NoLocalMeaning()
    logs = NoLocalMeaning()
    metrics = NoLocalMeaning()

    @twin
    def info(self, *, refresh: bool = False) -> NoReturn:
        raise no_local_meaning(f"modal.{type(self).__name__}.info")


class Function(Invoker, ModalObject, Deployed):
    """A function registered with `@app.function()`."""

    _id_prefix = "fu"

    def __init__(
        self,
        raw_f: Callable[..., Any],
        app: Any,
        options: Options,
        partial: PartialFunction | None = None,
    ):
        self.raw_f = raw_f
        self._parent_app = app
        self._options = options
        self._partial = partial
        self._pool_lock = threading.Lock()
        self._pool_obj: Pool | None = None  # warm containers, kept between calls and maps
        self.__name__ = raw_f.__name__
        self.__qualname__ = raw_f.__qualname__
        self.__doc__ = raw_f.__doc__
        self.__module__ = raw_f.__module__
        self.__wrapped__ = raw_f
        _functions.setdefault(self.object_id, self)

    def __repr__(self) -> str:
        return f"Function({self.__qualname__})"

    def _id_name(self) -> str:
        return f"{self.__module__}.{self.__qualname__}"

    @property
    def app(self) -> Any:
        """The App the function is registered on."""
        return self._parent_app

    @classmethod
    def from_id(cls, function_id: str, *, client: Client | None = None) -> Function:
        """The function whose `object_id` this is, of an app loaded in this process."""
        found = _functions.get(function_id)
        if found is None:
            raise NotFoundError(
                f"No function {function_id!r}: imagewright finds the functions of the apps this "
                "process loaded only."
            )
        return found

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self.raw_f(*args, **kwargs)

    # the options, as Modal's Function exposes some of them
    @property
    def image(self) -> Image:
        return self._options.image

    @property
    def timeout(self) -> float:
        return self._options.timeout

    @property
    def include_source(self) -> bool:
        return self._options.include_source

    @property
    def secrets(self) -> tuple[Secret, ...]:
        return self._options.secrets

    def get_web_url(self) -> str | None:
        """Where `imagewright serve` serves this web endpoint (None: not served now)."""
        return web_url(self._id_name())

    def with_concurrency(self, *, max_inputs: int, target_inputs: int | None = None) -> Function:
        """A copy of the function whose containers take up to `max_inputs` inputs at once."""
        from .partial import concurrent

        return self._with_partial(concurrent(max_inputs=max_inputs, target_inputs=target_inputs))

    def with_batching(self, *, max_batch_size: int, wait_ms: int) -> Function:
        """A copy of the function that takes lists of inputs (see `@modal.batched`)."""
        from .partial import batched

        return self._with_partial(batched(max_batch_size=max_batch_size, wait_ms=wait_ms))

    def _with_partial(self, decorator: Callable[[Any], PartialFunction]) -> Function:
        from .partial import PartialFunction

        fresh = PartialFunction(self.raw_f)
        if self._partial is not None:
            fresh.is_generator = self._partial.is_generator
            fresh.web = self._partial.web
        return Function(self.raw_f, self.app, self._options, decorator(fresh))

    def get_raw_f(self) -> Callable[..., Any]:
        return self.raw_f

    # ---- what Modal's service tells of a function (and Deployed's members) ----------------------

    @twin
    def get_current_stats(self) -> NoReturn:
        raise no_local_meaning("modal.Function.get_current_stats")

    @twin
    def stats(
        self,
        *,
        since: datetime | None = None,
        until: datetime | None = None,
        container: str | None = None,
        all_variants: bool = False,
    ) -> NoReturn:
        raise no_local_meaning("modal.Function.stats")

    @twin
    def update_autoscaler(
        self,
        *,
        min_containers: int | None = None,
        max_containers: int | None = None,
        buffer_containers: int | None = None,
        scaledown_window: int | None = None,
    ) -> NoReturn:
        raise no_local_meaning("modal.Function.update_autoscaler")

    def _raw(self) -> Callable[..., Any]:
        return self.raw_f

    def _app(self) -> Any:
        return self._parent_app

    def with_options(
        self,
        *,
        cpu: float | tuple[float, float] | None = None,
        memory: int | tuple[int, int] | None = None,
        gpu: str | list[str] | None = None,
        env: dict[str, str | None] | None = None,
        secrets: Iterable[Secret] | None = None,
        volumes: Mapping[str | PurePosixPath, Volume] = {},
        retries: int | Retries | None = None,
        max_containers: int | None = None,
        buffer_containers: int | None = None,
        scaledown_window: int | None = None,
        timeout: int | None = None,
        region: str | list[str] | None = None,
        cloud: str | None = None,
        routing_region: str | None = None,
    ) -> Function:
        """A copy of the function with some options changed."""
        options = override_options(
            self._options, cpu, memory, gpu, env, secrets, volumes, retries, max_containers, timeout
        )
        return Function(self.raw_f, self.app, options, self._partial)

    @staticmethod
    def from_name(
        app_name: str, name: str, *, environment_name: str | None = None, client: object = None
    ) -> Function:
        """A function of an app loaded in this process, by the app's name and its own."""
        from .apps import lookup
        from .serving.remote import DeployedFunction

        found = lookup(app_name, name)
        if isinstance(found, DeployedFunction):  # of an app deployed on this machine
            return found  # type: ignore[return-value]  # it calls as a Function does
        if not isinstance(found, Function):
            raise NotFoundError(f"{name!r} in app {app_name!r} is a class, not a function")
        return found

    # ---- containers -------------------------------------------------------------------------

    def _imagewright_service(self, params: object) -> Service:
        """What this function's container serves (called inside it, by the bootstrap)."""
        from .partial import web_app
        from .runtime.serve import Entry, Service

        batch = self._partial.batch if self._partial is not None else None
        entry = Entry(self.raw_f, *(batch or (0, 0)))
        max_inputs = self._partial.max_inputs if self._partial is not None else None
        web = self._partial.web if self._partial is not None else None
        webs = {"": web_app(web, self.raw_f)} if web is not None else None
        return Service({"": entry}, max_inputs=max_inputs or 1, webs=webs)

    def _container(self) -> Runner:
        from .plan.functionsource import function_ref

        ref = function_ref(self.raw_f)
        return start_runner(self.app, self._options, self.raw_f, ref, capacity=self._capacity)

    def _with_container(self, run: Callable[[Runner], T]) -> T:
        if self.app._cluster is None:
            return in_pool(self._map_pool()[0], run)
        container = self._container()  # (on a cluster a warm one would hold a node's CPUs)
        try:
            with running_in(container):
                return run(container)
        finally:
            container.stop()

    def _gen_container(self) -> tuple[Runner, Callable[[], None]]:
        if self.app._cluster is None:
            return from_pool(self._map_pool()[0])
        container = self._container()
        return container, container.stop

    def _map_pool(self) -> tuple[Pool, bool]:
        """The function's warm containers: kept between calls and maps until idle for its
        scaledown_window (60 s by default, as on Modal). On a cluster each map has its own, so
        that its containers give their nodes back as soon as it ends."""
        if self.app._cluster is not None:
            limit = container_limit(self.app, self._options)
            return Pool(self._container, self._capacity, limit), True
        with self._pool_lock:
            if self._pool_obj is None:
                limit = container_limit(self.app, self._options)
                scaledown = self._options.scaledown_window or _SCALEDOWN_WINDOW
                bounded = bool(self._options.max_containers)
                self._pool_obj = Pool(
                    self._container, self._capacity, limit, 0, scaledown, bounded=bounded
                )
                self.app._adopt_pool(self._pool_obj)
            return self._pool_obj, False

    def _drop_pool(self) -> None:
        """Forget the warm pool (when the app stops, which closes it)."""
        with self._pool_lock:
            self._pool_obj = None


class _MapRun:
    """One `.map()`: worker threads, each taking inputs in turn to a container of the pool."""

    def __init__(
        self,
        invoker: Invoker,
        pool: Pool,
        owned: bool,
        items: list[tuple[int, tuple[Any, ...]]],
        kwargs: dict[str, Any],
        order_outputs: bool,
        return_exceptions: bool,
    ):
        self.invoker, self.pool, self.owned, self.kwargs = invoker, pool, owned, kwargs
        self.order_outputs, self.return_exceptions = order_outputs, return_exceptions
        self.todo: queue.Queue[tuple[int, tuple[Any, ...]]] = queue.Queue()
        for item in items:
            self.todo.put(item)
        self.total = len(items)
        self.done: queue.Queue[Any] = queue.Queue()
        self.workers = min(pool.limit * pool.capacity, self.total)
        self.stopping = threading.Event()
        self.call_id = _new_id("fc")
        # Inputs go several to a message where a container runs one at a time and nothing is
        # retried: the container runs them back to back, without a round trip between them.
        # (A retried input runs alone, so its attempts are counted as for `.remote`.)
        self.batching = pool.capacity == 1 and invoker._options.retries is None
        self.lost: dict[int, int] = {}  # inputs whose container's machine went away, how often

    def results(self) -> Iterator[Any]:
        from .execute.functions import start_thread

        # in the starting thread's context: a spawned map's call is then the workers' too
        threads = [
            start_thread(contextvars.copy_context().run, self._work) for _ in range(self.workers)
        ]
        try:
            yield from self._collect()
        finally:
            self.stopping.set()
            for thread in threads:
                thread.join()
            if self.owned:
                self.pool.close()

    def _collect(self) -> Iterator[Any]:
        pending: dict[int, tuple[bool, Any]] = {}
        next_index = 0
        for _ in range(self.total):
            index, ok, value = self.done.get()
            if not ok and not self.return_exceptions:
                raise value
            if not self.order_outputs:
                yield value
                continue
            pending[index] = (ok, value)
            while next_index in pending:
                yield pending.pop(next_index)[1]
                next_index += 1

    def _work(self) -> None:
        """Take inputs until none are left, on one slot of the pool held throughout (a
        container that broke is given back and another taken)."""
        invoker, kwargs, call_id = self.invoker, self.kwargs, self.call_id
        timeout, method = invoker._options.timeout, invoker._method_name
        call = _current_call.get()
        held: list[Runner] = []

        def once(args: tuple[Any, ...]) -> Any:
            if not held:
                held.append(self.pool.acquire())
            container = held[0]
            try:
                with running_in(container):
                    ids = (_new_id("in"), call_id)
                    return container.call(args, kwargs, timeout, method=method, ids=ids)
            except Exception as exc:
                if not _is_user_error(exc):  # a killed or timed-out one is replaced
                    held.clear()
                    self.pool.release(container, True)
                raise

        try:
            while not self.stopping.is_set():
                taken = self._take()
                if not taken:
                    return
                if call is not None and call._cancelled:  # a cancelled spawned map starts none
                    for index, _ in taken:
                        error = RemoteError(f"{call.object_id} was cancelled")
                        self.done.put((index, False, error))
                    continue
                if len(taken) > 1:
                    if not held:
                        try:
                            held.append(self.pool.acquire())
                        except Exception as exc:  # no container: every input says why
                            for index, _ in taken:
                                self.done.put((index, False, exc))
                            continue
                    if not self._run_batch(held[0], taken):
                        self.pool.release(held.pop(), True)
                    continue
                index, args = taken[0]
                try:
                    self.done.put((index, True, invoker._attempts(functools.partial(once, args))))
                except Exception as exc:
                    self.done.put((index, False, exc))
        finally:
            if held:
                self.pool.release(held[0], False)

    def _take(self) -> list[tuple[int, tuple[Any, ...]]]:
        """The worker's next inputs: one, or with batching a share of what is left (up to
        _BATCH), so that every worker keeps some until the end."""
        count = 1
        if self.batching:
            count = max(1, min(_BATCH, self.todo.qsize() // (2 * self.workers)))
        taken = []
        for _ in range(count):
            try:
                taken.append(self.todo.get_nowait())
            except queue.Empty:
                break
        return taken

    def _run_batch(self, container: Runner, taken: list[tuple[int, tuple[Any, ...]]]) -> bool:
        """Run `taken` in one message to `container`; whether the container is still good.

        An input whose arguments do not pickle fails alone. If the container breaks (times
        out, dies), the input it was running gets that error and the ones after it, which had
        not started, go back to be run on another container.
        """
        from .runtime.protocol import dumps, loads

        options, method = self.invoker._options, self.invoker._method_name
        ready: list[tuple[int, bytes]] = []
        for index, args in taken:
            try:
                ready.append((index, dumps((args, self.kwargs))))
            except Exception as exc:
                self.done.put((index, False, exc))
        ids = [(_new_id("in"), self.call_id) for _ in ready]
        finished = 0
        try:
            with running_in(container):
                replies = container.call_many(
                    [p for _, p in ready], options.timeout, method=method, ids=ids
                )
                for (index, _), (header, payload) in zip(ready, replies):  # noqa: B905 (3.9)
                    finished += 1
                    if header["kind"] == "exception":
                        error = container.remote_exception((header, payload), "call")
                        self.done.put((index, False, error))
                        continue
                    try:
                        self.done.put((index, True, loads(payload)))
                    except Exception as exc:  # a result that does not unpickle here
                        self.done.put((index, False, exc))
        except Exception as exc:
            from .execute.functions import ContainerLost

            args_of = dict(taken)
            again = ready[finished + 1 :]
            index = ready[finished][0]
            self.lost[index] = self.lost.get(index, 0) + isinstance(exc, ContainerLost)
            if isinstance(exc, ContainerLost) and self.lost[index] <= _LOST_LIMIT:
                again = ready[finished:]  # its machine went away: it runs again elsewhere
            else:
                self.done.put((index, False, exc))
            for index, _ in again:
                self.todo.put((index, args_of[index]))
            return False
        return True


def _relayed_results(results: list[Any], return_exceptions: bool) -> Iterator[Any]:
    for result in results:
        if isinstance(result, BaseException) and not return_exceptions:
            raise result
        yield result


def web_url(name: str) -> str | None:
    """The URL `imagewright serve` gave the endpoint of function `name` (module.qualname)."""
    import json

    urls = os.environ.get(settings.WEB_URLS)
    found = json.loads(urls).get(name) if urls else None
    return str(found) if found else None


def running_in(container: Runner) -> contextlib.AbstractContextManager[None]:
    """While the current thread runs a spawned call's input in `container`, cancelling the
    call kills it."""
    call = _current_call.get()
    return call._runs_in(container) if call is not None else contextlib.nullcontext()


def in_pool(pool: Pool, run: Callable[[Runner], T]) -> T:
    """`run` on a warm container of `pool`; one that broke (timed out, died) is stopped."""
    container = pool.acquire()
    broken = False
    try:
        with running_in(container):
            return run(container)
    except Exception as exc:
        broken = not _is_user_error(exc)
        raise
    finally:
        pool.release(container, broken)


def from_pool(pool: Pool) -> tuple[Runner, Callable[[], None]]:
    """A warm container of `pool` for one generator input, and what gives it back."""
    container = pool.acquire()
    return container, lambda: pool.release(container, not container.alive())


def _is_user_error(exc: Exception) -> bool:
    from .exception import FunctionTimeoutError

    return not isinstance(exc, (FunctionTimeoutError, RemoteError))


# ---- starting containers ---------------------------------------------------------------------


def container_limit(app: Any, options: Options) -> int:
    """How many containers `.map` may run at once: max_containers, else one per core here, or
    as many as the cluster the app runs on has room for."""
    if options.max_containers:
        return options.max_containers
    if app._cluster is not None:
        return int(app._cluster.room_for(options))
    return max(os.cpu_count() or 1, 1)


def start_runner(
    app: Any,
    options: Options,
    raw: Callable[..., Any],
    ref: str,
    init: object = None,
    capacity: int = 1,
) -> Runner:
    """A container for calls to `ref` (`capacity` inputs at once): on a node of the cluster
    the app runs on, if it runs on one (cluster/), else here."""
    if app._cluster is not None:
        plan = app._plan_for(options.image)
        runner: Runner = app._cluster.start(plan, app._store, options, raw, ref, init, capacity)
        return runner
    return start_container(app, options, raw, ref, init)


def start_container(
    app: Any,
    options: Options,
    raw: Callable[..., Any],
    ref: str,
    init: object = None,
    *,
    web: str | None = None,
    on_output: Callable[[str], None] | None = None,
) -> Container:
    """Start a container of `options.image` serving `ref` on this machine, with its secrets
    and volumes.

    With `web`, it serves that web endpoint of `ref` ("" for a function's own); `on_output`
    takes its output lines instead of our stdout.
    """
    from .execute.functions import Container
    from .execute.layers import container_lowers
    from .execute.state import state_binds
    from .execute.volumes import volume_binds
    from .plan.functionsource import source_mounts

    if options.bucket_mounts:
        from ._unsupported import no_local_meaning

        raise no_local_meaning(f"CloudBucketMount (at {', '.join(options.bucket_mounts)})")
    if options.gpu:
        require_gpu(options.gpu)
    plan, store = app._plan_for(options.image), app._store
    env = {k: v for s in options.secrets for k, v in s.env.items()}  # named ones are read now
    if settings.WEB_URLS in os.environ:  # (`imagewright serve` is on: get_web_url() works)
        env[settings.WEB_URLS] = os.environ[settings.WEB_URLS]
    binds, volume_env = volume_binds(options.volumes)
    state, state_env = state_binds()  # Dicts and Queues reach the host's backend
    binds, volume_env = [*binds, *state], {**volume_env, **state_env}
    mounts = source_mounts(raw) if options.include_source else ()
    lowers = container_lowers(plan, store, mounts)
    container = Container(
        store,
        plan.config,
        lowers,
        ref,
        env={**env, **volume_env},
        binds=binds,
        limits=options.limits,
        relay=app._relay,
        web=web,
        on_output=on_output,
    )
    return container.start(init)


_gpu_warned = False


def require_gpu(gpu: tuple[str, ...]) -> None:
    """Refuse to run a function that asks for a GPU on a machine (or node) without one, unless
    IMAGEWRIGHT_ALLOW_NO_GPU says to run it on the CPU."""
    global _gpu_warned

    import shutil

    if os.path.exists("/dev/nvidia0") and shutil.which("nvidia-smi"):
        return
    wanted = " or ".join(gpu)
    if settings.allow_no_gpu():
        if not _gpu_warned:
            _gpu_warned = True
            warn_user(
                f"gpu={wanted} was requested, but this machine has no usable GPU: running on the "
                f"CPU ({settings.ALLOW_NO_GPU}=1)."
            )
        return
    raise ExecutionError(
        f"gpu={wanted} was requested, but this machine has no usable GPU (no /dev/nvidia0 or "
        f"nvidia-smi). Remove gpu= to run on the CPU, or set {settings.ALLOW_NO_GPU}=1 to run "
        "without one anyway."
    )


def check_gpu_arg(gpu: object) -> tuple[str, ...] | None:
    """Validate Modal's gpu= shapes: None, "T4", "A100:2", "h100!", ["H100", "A100-80GB"]."""
    if gpu is None or gpu is False:
        return None
    choices = gpu if isinstance(gpu, (list, tuple)) else [gpu]
    if not choices:
        raise InvalidError("gpu= was given an empty list. Use a string such as 'A100' or 'T4:2'.")
    checked = []
    for choice in choices:
        if not isinstance(choice, str) or not choice:
            raise InvalidError(
                f"Invalid GPU config: {choice!r}. Use a string such as 'A100' or 'T4:2'."
            )
        kind, _, count = choice.partition(":")
        if count and not count.isdigit():
            raise InvalidError(f"Invalid GPU count: {count}. Value must be an integer.")
        checked.append(f"{kind.upper()}:{count}" if count else kind.upper())
    return tuple(checked)


def secrets_with_env(
    secrets: Iterable[Secret] | None, env: Mapping[str, str | None] | None
) -> tuple[Secret, ...]:
    """`secrets=` checked, with `env=` as one more secret (as Modal treats it)."""
    from .secret import Secret

    found = tuple(secrets or ())
    if env:
        found = (*found, Secret.from_dict(dict(env)))
    if not all(isinstance(s, Secret) for s in found):
        raise InvalidError("secrets must be imagewright.Secret instances")
    return found


def override_options(
    options: Options,
    cpu: object,
    memory: object,
    gpu: object,
    env: Mapping[str, str | None] | None,
    secrets: Iterable[Secret] | None,
    volumes: Mapping[str | PurePosixPath, Volume],
    retries: object,
    max_containers: int | None,
    timeout: float | None,
) -> Options:
    """`options` with what `.with_options(...)` changes (None leaves a value as it was)."""
    from .execute.limits import Limits
    from .volume import check_volumes

    changes: dict[str, Any] = {}
    if cpu is not None or memory is not None:
        changes["limits"] = Limits.from_modal(memory, cpu)
    if gpu is not None:
        changes["gpu"] = check_gpu_arg(gpu)
    if secrets is not None or env:
        changes["secrets"] = (*options.secrets, *secrets_with_env(secrets, env))
    if volumes:
        changes["volumes"] = {**options.volumes, **check_volumes(volumes)}
    if retries is not None:
        changes["retries"] = retry_policy(retries)  # type: ignore[arg-type]  # checked there
    if max_containers is not None:
        changes["max_containers"] = max_containers
    if timeout is not None:
        changes["timeout"] = timeout
    return options._replace(**changes)
