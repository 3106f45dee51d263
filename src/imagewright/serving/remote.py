"""Functions and classes of a deployed app, called from another process on the machine.

`Function.from_name("app", "f")` in a program that did not define "app" finds the deployment of
that name (deployments.py) and returns a `DeployedFunction`: its `.remote` and `.map` send the
pickled inputs over the deployment's calls socket, where the deployment runs them in its
containers as it runs calls from its own containers (relay.py), and the replies come back
pickled. `Cls.from_name` gives a `DeployedCls`, whose instances' methods work the same way.
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterable, Iterator
from typing import Any

from .._aio import twin
from ..exception import InvalidError, NotFoundError
from ..runtime.calls import Client
from ..runtime.errors import rebuild_exception
from ..runtime.protocol import dumps, loads
from .deployments import deployment_dir, read_state

__all__ = ["DeployedCls", "DeployedFunction", "find_deployed"]

_clients: dict[str, Client] = {}
_clients_lock = threading.Lock()


def find_deployed(app_name: str, name: str) -> DeployedFunction | DeployedCls | None:
    """`name` of the running deployment `app_name`, or None when no such deployment runs."""
    state = read_state(app_name)
    if state is None:
        return None
    found = state.get("functions", {}).get(name)
    if found is None:
        raise NotFoundError(f"The deployment {app_name!r} has no function or class named {name!r}")
    if "methods" in found:
        return DeployedCls(app_name, name, str(found["ref"]), list(found["methods"]))
    return DeployedFunction(app_name, name, {"ref": found["ref"], "method": ""})


def _client(app_name: str) -> Client:
    with _clients_lock:
        client = _clients.get(app_name)
        if client is None:
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
            try:
                sock.connect(str(deployment_dir(app_name) / "calls.sock"))
            except OSError as exc:
                sock.close()
                raise NotFoundError(
                    f"The deployment {app_name!r} is not answering: {exc}"
                ) from None
            client = _clients[app_name] = Client(sock, b"")
        return client


class DeployedFunction:
    """A function of a deployed app (or a method of one of its class instances)."""

    def __init__(self, app_name: str, name: str, target: dict[str, Any]):
        self._app_name, self._name, self._target = app_name, name, target

    def __repr__(self) -> str:
        return f"DeployedFunction({self._app_name}.{self._name})"

    def _run(self, verb: str, inputs: list[tuple[tuple[Any, ...], dict[str, Any]]]) -> list[Any]:
        replies = _client(self._app_name).call(self._target, verb, [dumps(i) for i in inputs])
        return [
            loads(payload)
            if header.get("kind") == "result"
            else rebuild_exception(header, payload, f"running {self._name}")
            for header, payload in replies
        ]

    @twin
    def remote(self, *args: Any, **kwargs: Any) -> Any:
        """Run one input in the deployment's containers and return its result."""
        (result,) = self._run("remote", [(args, kwargs)])
        if isinstance(result, BaseException):
            raise result
        return result

    def map(
        self, *inputs: Iterable[Any], order_outputs: bool = True, return_exceptions: bool = False
    ) -> Iterator[Any]:
        """Run the function over the inputs in the deployment's containers."""
        if not order_outputs:
            raise InvalidError("a deployed function's .map returns its outputs in order")
        for result in self._run("map", [(args, {}) for args in zip(*inputs, strict=False)]):
            if isinstance(result, BaseException) and not return_exceptions:
                raise result
            yield result


class DeployedCls:
    """A class of a deployed app: call it with its parameters for an instance."""

    def __init__(self, app_name: str, name: str, ref: str, methods: list[str]):
        self._app_name, self._name, self._ref, self._methods = app_name, name, ref, methods

    def __call__(self, **params: Any) -> _DeployedObj:
        return _DeployedObj(self, params)


class _DeployedObj:
    def __init__(self, cls: DeployedCls, params: dict[str, Any]):
        self._cls, self._params = cls, params

    def __getattr__(self, method: str) -> DeployedFunction:
        cls = self._cls
        if method not in cls._methods:
            raise AttributeError(f"{cls._name} has no method {method!r}")
        target = {"ref": cls._ref, "method": method, "params": self._params}
        return DeployedFunction(cls._app_name, f"{cls._name}.{method}", target)
