"""Host side of calls a function makes to another (`other.remote(x)` inside a container).

The calling container asks on its calls channel (runtime/calls.py): which function (its
module:qualname, and for a class's method the method and the instance's parameters), which
verb, and the pickled inputs. The host finds that function among the app's own, and nowhere
else, and runs each input in the target's containers as a call made here would run: `.remote`
in one of the target's warm containers, `.map` spread over them, each input with
the target's retries. Inputs and replies pass through as the bytes the two containers made:
the host never unpickles what a container sends it.
"""

from __future__ import annotations

import functools
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from .cls import Method, parameters_from_json
from .exception import InvalidError, NotFoundError
from .function import Invoker, Options, Pool, _new_id
from .runtime.errors import exception_message

if TYPE_CHECKING:
    from .execute.functions import Relay, Runner

__all__ = ["relay_for"]

Reply = tuple[dict[str, Any], "bytes | memoryview"]


def relay_for(app: Any) -> Relay:
    """What runs the calls made from inside the containers of `app`'s functions."""

    def relay(target: dict[str, Any], verb: str, inputs: list[bytes]) -> list[Reply]:
        invoker = _find(app, target)
        if verb == "remote" and len(inputs) == 1:
            invoker._check_running("remote")
            ids = (_new_id("in"), _new_id("fc"))
            return [
                _attempts(
                    invoker._options,
                    lambda: invoker._with_container(_call(invoker, inputs[0], ids)),
                )
            ]
        if verb == "map":
            invoker._check_running("map")
            return _map(invoker, inputs)
        raise InvalidError(f"a call from a container asked for {verb!r}")

    return relay


def _find(app: Any, target: dict[str, Any]) -> Invoker:
    """The app's function or method that `target` names; nothing outside the app."""
    from .plan.functionsource import function_ref

    ref, method = str(target.get("ref", "")), str(target.get("method", ""))
    for function in app.registered_functions.values():
        if not method and function_ref(function.raw_f) == ref:
            found: Invoker = function
            return found
    for cls in app.registered_classes.values():
        if method in cls._methods and function_ref(cls._user_cls) == ref:
            params = target.get("params") or {}
            if not isinstance(params, dict):
                raise InvalidError("a call from a container gave parameters that are not a dict")
            return Method(cls(**parameters_from_json(params)), method)
    raise NotFoundError(f"{ref}{'.' + method if method else ''} is not a function of this app")


def _call(invoker: Invoker, payload: bytes, ids: tuple[str, str]) -> Callable[[Runner], Reply]:
    timeout, method = invoker._options.timeout, invoker._method_name
    return lambda container: container.call_raw(payload, timeout, method=method, ids=ids)


def _attempts(options: Options, once: Callable[[], Reply]) -> Reply:
    """One input's reply, retried as the target's Retries say; a container that timed out or
    died answers with that error."""
    retries, attempt = options.retries, 0
    while True:
        try:
            reply = once()
        except Exception as exc:
            reply = exception_message(exc)
        attempt += 1
        if reply[0].get("kind") == "result" or retries is None or attempt > retries.max_retries:
            return reply
        time.sleep(retries.delay(attempt))


def _in_pool(pool: Pool, run: Callable[[Runner], Reply]) -> Reply:
    container = pool.acquire()
    broken = False
    try:
        return run(container)
    except Exception:
        broken = True  # (a timed-out or dead container is replaced)
        raise
    finally:
        pool.release(container, broken)


def _map(invoker: Invoker, inputs: list[bytes]) -> list[Reply]:
    """All the inputs, spread over the target's containers as `.map` spreads them."""
    from .execute.functions import start_thread

    pool, owned = invoker._map_pool()
    replies: dict[int, Reply] = {}
    todo = list(enumerate(inputs))
    lock = threading.Lock()
    call_id = _new_id("fc")

    def work() -> None:
        while True:
            with lock:
                if not todo:
                    return
                index, payload = todo.pop()
            run = _call(invoker, payload, (_new_id("in"), call_id))
            replies[index] = _attempts(invoker._options, functools.partial(_in_pool, pool, run))

    threads = [start_thread(work) for _ in range(min(len(inputs), pool.limit * pool.capacity))]
    try:
        for thread in threads:
            thread.join()
    finally:
        if owned:
            pool.close()
    return [replies[index] for index in range(len(inputs))]
