"""Function: a user function bound to an image, called locally or in fresh containers.

`.remote()` runs each call in a fresh container. `.map()` spreads inputs over a pool of at most
`max_containers` containers, each serving many inputs in turn so the cost per input stays small.
"""

from __future__ import annotations

import os
import queue
import shutil
import threading
from collections.abc import Callable, Iterable, Iterator
from typing import TYPE_CHECKING, Any

from .exception import ExecutionError, InvalidError

if TYPE_CHECKING:
    import concurrent.futures

    from .definition.image import Image
    from .execute.functions import Container
    from .secret import Secret

__all__ = ["Function", "FunctionCall"]

_DONE = object()


class FunctionCall:
    """A call started with `.spawn()`; `.get()` waits for its result."""

    def __init__(self, future: concurrent.futures.Future[Any]):
        self._future = future

    def get(self, timeout: float | None = None) -> Any:
        """The call's return value (or its exception), waiting at most `timeout` seconds."""
        import concurrent.futures

        try:
            return self._future.result(timeout=timeout)
        except concurrent.futures.TimeoutError:
            from .exception import FunctionTimeoutError

            raise FunctionTimeoutError(f"the call did not finish within {timeout} s") from None


class Function:
    """A function registered with `@app.function()`."""

    def __init__(
        self,
        raw_f: Callable[..., Any],
        app: Any,
        *,
        image: Image,
        secrets: tuple[Secret, ...],
        timeout: float,
        retries: int,
        max_containers: int | None,
        include_source: bool,
        gpu: str | None,
    ):
        self.raw_f = raw_f
        self.app = app
        self.image = image
        self.secrets = secrets
        self.timeout = timeout
        self.retries = retries
        self.max_containers = max_containers
        self.include_source = include_source
        self.gpu = gpu
        # One container started ahead for the next .remote(); each is still used for one call.
        self._spare: concurrent.futures.Future[Container] | None = None
        self._spare_lock = threading.Lock()
        self.__name__ = raw_f.__name__
        self.__qualname__ = raw_f.__qualname__
        self.__doc__ = raw_f.__doc__
        self.__module__ = raw_f.__module__
        self.__wrapped__ = raw_f

    def __repr__(self) -> str:
        return f"Function({self.__qualname__})"

    # ---- local ------------------------------------------------------------------------------

    def local(self, *args: Any, **kwargs: Any) -> Any:
        """Call the function in this process; the image does not matter."""
        return self.raw_f(*args, **kwargs)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self.raw_f(*args, **kwargs)

    # ---- containers -------------------------------------------------------------------------

    def _container(self) -> Container:
        from .execute.functions import Container
        from .execute.layers import container_lowers
        from .plan.functionsource import function_ref, source_mounts

        if self.gpu:
            _require_gpu(self.gpu)
        plan, store = self.app._plan_for(self), self.app._store
        env = {k: v for s in self.secrets for k, v in s.env.items()}
        mounts = source_mounts(self.raw_f) if self.include_source else ()
        lowers = container_lowers(plan, store, mounts)
        return Container(store, plan.config, lowers, function_ref(self.raw_f), env=env).start()

    def _fresh_container(self) -> Container:
        """A container for one call: the one started ahead if there is one, else a new one.

        Either way the next one starts in the background, so a warm `.remote()` does not wait
        for a container to boot. Each container still serves exactly one call, and at most
        one is ever being started ahead.
        """
        with self._spare_lock:
            pending, self._spare = self._spare, None
        container = None
        if pending is not None:
            try:
                container = pending.result()  # waits if it is still starting
            except Exception:
                container = None  # a fresh start below reports what is wrong
            if container is not None and not container.alive():
                container.stop()
                container = None
        if container is None:
            container = self._container()
        self._start_spare()
        return container

    def _start_spare(self) -> None:
        import concurrent.futures

        from .execute.functions import start_thread

        future: concurrent.futures.Future[Container] = concurrent.futures.Future()

        def start() -> None:
            try:
                future.set_result(self._container())
            except BaseException as exc:
                future.set_exception(exc)

        with self._spare_lock:
            self._spare = future
        start_thread(start)

    def _stop_spare(self) -> None:
        """Stop the container started ahead (when the app stops running)."""
        with self._spare_lock:
            pending, self._spare = self._spare, None
        if pending is not None:
            pending.add_done_callback(_stop_started)

    def _call_once(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        container = self._fresh_container()
        try:
            return container.call(args, kwargs, self.timeout)
        finally:
            container.stop()

    def remote(self, *args: Any, **kwargs: Any) -> Any:
        """Call the function in a fresh container of its image and return its result."""
        self.app._require_running(self)
        attempts = self.retries + 1
        for attempt in range(attempts):
            try:
                return self._call_once(args, kwargs)
            except Exception:
                if attempt + 1 == attempts:
                    raise
        raise AssertionError("unreachable")

    def spawn(self, *args: Any, **kwargs: Any) -> FunctionCall:
        """Start a call in the background; returns a FunctionCall to `.get()` it."""
        import concurrent.futures

        from .execute.functions import start_thread

        self.app._require_running(self)
        future: concurrent.futures.Future[Any] = concurrent.futures.Future()

        def run() -> None:
            try:
                future.set_result(self.remote(*args, **kwargs))
            except BaseException as exc:
                future.set_exception(exc)

        start_thread(run)
        return FunctionCall(future)

    def map(
        self,
        *iterables: Iterable[Any],
        kwargs: dict[str, Any] = {},  # noqa: B006
        order_outputs: bool = True,
        return_exceptions: bool = False,
    ) -> Iterator[Any]:
        """Call the function on each input in parallel containers; yields the results."""
        # no zip(strict=): this module is imported by Python 3.9 inside containers too
        inputs = zip(*iterables)  # noqa: B905
        return self._map(inputs, kwargs, order_outputs, return_exceptions)

    def starmap(
        self,
        input_iterator: Iterable[tuple[Any, ...]],
        *,
        kwargs: dict[str, Any] = {},  # noqa: B006
        order_outputs: bool = True,
        return_exceptions: bool = False,
    ) -> Iterator[Any]:
        """Like map, with each input already a tuple of arguments."""
        return self._map(input_iterator, kwargs, order_outputs, return_exceptions)

    def for_each(
        self,
        *iterables: Iterable[Any],
        kwargs: dict[str, Any] = {},  # noqa: B006
        ignore_exceptions: bool = False,
    ) -> None:
        """Call the function on each input for its side effects; returns nothing."""
        for _ in self._map(zip(*iterables), kwargs, False, ignore_exceptions):  # noqa: B905
            pass

    def _map(
        self,
        inputs: Iterable[tuple[Any, ...]],
        kwargs: dict[str, Any],
        order_outputs: bool,
        return_exceptions: bool,
    ) -> Iterator[Any]:
        self.app._require_running(self)
        items = list(enumerate(inputs))
        if not items:
            return iter(())
        return _MapRun(self, items, kwargs, order_outputs, return_exceptions).results()


class _MapRun:
    """One `.map()`: worker threads, each owning a container that serves inputs in turn."""

    def __init__(
        self,
        function: Function,
        items: list[tuple[int, tuple[Any, ...]]],
        kwargs: dict[str, Any],
        order_outputs: bool,
        return_exceptions: bool,
    ):
        self.function, self.kwargs = function, kwargs
        self.order_outputs, self.return_exceptions = order_outputs, return_exceptions
        self.todo: queue.Queue[tuple[int, tuple[Any, ...]]] = queue.Queue()
        for item in items:
            self.todo.put(item)
        self.total = len(items)
        self.done: queue.Queue[Any] = queue.Queue()
        limit = function.max_containers or max(os.cpu_count() or 1, 1)
        self.workers = min(limit, self.total)
        self.stopping = threading.Event()

    def results(self) -> Iterator[Any]:
        from .execute.functions import start_thread

        threads = [start_thread(self._work) for _ in range(self.workers)]
        try:
            yield from self._collect()
        finally:
            self.stopping.set()
            for thread in threads:
                thread.join()

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
        container: Container | None = None
        try:
            while not self.stopping.is_set():
                try:
                    index, args = self.todo.get_nowait()
                except queue.Empty:
                    return
                try:
                    if container is None:
                        container = self.function._container()
                    self.done.put(
                        (index, True, container.call(args, self.kwargs, self.function.timeout))
                    )
                except Exception as exc:
                    self.done.put((index, False, exc))
                    if container is not None and not _is_user_error(exc):
                        container.stop()  # a killed or timed-out container is replaced
                        container = None
        finally:
            if container is not None:
                container.stop()


def _stop_started(spare: concurrent.futures.Future[Container]) -> None:
    """Stop a spare container once it has started (if it did)."""
    if spare.exception() is None:
        spare.result().stop()


def _is_user_error(exc: Exception) -> bool:
    from .exception import FunctionTimeoutError, RemoteError

    return not isinstance(exc, (FunctionTimeoutError, RemoteError))


def _require_gpu(gpu: str) -> None:
    if not (os.path.exists("/dev/nvidia0") and shutil.which("nvidia-smi")):
        raise ExecutionError(
            f"gpu={gpu!r} was requested, but this machine has no usable GPU (no /dev/nvidia0 or "
            "nvidia-smi). Remove gpu= to run on the CPU."
        )


def check_gpu_arg(gpu: object) -> str | None:
    """Validate Modal's gpu= shapes: None, "T4", "A100:2", ..."""
    if gpu is None:
        return None
    if not isinstance(gpu, str):
        raise InvalidError(f"Invalid GPU config: {gpu!r}. Use a string such as 'A100' or 'T4:2'.")
    kind, _, count = gpu.partition(":")
    if count and not count.isdigit():
        raise InvalidError(f"Invalid GPU count: {count}. Value must be an integer.")
    return f"{kind.upper()}:{count}" if count else kind.upper()
