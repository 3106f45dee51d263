"""Modal names that only mean something on Modal's service: accepted, recorded, never run.

`Client`, `Environment`, `Workspace`, `Proxy`, `SchedulerPlacement`, `NetworkFileSystem`,
`CloudBucketMount` and `Cluster` are built as in Modal, so that programs naming them (often at
module level, or as `@app.function` arguments) load; what they would do needs Modal's servers
or hardware, so using them raises UnimplementedError. A function that mounts a
NetworkFileSystem or a CloudBucketMount fails when it runs, not when it is defined. Imported in
containers (Python 3.9).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from ._aio import twin
from ._unsupported import NoLocalMeaning, NotYetContext, no_local_meaning
from .exception import InvalidError

if TYPE_CHECKING:
    from .secret import Secret

__all__ = [
    "Client",
    "CloudBucketMount",
    "Cluster",
    "Environment",
    "NetworkFileSystem",
    "Proxy",
    "SchedulerPlacement",
    "Workspace",
]


def _no_constructor(cls: type) -> InvalidError:
    return InvalidError(
        f"Class {cls.__name__} has no constructor. Use class constructor methods instead."
    )


class Client:
    """A connection to Modal's servers. imagewright talks to no server: a Client can be made
    and passed as `client=`, and is otherwise unused."""

    def __init__(
        self,
        server_url: str,
        client_type: int,
        credentials: tuple[str, str] | None,
        version: str = "",
        *,
        oauth_credentials: object | None = None,
    ):
        self.server_url = server_url
        self._closed = False

    @classmethod
    def from_env(cls) -> Client:
        """A client for the configured server; locally, a placeholder."""
        return cls("", 0, None)

    @classmethod
    def from_credentials(cls, token_id: str, token_secret: str) -> Client:
        """A client for these credentials; locally, a placeholder (they are not kept)."""
        return cls("", 0, None)

    @twin
    def close(self) -> None:
        self._closed = True

    def is_closed(self) -> bool:
        return self._closed

    hello = NoLocalMeaning()
    stub = NoLocalMeaning()


class Environment:
    """A Modal environment (a namespace of apps and objects on Modal's service)."""

    def __init__(self) -> None:
        raise _no_constructor(Environment)

    @staticmethod
    def from_name(
        name: str, *, create_if_missing: bool = False, client: Client | None = None
    ) -> Environment:
        environment = Environment.__new__(Environment)
        environment._name = name
        return environment

    @staticmethod
    def from_context(*, client: Client | None = None) -> Environment:
        raise no_local_meaning("modal.Environment.from_context")

    _name: str

    @property
    def name(self) -> str:
        return self._name

    apps = NoLocalMeaning()
    billing = NoLocalMeaning()
    members = NoLocalMeaning()
    roles = NoLocalMeaning()


class Workspace:
    """A Modal workspace (an account on Modal's service)."""

    def __init__(self) -> None:
        raise _no_constructor(Workspace)

    @staticmethod
    def from_context(*, client: Client | None = None) -> Workspace:
        return Workspace.__new__(Workspace)

    billing = NoLocalMeaning()
    member_tokens = NoLocalMeaning()
    members = NoLocalMeaning()
    name = NoLocalMeaning()
    proxy_tokens = NoLocalMeaning()
    service_users = NoLocalMeaning()
    settings = NoLocalMeaning()


class Proxy:
    """A Modal proxy: outbound traffic through a static IP. Locally traffic goes out directly;
    `@app.function(proxy=...)` records it."""

    def __init__(self) -> None:
        raise _no_constructor(Proxy)

    @staticmethod
    def from_name(
        name: str, *, environment_name: str | None = None, client: Client | None = None
    ) -> Proxy:
        proxy = Proxy.__new__(Proxy)
        proxy.name = name
        return proxy

    name: str

    def __repr__(self) -> str:
        return f"Proxy.from_name({self.name!r})"


class SchedulerPlacement:
    """Where Modal may place containers (region, zone, spot, instance type); recorded only."""

    def __init__(
        self,
        region: str | Sequence[str] | None = None,
        zone: str | None = None,
        spot: bool | None = None,
        instance_type: str | Sequence[str] | None = None,
    ):
        self.region = region
        self.zone = zone
        self.spot = spot
        self.instance_type = instance_type


class CloudBucketMount:
    """An S3, R2 or GCS bucket mounted in a function's container. Recorded only: a function
    given one fails when it runs, as imagewright mounts no buckets."""

    def __init__(
        self,
        bucket_name: str,
        bucket_endpoint_url: str | None = None,
        key_prefix: str | None = None,
        secret: Secret | None = None,
        oidc_auth_role_arn: str | None = None,
        read_only: bool = False,
        requester_pays: bool = False,
        force_path_style: bool = False,
    ) -> None:
        self.bucket_name = bucket_name
        self.bucket_endpoint_url = bucket_endpoint_url
        self.key_prefix = key_prefix
        self.secret = secret
        self.oidc_auth_role_arn = oidc_auth_role_arn
        self.read_only = read_only
        self.requester_pays = requester_pays
        self.force_path_style = force_path_style

    def __repr__(self) -> str:
        return f"CloudBucketMount({self.bucket_name!r})"


class NetworkFileSystem:
    """A Modal network file system (deprecated by Modal in favour of Volume). Recorded only:
    a function given one fails when it runs; use a Volume, which imagewright keeps locally."""

    def __init__(self) -> None:
        raise _no_constructor(NetworkFileSystem)

    @staticmethod
    def from_name(
        name: str,
        *,
        environment_name: str | None = None,
        create_if_missing: bool = False,
        client: Client | None = None,
    ) -> NetworkFileSystem:
        nfs = NetworkFileSystem.__new__(NetworkFileSystem)
        nfs.name = name
        return nfs

    @classmethod
    def ephemeral(
        cls, client: Client | None = None, environment_name: str | None = None
    ) -> NotYetContext[NetworkFileSystem]:
        return NotYetContext("modal.NetworkFileSystem.ephemeral")

    @staticmethod
    def create_deployed(
        deployment_name: str, client: Client | None = None, environment_name: str | None = None
    ) -> str:
        raise no_local_meaning("modal.NetworkFileSystem.create_deployed")

    @staticmethod
    def delete(
        name: str, client: Client | None = None, environment_name: str | None = None
    ) -> None:
        raise no_local_meaning("modal.NetworkFileSystem.delete")

    name: str

    def __repr__(self) -> str:
        return f"NetworkFileSystem.from_name({self.name!r})"

    add_local_dir = NoLocalMeaning()
    add_local_file = NoLocalMeaning()
    iterdir = NoLocalMeaning()
    listdir = NoLocalMeaning()
    read_file = NoLocalMeaning()
    remove_file = NoLocalMeaning()
    write_file = NoLocalMeaning()


class Cluster:
    """The containers of one `@clustered` function call, on Modal's multi-node hardware."""

    def __init__(self) -> None:
        raise _no_constructor(Cluster)

    @staticmethod
    def from_context() -> Cluster:
        raise no_local_meaning("modal.Cluster.from_context")

    @staticmethod
    def from_id(cluster_id: str, *, client: Client | None = None) -> Cluster:
        raise no_local_meaning("modal.Cluster.from_id")
