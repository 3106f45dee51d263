"""modal.experimental: the parts of Modal's experimental namespace that Modal programs use.

`clustered` is `modal.clustered`. `http_server` (a class decorator for serving a port) is
accepted and changes nothing: serving comes in a later release, so it warns once per run. The
calls that steer a running Modal container (`stop_fetching_inputs`, the input concurrency, the
cluster info) raise UnimplementedError.
Imported in containers (Python 3.9).
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from typing import TypeVar

from . import partial
from ._unsupported import not_yet

__all__ = [
    "clustered",
    "get_cluster_info",
    "get_local_input_concurrency",
    "http_server",
    "set_local_input_concurrency",
    "stop_fetching_inputs",
]

T = TypeVar("T")

_warned: set[str] = set()


def http_server(
    port: int | None = None,
    *,
    proxy_regions: list[str] | None = None,
    startup_timeout: int = 30,
    exit_grace_period: int | None = None,
    h2_enabled: bool = False,
) -> Callable[[T], T]:
    """Serve `port` of the decorated class's containers over HTTP (not yet: warns, once)."""

    def decorate(target: T) -> T:
        if "http_server" not in _warned:
            _warned.add("http_server")
            warnings.warn(
                "modal.experimental.http_server: imagewright does not serve HTTP yet; ignored.",
                stacklevel=2,
            )
        return target

    return decorate


def clustered(
    size: int, broadcast: bool = True, rdma: bool = False, fabric_size: int | None = None
) -> Callable[[T], T]:
    """Modal's older spelling of `modal.clustered`; `broadcast` and `fabric_size` concern
    Modal's network fabric and are ignored."""
    return partial.clustered(size=size, rdma=rdma)


def stop_fetching_inputs() -> None:
    """Let the container exit after its current input."""
    raise not_yet("modal.experimental.stop_fetching_inputs")


def get_local_input_concurrency() -> int:
    raise not_yet("modal.experimental.get_local_input_concurrency")


def set_local_input_concurrency(concurrency: int) -> None:
    raise not_yet("modal.experimental.set_local_input_concurrency")


def get_cluster_info() -> object:
    raise not_yet("modal.experimental.get_cluster_info")
