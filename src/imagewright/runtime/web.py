"""Inside a web endpoint's container: serve the endpoint on a port of the container's loopback.

A web container has a network namespace of its own (execute/network.py). Its server listens on
a port there, and the host connects to that port from outside and forwards its clients'
connections (serving/proxy.py), so many containers of one endpoint never collide over a port
and none is reachable from the host's interfaces.

- `asgi_app`, `wsgi_app` and `fastapi_endpoint`: uvicorn runs the app on ASGI_PORT. uvicorn is
  the image's own when it has one, else the copy imagewright binds in after the image's
  site-packages (with h11, wsproto and click, all pure Python, for Python 3.9 on).
  `fastapi_endpoint` wraps the function in a FastAPI app, as Modal does, so the image needs
  FastAPI.
- `web_server` and `@app.server`: the user's code starts its own server on its port (the
  function, or the class's @enter hooks); the container is ready once that port accepts.

Stopping lets uvicorn finish the requests in flight and close idle keep-alive connections, which
is what lets `imagewright serve` swap containers after an edit without dropping a request.
Imported inside the container: standard library only (uvicorn is imported only when used),
Python 3.9 syntax.
"""

from __future__ import annotations

import socket
import sys
import threading
import time
from collections.abc import Callable
from typing import Any

__all__ = ["ASGI_PORT", "WEB_PACKAGES", "WebApp", "start_web"]

# Where uvicorn listens in an ASGI, WSGI or FastAPI endpoint's container: a port of its own
# network namespace, away from the ports servers usually take (8000, 8080...).
ASGI_PORT = 49152
# Where the host binds the uvicorn it provides (appended to sys.path: the image's own wins).
WEB_PACKAGES = "/tmp/.imagewright/web"
_POLL = 0.01


class WebApp:
    """What a web container serves: its kind, the user's callable and the port."""

    def __init__(
        self,
        kind: str,
        target: Callable[..., Any] | None,
        port: int = ASGI_PORT,
        startup_timeout: float = 5.0,
        method: str = "GET",
        docs: bool = False,
    ):
        self.kind, self.target, self.port = kind, target, port
        self.startup_timeout = startup_timeout
        self.method, self.docs = method, docs


def start_web(web: WebApp) -> Callable[[float], None]:
    """Start serving `web` and return once its port accepts; returns a function that stops it
    (letting requests in flight finish, for up to its argument in seconds)."""
    if web.kind in ("web_server", "server"):
        if web.target is not None:
            web.target()  # starts the user's server (a subprocess, a thread)
        _wait_for_port(web.port, web.startup_timeout)
        return _no_stop
    return _start_uvicorn(_asgi_app(web), web.port, web.kind == "wsgi_app")


def _no_stop(grace: float) -> None:
    """The user's own server stops with the container."""


def _asgi_app(web: WebApp) -> Any:
    assert web.target is not None
    if web.kind == "fastapi_endpoint":
        return _fastapi_app(web.target, web.method, web.docs)
    app = web.target()
    if app is None or not callable(app):
        decorator = "asgi_app" if web.kind == "asgi_app" else "wsgi_app"
        raise TypeError(
            f"A @modal.{decorator} function must return the app to serve; "
            f"{getattr(web.target, '__qualname__', web.target)} returned {app!r}"
        )
    return app


def _fastapi_app(function: Callable[..., Any], method: str, docs: bool) -> Any:
    """A FastAPI app with `function` as its one route, with CORS open, as Modal makes it."""
    try:
        from fastapi import FastAPI
        from fastapi.middleware.cors import CORSMiddleware
    except ImportError as exc:
        from ..exception import InvalidError

        raise InvalidError(
            "Functions decorated with `fastapi_endpoint` need FastAPI installed in their image. "
            'Add it to the image definition, e.g. with `.uv_pip_install("fastapi[standard]")`.'
        ) from exc
    app = FastAPI(openapi_url="/openapi.json" if docs else None)  # no spec: no docs pages
    app.add_middleware(
        CORSMiddleware,
        allow_origins=["*"],
        allow_credentials=True,
        allow_methods=["*"],
        allow_headers=["*"],
    )
    app.add_api_route("/", function, methods=[method])
    return app


def _start_uvicorn(app: Any, port: int, wsgi: bool) -> Callable[[float], None]:
    if WEB_PACKAGES not in sys.path:
        sys.path.append(WEB_PACKAGES)
    import asyncio

    import uvicorn

    config = uvicorn.Config(
        app,
        host="127.0.0.1",
        port=port,
        interface="wsgi" if wsgi else "auto",
        log_level="info",
        timeout_graceful_shutdown=None,
    )
    server = uvicorn.Server(config)
    failed: list[BaseException] = []

    def run() -> None:
        try:
            asyncio.run(server.serve())
        except BaseException as exc:  # (SystemExit too: uvicorn exits when it cannot bind)
            failed.append(exc)

    thread = threading.Thread(target=run, name="imagewright-web", daemon=True)
    thread.start()
    while not server.started:
        if not thread.is_alive():
            if failed and not isinstance(failed[0], SystemExit):
                raise failed[0]
            raise RuntimeError(f"uvicorn stopped before serving on port {port} (see its log)")
        time.sleep(_POLL)

    def stop(grace: float) -> None:
        server.should_exit = True
        thread.join(grace)

    return stop


def _wait_for_port(port: int, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1.0):
                return
        except OSError:
            if time.monotonic() >= deadline:
                raise TimeoutError(
                    f"Waited {timeout:g} s for port {port} to start accepting connections. "
                    "Make sure the web server listens on that port (on 0.0.0.0 or 127.0.0.1), "
                    "or raise `startup_timeout`."
                ) from None
            time.sleep(_POLL)
