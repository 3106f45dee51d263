"""Entry point inside a function's container: import the function by name, then serve calls.

The host binds this package into the container and starts the image's own Python on `main()`.
It must run on Python 3.9 to 3.14 with nothing installed, so it uses the standard library only.
"""

from __future__ import annotations

import importlib
import os
import socket
import sys
import traceback
from collections.abc import Callable
from typing import Any

from .protocol import dumps, loads, recv_message, send_message

__all__ = ["main"]


def _resolve(module_name: str, qualname: str) -> Callable[..., Any]:
    obj: Any = importlib.import_module(module_name)
    for part in qualname.split("."):
        obj = getattr(obj, part)
    # a Function made by @app.function wraps the user's function
    return getattr(obj, "raw_f", obj)


def _exception_message(exc: BaseException) -> dict[str, Any]:
    try:
        pickled = dumps(exc)
        loads(pickled)  # an exception that pickles but cannot be rebuilt is sent as text only
    except Exception:
        pickled = None
    return {
        "kind": "exception",
        "exc": pickled,
        "type": f"{type(exc).__module__}.{type(exc).__qualname__}",
        "message": str(exc),
        "traceback": "".join(traceback.format_exception(type(exc), exc, exc.__traceback__)),
    }


def _serve(sock: socket.socket, function: Callable[..., Any]) -> None:
    while True:
        request = recv_message(sock)
        if request is None or request["kind"] == "stop":
            return
        args, kwargs = loads(request["args"])
        try:
            reply = {"kind": "result", "value": dumps(function(*args, **kwargs))}
        except BaseException as exc:  # the user's exception goes back to the caller
            reply = _exception_message(exc)
        sys.stdout.flush()
        sys.stderr.flush()
        send_message(sock, reply)


def main() -> None:
    """Connect to the host, import the function, and answer calls until told to stop."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.connect(os.environ["IMAGEWRIGHT_SOCKET"])
    module_name, qualname = os.environ["IMAGEWRIGHT_FUNCTION"].split(":")
    try:
        function = _resolve(module_name, qualname)
    except BaseException as exc:
        send_message(sock, _exception_message(exc))
        return
    send_message(sock, {"kind": "ready", "python": sys.version.split()[0]})
    _serve(sock, function)
