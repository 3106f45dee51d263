"""What an app serves over HTTP, and on which host port.

An endpoint is a web function (`@fastapi_endpoint`, `@asgi_app`, `@wsgi_app`, `@web_server`),
a web method of a class, or an `@app.server` class. Its label names it in URLs and logs, as
Modal's does (the decorator's `label=`, else the function's name, or the class's and method's,
with `_` as `-`). Its port is stable: the first free one from 8000 is remembered per app and
label in the store's home, so a restarted `serve` or a redeploy keeps its URLs; `--port
LABEL=PORT` overrides it.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import socket
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from .. import settings
from ..exception import InvalidError

if TYPE_CHECKING:
    from ..app import App
    from ..execute.functions import Container
    from ..function import Options

__all__ = ["Endpoint", "assign_ports", "endpoints_of"]

_FIRST_PORT = 8000
_DEFAULT_SCALEDOWN = 60.0  # Modal's default scaledown_window
# How long a replaced or idle container gets to finish its requests and run its @exit hooks.
EXIT_GRACE = 30.0


@dataclass
class Endpoint:
    """One web endpoint of an app, and how to start a container serving it."""

    label: str
    name: str  # module.qualname of what serves it: get_web_url()'s key
    kind: str  # the decorator: "fastapi_endpoint", "asgi_app", ..., "server"
    what: str  # how `serve` names it: "web function square", "Model.predict"
    auth: bool  # requests need Modal-Key and Modal-Secret
    inner_port: int  # where it listens inside its container
    options: Options
    start: Callable[[Callable[[str], None]], Container]  # given an output sink
    capacity: int  # requests a container takes at once before another starts
    min_containers: int
    max_containers: int
    scaledown_window: float
    port: int = 0  # on the host, set by assign_ports


def _label(text: str) -> str:
    return text.replace("_", "-").replace(".", "-").lower()


def endpoints_of(app: App) -> list[Endpoint]:
    """Every endpoint of `app`, in the order it registered them."""
    from ..cls import Server
    from ..function import start_container
    from ..partial import inner_port
    from ..plan.functionsource import function_ref

    found: list[Endpoint] = []
    for key, function in app.registered_functions.items():
        config = function._partial.web if function._partial is not None else None
        if config is None:
            continue
        options, raw = function._options, function.raw_f
        ref = function_ref(raw)

        def start_function(
            sink: Callable[[str], None], o: Options = options, r: Any = raw, f: str = ref
        ) -> Container:
            return start_container(app, o, r, f, web="", on_output=sink)

        port = inner_port(config)
        found.append(
            _endpoint(
                config.label or _label(key), function._id_name(), config.kind,
                f"web function {key}", config.requires_proxy_auth, port, options,
                start_function, function._partial.max_inputs if function._partial else None,
            )
        )  # fmt: skip
    for cls_name, cls in app.registered_classes.items():
        for method, config in cls._web_methods().items():
            obj = _default_instance(cls, cls_name)
            ref = function_ref(cls._user_cls)

            def start_method(
                sink: Callable[[str], None],
                c: Any = cls,
                v: Any = obj,
                f: str = ref,
                m: str = method,
            ) -> Container:
                return start_container(app, c._options, c._user_cls, f, v, web=m, on_output=sink)

            if isinstance(cls, Server):
                label, what, port = config.label or _label(cls_name), f"server {cls_name}", cls.port
            else:
                label = config.label or _label(f"{cls_name}-{method}")
                what, port = f"{cls_name}.{method}", inner_port(config)
            name = cls._id_name() + (f".{method}" if method else "")
            found.append(
                _endpoint(
                    label, name, config.kind, what, config.requires_proxy_auth, port,
                    cls._options, start_method, cls._max_inputs(),
                )
            )  # fmt: skip
    labels = [e.label for e in found]
    for label in labels:
        if labels.count(label) > 1:
            raise InvalidError(f"Two web endpoints of the app have the label {label!r}")
    return found


def _endpoint(
    label: str,
    name: str,
    kind: str,
    what: str,
    auth: bool,
    inner_port: int,
    options: Options,
    start: Callable[[Callable[[str], None]], Container],
    max_inputs: int | None,
) -> Endpoint:
    return Endpoint(
        label=label,
        name=name,
        kind=kind,
        what=what,
        auth=auth,
        inner_port=inner_port,
        options=options,
        start=start,
        capacity=max_inputs or 1,
        min_containers=options.min_containers or 0,
        max_containers=options.max_containers or max(os.cpu_count() or 1, 2),
        scaledown_window=float(options.scaledown_window or _DEFAULT_SCALEDOWN),
    )


def _default_instance(cls: Any, cls_name: str) -> dict[str, Any]:
    """The parameter values a served class is built with: its defaults (as Modal serves it)."""
    try:
        values: dict[str, Any] = cls._checked({})
    except InvalidError as exc:
        raise InvalidError(
            f"{cls_name} has web endpoints, so `serve` builds it with its parameters' defaults: "
            f"{exc}"
        ) from None
    return values


def assign_ports(app_key: str, endpoints: list[Endpoint], chosen: Mapping[str, int]) -> None:
    """Give each endpoint its port: `chosen` (by label), else the one it had, else a free one."""
    unknown = sorted(set(chosen) - {e.label for e in endpoints})
    if unknown:
        raise InvalidError(
            f"--port names no endpoint of the app: {', '.join(unknown)} "
            f"(its endpoints: {', '.join(e.label for e in endpoints) or 'none'})"
        )
    path = settings.home() / "web-ports.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path.with_suffix(".lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # two serves at once pick different ports
        try:
            known: dict[str, int] = json.loads(path.read_text())
        except (FileNotFoundError, ValueError):
            known = {}
        taken = set(known.values())
        for endpoint in endpoints:
            key = f"{app_key}/{endpoint.label}"
            if endpoint.label in chosen:
                endpoint.port = chosen[endpoint.label]
            elif key in known:
                endpoint.port = known[key]
            else:
                port = _FIRST_PORT
                while port in taken or not _free(port):
                    port += 1
                endpoint.port = port
            known[key] = endpoint.port
            taken.add(endpoint.port)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(known, indent=1, sort_keys=True))
        os.replace(tmp, path)


def _free(port: int) -> bool:
    with contextlib.closing(socket.socket()) as probe:
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True
