"""Modal's decorators for functions and class methods, and `modal.parameter()`.

`@enter`, `@exit`, `@method`, `@concurrent`, `@batched`, the web decorators (`@fastapi_endpoint`,
`@asgi_app`, `@wsgi_app`, `@web_server`), `@clustered` and `@sessioned` each record what they
ask for on a `PartialFunction` around the user's function; decorators stack, in Modal's order
or any other. `@app.function` and `@app.cls` read the record: the container's dispatcher
(runtime/serve.py) then runs inputs as it says. A decorator on a class (`@concurrent` above
`@app.cls`'s class) records the same for all of the class's methods.

Inside a class, `self.other_method` is still the plain bound method, so methods call each
other as in Python.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any, NamedTuple, TypeVar

from .exception import InvalidError

if TYPE_CHECKING:
    from .runtime.web import WebApp

__all__ = [
    "PartialFunction",
    "WebConfig",
    "asgi_app",
    "batched",
    "clustered",
    "concurrent",
    "enter",
    "exit",
    "fastapi_endpoint",
    "method",
    "parameter",
    "sessioned",
    "web_endpoint",
    "web_server",
    "wsgi_app",
]

T = TypeVar("T")

_MAX_BATCH_SIZE = 1000  # Modal's limits
_MAX_BATCH_WAIT_MS = 10 * 60 * 1000

# what each decorator is: a lifecycle hook or an interface (how the function is called)
_LIFECYCLE = {"enter", "exit"}
_INTERFACES = {"method", "web"}


class WebConfig(NamedTuple):
    """What a web decorator asked for (served by `imagewright serve`)."""

    kind: str  # "fastapi_endpoint", "asgi_app", "wsgi_app" or "web_server"
    method: str = "GET"
    label: str | None = None
    port: int | None = None
    startup_timeout: float = 5.0
    docs: bool = False
    requires_proxy_auth: bool = False
    custom_domains: tuple[str, ...] = ()


def inner_port(config: WebConfig) -> int:
    """Where a web endpoint listens inside its container: a `web_server`'s own port, or the
    one uvicorn takes for ASGI, WSGI and FastAPI endpoints."""
    from .runtime.web import ASGI_PORT

    return config.port if config.kind == "web_server" and config.port else ASGI_PORT


def web_app(config: WebConfig, target: Callable[..., Any]) -> WebApp:
    """What a container serves for a web decorator on `target` (runtime/web.py)."""
    from .runtime.web import WebApp

    port = inner_port(config)
    return WebApp(config.kind, target, port, config.startup_timeout, config.method, config.docs)


class PartialFunction:
    """A user function (or class) with what Modal's decorators asked of it."""

    def __init__(self, target: Any):
        self.raw_f: Any = target
        self.flags: set[str] = set()
        self.snap = False  # @enter(snap=True): before a memory snapshot (locally: first)
        self.is_generator: bool | None = None
        self.max_inputs: int | None = None  # @concurrent
        self.target_inputs: int | None = None
        self.batch: tuple[int, int] | None = None  # @batched: (max_batch_size, wait_ms)
        self.web: WebConfig | None = None
        self.cluster_size: int | None = None
        self.__name__ = getattr(target, "__name__", "function")
        self.__qualname__ = getattr(target, "__qualname__", self.__name__)
        self.__doc__ = getattr(target, "__doc__", None)
        self.__module__ = getattr(target, "__module__", "__main__")
        self.__wrapped__ = target

    def __repr__(self) -> str:
        return f"PartialFunction({self.__qualname__}, {sorted(self.flags)})"

    def __get__(self, obj: Any, owner: type[Any] | None = None) -> Any:
        # On an instance (inside the container, or .local()), a method is the plain bound method.
        if obj is None:
            return self
        return self.raw_f.__get__(obj, owner)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self.raw_f(*args, **kwargs)

    @property
    def is_class(self) -> bool:
        return isinstance(self.raw_f, type)


def _wrap(target: Any, decorator: str, flag: str | None = None) -> PartialFunction:
    """`target` as a PartialFunction, checked for what `@modal.<decorator>` may wrap."""
    if type(target).__name__ in ("Function", "Cls") and type(target).__module__.startswith(
        "imagewright"
    ):
        what = "@app.function" if type(target).__name__ == "Function" else "@app.cls()"
        raise InvalidError(
            f"Cannot stack `@modal.{decorator}` on top of `{what}`. "
            "Hint: swap the order of the decorators."
        )
    partial = target if isinstance(target, PartialFunction) else PartialFunction(target)
    if not callable(partial.raw_f):
        raise InvalidError(f"The object wrapped by `@modal.{decorator}` must be callable.")
    if flag is not None:
        if partial.is_class:
            raise InvalidError(
                f"Cannot apply `@modal.{decorator}` to a class. "
                "Hint: consider applying to a method instead."
            )
        kinds = partial.flags | {flag}
        if kinds & _LIFECYCLE and kinds & _INTERFACES:
            raise InvalidError("Interface decorators cannot be combined with lifecycle decorators.")
        if {"method", "web"} <= kinds:
            raise InvalidError(
                "Callable decorators cannot be combined with web interface decorators."
            )
        partial.flags.add(flag)
    return partial


def _no_parentheses(decorator: str, value: object) -> None:
    if value is not None:
        raise InvalidError(f"Did you forget parentheses? Suggestion: `@modal.{decorator}()`.")


# ---- lifecycle -------------------------------------------------------------------------------


def enter(
    _warn_parentheses_missing: object = None, *, snap: bool = False
) -> Callable[[Any], PartialFunction]:
    """Run this method once per container, before its first input (a model load, say)."""
    _no_parentheses("enter", _warn_parentheses_missing)

    def decorate(f: Any) -> PartialFunction:
        partial = _wrap(f, "enter", "enter")
        partial.snap = snap
        return partial

    return decorate


def exit(
    _warn_parentheses_missing: object = None,
) -> Callable[[Any], PartialFunction]:
    """Run this method when the container stops."""
    _no_parentheses("exit", _warn_parentheses_missing)

    def decorate(f: Any) -> PartialFunction:
        return _wrap(f, "exit", "exit")

    return decorate


# ---- interfaces ------------------------------------------------------------------------------


def method(
    _warn_parentheses_missing: object = None, *, is_generator: bool | None = None
) -> Callable[[Any], PartialFunction]:
    """Make a class's method callable with `.remote()`, `.map()`, ..."""
    _no_parentheses("method", _warn_parentheses_missing)

    def decorate(f: Any) -> PartialFunction:
        partial = _wrap(f, "method", "method")
        partial.is_generator = is_generator
        return partial

    return decorate


def _web(config: WebConfig, decorator: str) -> Callable[[Any], PartialFunction]:
    def decorate(f: Any) -> PartialFunction:
        import inspect

        partial = _wrap(f, decorator, "web")
        if config.kind != "fastapi_endpoint" and _has_parameters(partial.raw_f):
            raise InvalidError(
                f"Functions decorated by `@modal.{decorator}` can't have parameters."
            )
        if config.kind != "fastapi_endpoint" and inspect.iscoroutinefunction(partial.raw_f):
            raise InvalidError(
                f"The `@modal.{decorator}` decorator can't be applied to an async function."
            )
        partial.web = config
        return partial

    return decorate


def _has_parameters(f: Callable[..., Any]) -> bool:
    import inspect

    params = list(inspect.signature(f).parameters.values())
    if params and params[0].name == "self":
        params = params[1:]
    return any(p.default is inspect.Parameter.empty for p in params)


def _endpoint(
    decorator: str,
    kind: str,
    _warn_parentheses_missing: object,
    label: str | None,
    custom_domains: Iterable[str] | None,
    requires_proxy_auth: bool,
    method: str = "GET",
    docs: bool = False,
) -> Callable[[Any], PartialFunction]:
    _no_parentheses(decorator, _warn_parentheses_missing)
    config = WebConfig(
        kind,
        method=method,
        label=label,
        docs=docs,
        requires_proxy_auth=requires_proxy_auth,
        custom_domains=tuple(custom_domains or ()),
    )
    return _web(config, decorator)


def fastapi_endpoint(
    _warn_parentheses_missing: object = None,
    *,
    method: str = "GET",
    label: str | None = None,
    custom_domains: Iterable[str] | None = None,
    docs: bool = False,
    requires_proxy_auth: bool = False,
) -> Callable[[Any], PartialFunction]:
    """Serve the function as an HTTP endpoint (FastAPI) under `imagewright serve`."""
    return _endpoint(
        "fastapi_endpoint",
        "fastapi_endpoint",
        _warn_parentheses_missing,
        label,
        custom_domains,
        requires_proxy_auth,
        method,
        docs,
    )


def web_endpoint(
    _warn_parentheses_missing: object = None,
    *,
    method: str = "GET",
    label: str | None = None,
    custom_domains: Iterable[str] | None = None,
    docs: bool = False,
    requires_proxy_auth: bool = False,
) -> Callable[[Any], PartialFunction]:
    """The old name of `fastapi_endpoint`."""
    return _endpoint(
        "web_endpoint",
        "fastapi_endpoint",
        _warn_parentheses_missing,
        label,
        custom_domains,
        requires_proxy_auth,
        method,
        docs,
    )


def asgi_app(
    _warn_parentheses_missing: object = None,
    *,
    label: str | None = None,
    custom_domains: Iterable[str] | None = None,
    requires_proxy_auth: bool = False,
) -> Callable[[Any], PartialFunction]:
    """Serve the ASGI app the function returns under `imagewright serve`."""
    return _endpoint(
        "asgi_app",
        "asgi_app",
        _warn_parentheses_missing,
        label,
        custom_domains,
        requires_proxy_auth,
    )


def wsgi_app(
    _warn_parentheses_missing: object = None,
    *,
    label: str | None = None,
    custom_domains: Iterable[str] | None = None,
    requires_proxy_auth: bool = False,
) -> Callable[[Any], PartialFunction]:
    """Serve the WSGI app the function returns under `imagewright serve`."""
    return _endpoint(
        "wsgi_app",
        "wsgi_app",
        _warn_parentheses_missing,
        label,
        custom_domains,
        requires_proxy_auth,
    )


def web_server(
    port: int,
    *,
    startup_timeout: float = 5.0,
    label: str | None = None,
    custom_domains: Iterable[str] | None = None,
    requires_proxy_auth: bool = False,
) -> Callable[[Any], PartialFunction]:
    """Serve what the function starts listening on `port` under `imagewright serve`."""
    if not isinstance(port, int) or isinstance(port, bool) or not 1 <= port <= 65535:
        raise InvalidError(
            "First argument of `@web_server` must be a local port, such as `@web_server(8000)`."
        )
    if startup_timeout <= 0:
        raise InvalidError("The `startup_timeout` argument of `@web_server` must be positive.")
    config = WebConfig(
        "web_server",
        label=label,
        port=port,
        startup_timeout=startup_timeout,
        requires_proxy_auth=requires_proxy_auth,
        custom_domains=tuple(custom_domains or ()),
    )
    return _web(config, "web_server")


# ---- how inputs run ----------------------------------------------------------------------------


def concurrent(
    _warn_parentheses_missing: object = None,
    *,
    max_inputs: int | None = None,
    target_inputs: int | None = None,
) -> Callable[[Any], PartialFunction]:
    """Let one container run up to `max_inputs` inputs at once (threads, or one event loop)."""
    _no_parentheses("concurrent", _warn_parentheses_missing)
    if max_inputs is None:
        raise TypeError("`@modal.concurrent()` missing required argument: `max_inputs`.")
    if not isinstance(max_inputs, int) or max_inputs < 1:
        raise InvalidError("`max_inputs` must be a positive integer.")
    if target_inputs is not None and target_inputs > max_inputs:
        raise InvalidError("`target_inputs` parameter cannot be greater than `max_inputs`.")

    def decorate(f: Any) -> PartialFunction:
        partial = _wrap(f, "concurrent")
        if partial.batch is not None:
            raise InvalidError("`@modal.concurrent` cannot be combined with `@modal.batched`.")
        partial.max_inputs, partial.target_inputs = max_inputs, target_inputs
        return partial

    return decorate


def batched(
    _warn_parentheses_missing: object = None, *, max_batch_size: int, wait_ms: int
) -> Callable[[Any], PartialFunction]:
    """Call the function with lists of up to `max_batch_size` inputs, gathered for `wait_ms`."""
    _no_parentheses("batched", _warn_parentheses_missing)
    if not isinstance(max_batch_size, int) or max_batch_size < 1:
        raise InvalidError("max_batch_size must be a positive integer.")
    if max_batch_size > _MAX_BATCH_SIZE:
        raise InvalidError(f"max_batch_size cannot be greater than {_MAX_BATCH_SIZE}.")
    if not isinstance(wait_ms, int) or wait_ms < 0:
        raise InvalidError("wait_ms must be a non-negative integer.")
    if wait_ms > _MAX_BATCH_WAIT_MS:
        raise InvalidError(f"wait_ms cannot be greater than {_MAX_BATCH_WAIT_MS}.")

    def decorate(f: Any) -> PartialFunction:
        import inspect

        partial = _wrap(f, "batched")  # (on a class, a batched method needs no @method)
        if partial.max_inputs is not None:
            raise InvalidError("`@modal.batched` cannot be combined with `@modal.concurrent`.")
        raw = partial.raw_f
        if inspect.isgeneratorfunction(raw) or inspect.isasyncgenfunction(raw):
            raise InvalidError(
                f"Modal batched function {partial.__name__} cannot return generators"
            )
        params = list(inspect.signature(raw).parameters.values())
        if params and params[0].name == "self":
            params = params[1:]
        if not params:
            raise InvalidError(f"Modal batched function {partial.__name__} takes no arguments.")
        partial.batch = (max_batch_size, wait_ms)
        return partial

    return decorate


def clustered(*, size: int, rdma: bool = False) -> Callable[[T], T]:
    """Multi-node clusters: accepted; locally the function runs on this one machine."""
    if not isinstance(size, int) or size < 1:
        raise InvalidError("cluster size must be a positive integer")

    def decorate(f: T) -> T:
        partial = _wrap(f, "clustered")
        partial.cluster_size = size
        return partial  # type: ignore[return-value]  # a PartialFunction stands in for f

    return decorate


def sessioned() -> Callable[[T], T]:
    """Sticky sessions for `@app.server` classes: accepted (one local server has them)."""

    def decorate(f: T) -> T:
        if not isinstance(getattr(f, "raw_f", f), type):
            raise InvalidError(
                "`@modal.sessioned()` must be applied to a Server class, not a method."
            )
        return f

    return decorate


# ---- class parameters --------------------------------------------------------------------------


class _Parameter:
    """A class field set from `Model(name=value)`: what `modal.parameter()` returns."""

    def __init__(self, default: Any, init: bool):
        self.default, self.init = default, init

    @property
    def default_missing(self) -> bool:
        return self.default is _NO_DEFAULT

    def __get__(self, obj: Any, owner: type[Any] | None = None) -> Any:
        if obj is None or self.default is _NO_DEFAULT:
            if obj is None:
                return self
            raise AttributeError("field has no default value and no specified value")
        return self.default


class _NoDefault:
    def __repr__(self) -> str:
        return "<no default>"


_NO_DEFAULT: Any = _NoDefault()


def parameter(*, default: Any = _NO_DEFAULT, init: bool = True) -> Any:
    """A class parameter: `name: str = modal.parameter(default="x")`.

    Each distinct set of values is its own instance, served by its own containers.
    """
    return _Parameter(default, init)


def is_parameter(value: object) -> bool:
    return isinstance(value, _Parameter)
