"""Modal's `Sandbox`, `SandboxSnapshot` and `Probe`: names that load now; sandboxes run locally
in a later release.

`Sandbox.create(...)` (and the other ways to reach a sandbox) take Modal's parameters and raise
UnimplementedError. `Probe`, a readiness check, is a plain value with Modal's checks. Imported in
containers (Python 3.9).
"""

from __future__ import annotations

import os
from collections.abc import Collection, Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ._aio import IterTwin, Twin
from ._unsupported import not_yet
from .cloud import ModalObject
from .exception import InvalidError

if TYPE_CHECKING:
    from .cloud import Client, CloudBucketMount, NetworkFileSystem, Proxy
    from .definition.image import Image
    from .secret import Secret

__all__ = ["Probe", "Sandbox", "SandboxSnapshot"]


@dataclass(frozen=True)
class Probe:
    """A sandbox's readiness check: a TCP port that accepts connections, or a command that
    exits 0; tried every `interval_ms`. Make one with `Probe.with_tcp` or `Probe.with_exec`."""

    tcp_port: int | None = None
    exec_argv: tuple[str, ...] | None = None
    interval_ms: int = 100

    def __post_init__(self) -> None:
        if (self.tcp_port is None) == (self.exec_argv is None):
            raise InvalidError(
                "Probe must be created with Probe.with_tcp(...) or Probe.with_exec(...)"
            )

    @classmethod
    def with_tcp(cls, port: int, *, interval_ms: int = 100) -> Probe:
        if not isinstance(port, int):
            raise InvalidError("Probe.with_tcp() expects an integer `port`")
        if not 0 < port <= 65535:
            raise InvalidError(f"Probe.with_tcp() expects `port` in [1, 65535], got {port}")
        _check_interval("with_tcp", interval_ms)
        return cls(tcp_port=port, interval_ms=interval_ms)

    @classmethod
    def with_exec(cls, *argv: str, interval_ms: int = 100) -> Probe:
        if not argv:
            raise InvalidError("Probe.with_exec() requires at least one argument")
        if not all(isinstance(arg, str) for arg in argv):
            raise InvalidError("Probe.with_exec() expects all arguments to be strings")
        _check_interval("with_exec", interval_ms)
        return cls(exec_argv=tuple(argv), interval_ms=interval_ms)


def _check_interval(method: str, interval_ms: int) -> None:
    if not isinstance(interval_ms, int):
        raise InvalidError(f"Probe.{method}() expects an integer `interval_ms`")
    if interval_ms <= 0:
        raise InvalidError(f"Probe.{method}() expects `interval_ms` > 0, got {interval_ms}")


def _create(
    *args: str,
    app: object | None = None,  # an App
    name: str | None = None,
    tags: dict[str, str] | None = None,
    image: Image | None = None,
    env: dict[str, str | None] | None = None,
    secrets: Collection[Secret] | None = None,
    network_file_systems: dict[str | os.PathLike[str], NetworkFileSystem] | None = None,
    timeout: int | None = 300,
    idle_timeout: int | None = None,
    workdir: str | None = None,
    gpu: str | None = None,
    cloud: str | None = None,
    region: str | Sequence[str] | None = None,
    cpu: float | tuple[float, float] | None = None,
    memory: int | tuple[int, int] | None = None,
    runtime: str | None = None,
    block_network: bool = False,
    outbound_cidr_allowlist: Sequence[str] | None = None,
    outbound_domain_allowlist: Sequence[str] | None = None,
    inbound_cidr_allowlist: Sequence[str] | None = None,
    volumes: dict[str | os.PathLike[str], object | CloudBucketMount] | None = None,  # Volume too
    pty: bool = False,
    encrypted_ports: Sequence[int] = (),
    h2_ports: Sequence[int] = (),
    unencrypted_ports: Sequence[int] = (),
    custom_domain: str | None = None,
    proxy: Proxy | None = None,
    include_oidc_identity_token: bool = False,
    readiness_probe: Probe | None = None,
    verbose: bool = False,
    experimental_options: dict[str, Any] | None = None,
    client: Client | None = None,
    environment_name: str | None = None,
    pty_info: object | None = None,
    cidr_allowlist: Sequence[str] | None = None,
) -> Sandbox:
    """Sandbox.create: a new sandbox running `args` in `image`."""
    raise not_yet("modal.Sandbox")


def _list(
    *, app_id: str | None = None, tags: dict[str, str] | None = None, client: Client | None = None
) -> Iterator[Sandbox]:
    """Sandbox.list: the sandboxes of an app, or with these tags."""
    raise not_yet("modal.Sandbox")


class Sandbox(ModalObject):
    """A container running arbitrary commands, created and driven at run time."""

    _id_prefix = "sb"

    def __init__(self) -> None:
        raise InvalidError(
            "Class Sandbox has no constructor. Use class constructor methods instead."
        )

    create = Twin(_create)

    @staticmethod
    def from_id(sandbox_id: str, client: Client | None = None) -> Sandbox:
        raise not_yet("modal.Sandbox")

    @staticmethod
    def from_name(
        app_name: str,
        name: str,
        *,
        environment_name: str | None = None,
        include_terminated: bool = False,
        client: Client | None = None,
    ) -> Sandbox:
        raise not_yet("modal.Sandbox")

    list = IterTwin(_list)


class SandboxSnapshot(ModalObject):
    """A saved sandbox state that new sandboxes can start from."""

    _id_prefix = "sn"

    def __init__(self) -> None:
        raise InvalidError(
            "Class SandboxSnapshot has no constructor. Use class constructor methods instead."
        )

    @classmethod
    def from_id(cls, sandbox_snapshot_id: str, client: Client | None = None) -> SandboxSnapshot:
        raise not_yet("modal.SandboxSnapshot")
