"""Cls: a class registered with `@app.cls()`, with parameters, lifecycle hooks and methods.

`Model(size="small")` is one instance, `Obj`: its fields declared with `modal.parameter()` are
checked as Modal checks them (int, str, bytes or bool), and each distinct set of values is its
own instance. One container serves one instance: it builds the object, runs its `@enter` hooks
once (`snap=True` ones first), then answers its `@method`s' inputs, several at once under
`@concurrent` or in lists under `@batched`. The instance's containers stay up while the app
runs, so state loaded in `@enter` (a model) serves every later `.remote` and `.map`; when the
app stops, each container runs its `@exit` hooks before it goes.

`Model().method` is a `Method`, called like a Function: `.remote`, `.map`, `.spawn`, `.local`
(which builds the object here, with its `@enter` hooks, once per `Obj`).
"""

from __future__ import annotations

import functools
import threading
import typing
import weakref
from collections.abc import Callable, Iterable, Mapping
from datetime import datetime
from pathlib import PurePosixPath
from typing import TYPE_CHECKING, Any, NoReturn, TypeVar

from ._aio import twin
from ._unsupported import NoLocalMeaning, no_local_meaning
from .cloud import Client, ModalObject
from .exception import InvalidError, NotFoundError
from .function import (
    Deployed,
    Invoker,
    Options,
    Pool,
    container_limit,
    from_pool,
    in_pool,
    override_options,
    start_runner,
)
from .partial import PartialFunction, is_parameter

if TYPE_CHECKING:
    from .execute.functions import Runner
    from .partial import WebConfig
    from .retries import Retries
    from .runtime.serve import Service
    from .runtime.web import WebApp
    from .secret import Secret
    from .volume import Volume

__all__ = ["Cls", "Method", "Obj", "Server", "parameters_from_json"]

T = TypeVar("T")

_PARAMETER_TYPES = {"int": int, "str": str, "bytes": bytes, "bool": bool}
# How long a stopping container gets for its @exit hooks (Modal gives about as long).
_EXIT_GRACE = 30.0
# Server.from_id looks servers up here: the first made with an id (not its copies)
_classes: weakref.WeakValueDictionary[str, Cls] = weakref.WeakValueDictionary()


class Cls(ModalObject):
    """A class registered with `@app.cls()`; call it with its parameters for an instance."""

    _id_prefix = "cs"

    def __init__(
        self,
        user_cls: type[Any],
        app: Any,
        options: Options,
        service: PartialFunction | None = None,
    ):
        self._user_cls, self._app, self._options = user_cls, app, options
        self._service_flags = service  # @concurrent / @batched on the class itself
        self._methods: dict[str, PartialFunction] = {}
        self._enter: list[str] = []
        self._exit: list[str] = []
        for name, value in _members(user_cls):
            if not isinstance(value, PartialFunction):
                continue
            if value.flags & {"method", "web"} or value.batch is not None:
                self._methods[name] = value
            if "enter" in value.flags:
                self._enter.insert(0, name) if value.snap else self._enter.append(name)
            if "exit" in value.flags:
                self._exit.append(name)
        if "__init__" in vars(user_cls) and _takes_arguments(user_cls.__init__):
            raise InvalidError(
                f"{user_cls.__qualname__} has an __init__ with arguments: declare its "
                "parameters as fields with modal.parameter() instead."
            )
        self._parameters = _parameter_types(user_cls)
        self._instances: dict[tuple[tuple[str, Any], ...], Obj] = {}
        self._lock = threading.Lock()
        self.__name__ = user_cls.__name__
        self.__qualname__ = user_cls.__qualname__
        self.__module__ = user_cls.__module__
        self.__doc__ = user_cls.__doc__
        _classes.setdefault(self.object_id, self)

    def __repr__(self) -> str:
        return f"Cls({self.__qualname__})"

    def _id_name(self) -> str:
        return f"{self.__module__}.{self.__qualname__}"

    def __call__(self, **parameters: Any) -> Obj:
        values = self._checked(parameters)
        key = tuple(sorted(values.items()))
        with self._lock:
            obj = self._instances.get(key)
            if obj is None:
                obj = self._instances[key] = Obj(self, values)
        return obj

    def _checked(self, given: Mapping[str, Any]) -> dict[str, Any]:
        unknown = sorted(set(given) - set(self._parameters))
        if unknown:
            raise TypeError(
                f"{self.__qualname__}() got an unexpected keyword argument {unknown[0]!r}"
            )
        values = {}
        for name, (kind, default) in self._parameters.items():
            if name in given:
                value = given[name]
            elif default is not _MISSING:
                value = default
            else:
                raise InvalidError(f"Missing required parameter: {name}")
            if not isinstance(value, kind):
                raise TypeError(f"Expected {kind.__name__}, got {type(value).__name__}")
            values[name] = value
        return values

    # ---- options ----------------------------------------------------------------------------

    def _replaced(self, options: Options, service: PartialFunction | None) -> Cls:
        return type(self)(self._user_cls, self._app, options, service)

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
    ) -> Cls:
        """A copy of the class with some options changed (its instances are its own)."""
        options = override_options(
            self._options, cpu, memory, gpu, env, secrets, volumes, retries, max_containers, timeout
        )
        return self._replaced(options, self._service_flags)

    def with_concurrency(self, *, max_inputs: int, target_inputs: int | None = None) -> Cls:
        """A copy of the class whose containers take up to `max_inputs` inputs at once."""
        from .partial import concurrent

        flags = concurrent(max_inputs=max_inputs, target_inputs=target_inputs)(self._user_cls)
        return self._replaced(self._options, flags)

    def with_batching(self, *, max_batch_size: int, wait_ms: int) -> Cls:
        """A copy of the class whose methods take lists of inputs (see `@modal.batched`)."""
        from .partial import _MAX_BATCH_SIZE, _MAX_BATCH_WAIT_MS

        if not 1 <= max_batch_size <= _MAX_BATCH_SIZE or not 0 <= wait_ms <= _MAX_BATCH_WAIT_MS:
            raise InvalidError("max_batch_size or wait_ms is out of range")
        flags = PartialFunction(self._user_cls)
        flags.batch = (max_batch_size, wait_ms)
        return self._replaced(self._options, flags)

    @staticmethod
    def from_name(
        app_name: str,
        name: str,
        *,
        environment_name: str | None = None,
        client: object = None,
    ) -> Cls:
        """A class of an app loaded in this process, by the app's name and its own."""
        from .apps import lookup
        from .serving.remote import DeployedCls

        found = lookup(app_name, name)
        if isinstance(found, DeployedCls):  # of an app deployed on this machine
            return found  # type: ignore[return-value]  # it calls as a Cls does
        if not isinstance(found, Cls):
            raise NotFoundError(f"{name!r} in app {app_name!r} is a function, not a class")
        return found

    # ---- what a container of it serves -------------------------------------------------------

    def _batch_of(self, name: str) -> tuple[int, int] | None:
        own = self._methods[name].batch
        if own is not None:
            return own
        return self._service_flags.batch if self._service_flags is not None else None

    def _max_inputs(self) -> int:
        found = [p.max_inputs for p in self._methods.values() if p.max_inputs]
        if self._service_flags is not None and self._service_flags.max_inputs:
            found.append(self._service_flags.max_inputs)
        return max(found, default=1)

    def _capacity(self, name: str) -> int:
        batch = self._batch_of(name)
        return batch[0] if batch is not None else self._max_inputs()

    def _build(self, values: Mapping[str, Any]) -> Any:
        """A plain instance of the user's class with these parameter values."""
        instance = object.__new__(self._user_cls)
        for name, value in values.items():
            setattr(instance, name, value)
        if "__init__" in vars(self._user_cls):
            instance.__init__()
        return instance

    def _imagewright_service(self, params: Mapping[str, Any]) -> Service:
        """What one container of an instance serves (called inside it, by the bootstrap)."""
        from .runtime.serve import Entry, Service

        instance = self._build(params)
        entries = {
            name: Entry(getattr(instance, name), *(self._batch_of(name) or (0, 0)))
            for name in self._methods
        }
        return Service(
            entries,
            max_inputs=self._max_inputs(),
            enter=[getattr(instance, name) for name in self._enter],
            exit=[getattr(instance, name) for name in self._exit],
            webs=self._web_apps(instance),
        )

    def _web_apps(self, instance: Any) -> dict[str, WebApp]:
        """The instance's web endpoints, by method name."""
        from .partial import web_app

        return {
            name: web_app(partial.web, getattr(instance, name))
            for name, partial in self._methods.items()
            if partial.web is not None
        }

    def _web_methods(self) -> dict[str, WebConfig]:
        """The class's web endpoints (what `imagewright serve` serves), by method name."""
        return {name: p.web for name, p in self._methods.items() if p.web is not None}


class Server(Cls, Deployed):
    """A class registered with `@app.server()`: a web server in each container (served by
    `imagewright serve`); it loads and runs its lifecycle hooks like any class."""

    port = 8000  # where its server listens inside the container
    _startup_timeout = 30.0  # how long its @enter hooks may take to make that port accept
    _unauthenticated = False  # requests need no proxy token (Modal asks for one by default)

    @classmethod
    def from_id(cls, server_id: str, *, client: Client | None = None) -> Server:
        """The server whose `object_id` this is, of an app loaded in this process."""
        found = _classes.get(server_id)
        if not isinstance(found, Server):
            raise NotFoundError(
                f"No server {server_id!r}: imagewright finds the servers of the apps this "
                "process loaded only."
            )
        return found

    @twin
    def get_url(self) -> str | None:
        """Where `imagewright serve` serves it (None: not served now)."""
        from .function import web_url

        return web_url(self._id_name())

    def _web_apps(self, instance: Any) -> dict[str, WebApp]:
        from .runtime.web import WebApp

        return {"": WebApp("server", None, self.port, self._startup_timeout)}

    def _web_methods(self) -> dict[str, WebConfig]:
        from .partial import WebConfig

        auth = not self._unauthenticated
        return {"": WebConfig("server", port=self.port, requires_proxy_auth=auth)}

    # ---- what Modal's service tells of a server (and Deployed's members) ----------------------

    sessions = NoLocalMeaning()

    @twin
    def stats(
        self,
        *,
        since: datetime | None = None,
        until: datetime | None = None,
        container: str | None = None,
    ) -> NoReturn:
        raise no_local_meaning("modal.Server.stats")

    @twin
    def update_autoscaler(
        self,
        *,
        target_concurrency: float | None = None,
        min_containers: int | None = None,
        max_containers: int | None = None,
        buffer_containers: int | None = None,
        scaleup_window: int | None = None,
        scaledown_window: int | None = None,
    ) -> NoReturn:
        raise no_local_meaning("modal.Server.update_autoscaler")


class Obj:
    """One instance of a Cls: `Model(size="small")`. Its methods are `Method`s."""

    def __init__(self, cls: Cls, values: dict[str, Any]):
        self._cls, self._values = cls, values
        self._pool_obj: Pool | None = None
        self._local: Any = None
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        shown = ", ".join(f"{k}={v!r}" for k, v in self._values.items())
        return f"{self._cls.__qualname__}({shown})"

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__") or name in ("_cls", "_values", "_pool_obj", "_local", "_lock"):
            raise AttributeError(name)
        if name in self._cls._methods:
            return Method(self, name)
        # anything else is the plain object's, as in Modal (no @enter hook runs for it)
        return getattr(self._cls._build(self._values), name)

    def _pool(self) -> Pool:
        """This instance's containers: started on demand, stopped when the app stops."""
        with self._lock:
            if self._pool_obj is None:
                cls = self._cls
                limit = container_limit(cls._app, cls._options)
                capacity = max(cls._capacity(name) for name in cls._methods) if cls._methods else 1
                grace = _EXIT_GRACE if cls._exit else 0
                bounded = bool(cls._options.max_containers) or cls._app._cluster is not None
                self._pool_obj = Pool(
                    functools.partial(self._start, capacity),
                    capacity,
                    limit,
                    grace,
                    bounded=bounded,
                )
                cls._app._adopt_pool(self._pool_obj)
            return self._pool_obj

    def _start(self, capacity: int) -> Runner:
        from .plan.functionsource import function_ref

        cls = self._cls
        ref = function_ref(cls._user_cls)
        return start_runner(cls._app, cls._options, cls._user_cls, ref, self._values, capacity)

    def _local_instance(self) -> Any:
        """The object built here for `.local()` calls, with its @enter hooks run once."""
        import asyncio
        import inspect

        with self._lock:
            if self._local is None:
                instance = self._cls._build(self._values)
                for name in self._cls._enter:
                    result = getattr(instance, name)()
                    if inspect.isawaitable(result):
                        asyncio.run(_awaited(result))
                self._local = instance
            return self._local


async def _awaited(awaitable: Any) -> Any:
    return await awaitable


class Method(Invoker):
    """A method of one instance: `Model().predict`, called like a Function."""

    def __init__(self, obj: Obj, name: str):
        self._obj, self._method_name = obj, name
        self._options = obj._cls._options
        self._partial = obj._cls._methods[name]
        self.__name__ = name
        self.__qualname__ = f"{obj._cls.__qualname__}.{name}"

    def __repr__(self) -> str:
        return f"Method({self._obj!r}.{self._method_name})"

    @property
    def _capacity(self) -> int:
        return self._obj._cls._capacity(self._method_name)

    def _raw(self) -> Callable[..., Any]:
        raw: Callable[..., Any] = self._obj._cls._methods[self._method_name].raw_f
        return raw

    def _app(self) -> Any:
        return self._obj._cls._app

    def _call_local(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        return getattr(self._obj._local_instance(), self._method_name)(*args, **kwargs)

    def _target(self) -> dict[str, Any]:
        cls = self._obj._cls._user_cls
        return {
            "ref": f"{cls.__module__}:{cls.__qualname__}",
            "method": self._method_name,
            "params": {k: _jsonable(v) for k, v in self._obj._values.items()},
        }

    def _with_container(self, run: Callable[[Runner], T]) -> T:
        return in_pool(self._obj._pool(), run)

    def _gen_container(self) -> tuple[Runner, Callable[[], None]]:
        return from_pool(self._obj._pool())

    def _map_pool(self) -> tuple[Pool, bool]:
        return self._obj._pool(), False


def _jsonable(value: Any) -> Any:
    """A parameter's value as JSON (bytes tagged), for a call made from inside a container."""
    import base64

    return {"bytes": base64.b64encode(value).decode()} if isinstance(value, bytes) else value


def parameters_from_json(values: Mapping[str, Any]) -> dict[str, Any]:
    """The parameter values `_jsonable` wrote (the host checks their types afterwards)."""
    import base64

    return {
        k: base64.b64decode(v["bytes"]) if isinstance(v, dict) and "bytes" in v else v
        for k, v in values.items()
    }


def _members(user_cls: type[Any]) -> Iterable[tuple[str, Any]]:
    """The class's attributes, base classes' first, as Python resolves them."""
    seen: dict[str, Any] = {}
    for klass in reversed(user_cls.__mro__):
        seen.update(vars(klass))
    return seen.items()


def _takes_arguments(init: Callable[..., Any]) -> bool:
    import inspect

    params = list(inspect.signature(init).parameters.values())[1:]
    return any(p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD) for p in params)


class _Missing:
    pass


_MISSING: Any = _Missing()


def _parameter_types(user_cls: type[Any]) -> dict[str, tuple[type, Any]]:
    """Each `modal.parameter()` field: its type (checked as Modal does) and default."""
    try:
        hints = typing.get_type_hints(user_cls)
    except Exception:  # an annotation that does not resolve here: read it as written
        hints = {}
    found: dict[str, tuple[type, Any]] = {}
    for name, value in _members(user_cls):
        if not is_parameter(value):
            continue
        annotation = hints.get(name, getattr(user_cls, "__annotations__", {}).get(name))
        if isinstance(annotation, str):
            annotation = _PARAMETER_TYPES.get(annotation, annotation)
        if annotation is None:
            raise InvalidError(
                f"{user_cls.__qualname__}.{name} = modal.parameter() needs a type annotation: "
                f"one of {', '.join(_PARAMETER_TYPES)}"
            )
        if annotation not in _PARAMETER_TYPES.values():
            shown = getattr(annotation, "__name__", str(annotation))
            raise TypeError(
                f"{shown} is not a supported modal.parameter() type. Use one of: "
                f"{', '.join(_PARAMETER_TYPES)}"
            )
        found[name] = (annotation, _MISSING if value.default_missing else value.default)
    return found
