"""Modal names that only mean something on Modal's service: accepted, recorded, never run.

`Client`, `Environment`, `Workspace`, `Proxy`, `SchedulerPlacement`, `NetworkFileSystem`,
`CloudBucketMount` and `Cluster` are built as in Modal, so that programs naming them (often at
module level, or as `@app.function` arguments) load; what they would do needs Modal's servers
or hardware, so using them raises UnimplementedError. A function that mounts a
NetworkFileSystem or a CloudBucketMount fails when it runs, not when it is defined.

`ModalObject` is what every Modal object has (an id, a client, `hydrate()`, a dashboard page),
for the classes here and for Volume, Secret, Function and the rest. Imported in containers
(Python 3.9).
"""

from __future__ import annotations

from collections.abc import Sequence

from ._aio import twin
from ._unsupported import NoLocalMeaning, NotYetContext, no_local_meaning
from .exception import InvalidError

TYPE_CHECKING = False  # typing.TYPE_CHECKING, without importing typing (_fasttyping.py)
if TYPE_CHECKING:
    from typing import Any, ClassVar, Generic, Literal, NoReturn, TypeVar, overload

    from .secret import Secret
else:
    from ._fasttyping import Generic, TypeVar, overload

__all__ = [
    "Client",
    "CloudBucketMount",
    "Cluster",
    "Environment",
    "ModalObject",
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

    @classmethod
    def from_oauth_credentials(
        cls,
        refresh_token: str,
        *,
        oauth_client_id: str,
        oauth_client_secret: str | None = None,
        oauth_jwt_key: str | None = None,
    ) -> Client:
        """A client for these OAuth credentials; locally, a placeholder (they are not kept)."""
        return cls("", 0, None)

    @classmethod
    def anonymous(cls, server_url: str) -> NoReturn:
        raise no_local_meaning("modal.Client.anonymous")

    @classmethod
    def verify(cls, server_url: str, credentials: tuple[str, str]) -> None:
        raise no_local_meaning("modal.Client.verify")

    @twin
    def get_input_plane_metadata(self, input_plane_region: str) -> list[tuple[str, str]]:
        raise no_local_meaning("modal.Client.get_input_plane_metadata")

    @twin
    def get_stub(self, server_url: str) -> NoReturn:
        raise no_local_meaning("modal.Client.get_stub")

    hello = NoLocalMeaning()
    stub = NoLocalMeaning()


# What every object's `.client` is: nothing is fetched locally, so one placeholder serves all.
_LOCAL_CLIENT = Client("", 0, None)


class _Hydrate:
    """`obj.hydrate()`: Modal fetches the object from its service; locally there is nothing to
    fetch, so it returns `obj` (typed as the object's own class, whichever it is)."""

    @overload
    def __get__(self, obj: None, owner: type[Any]) -> _Hydrate: ...
    @overload
    def __get__(self, obj: M, owner: type[Any]) -> _Hydrated[M]: ...
    def __get__(self, obj: M | None, owner: type[Any]) -> _Hydrate | _Hydrated[M]:
        if obj is None:
            return self
        return _Hydrated(obj)


class ModalObject:
    """What every Modal object has. Modal fetches an object from its service before it is used
    ("hydrates" it); locally every object is ready at once, so `hydrate()` returns it, its id is
    made of Modal's prefix for its kind and its local name, and its client is a placeholder."""

    __slots__ = ()
    _id_prefix: ClassVar[str]

    def _resolve(self) -> None:
        """What hydrating does here: nothing, but for objects that must exist (a volume)."""

    def _id_name(self) -> str:
        """What the object's id calls it: its name, in classes of named objects; "local" for
        those of which there is one here (a workspace) or none (a cluster, a sandbox)."""
        return "local"

    @property
    def object_id(self) -> str:
        return f"{self._id_prefix}-{self._id_name()}"

    @property
    def client(self) -> Client:
        return _LOCAL_CLIENT

    hydrate = _Hydrate()

    @twin
    def get_dashboard_url(self) -> str:
        raise no_local_meaning(f"modal.{type(self).__name__}.get_dashboard_url")


# (bound to the class itself, not to the string "ModalObject": typing compiles such a string,
# and the first compile() of a process costs ~1 ms, making the AST types)
M = TypeVar("M", bound=ModalObject)


class _Hydrated(Generic[M]):
    """`obj.hydrate`: called (or awaited as `.aio`), it returns `obj`."""

    def __init__(self, obj: M):
        self._obj = obj

    def __call__(self, client: Client | None = None) -> M:
        self._obj._resolve()
        return self._obj

    async def aio(self, client: Client | None = None) -> M:
        import asyncio

        await asyncio.to_thread(self._obj._resolve)
        return self._obj


class _EnvironmentManager:
    """`modal.Environment.objects`: creating, listing and deleting environments on Modal's
    service."""

    @twin
    def create(
        self,
        name: str,
        *,
        restricted: bool = False,
        default_role: str | None = None,
        experimental_options: dict[str, Any] | None = None,
        client: Client | None = None,
    ) -> None:
        raise no_local_meaning("modal.Environment.objects.create")

    @twin
    def delete(self, name: str, *, client: Client | None = None) -> None:
        raise no_local_meaning("modal.Environment.objects.delete")

    @twin
    def list(self, *, client: Client | None = None) -> list[Environment]:
        raise no_local_meaning("modal.Environment.objects.list")


class Environment(ModalObject):
    """A Modal environment (a namespace of apps and objects on Modal's service)."""

    _id_prefix = "en"
    objects = _EnvironmentManager()

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

    def _id_name(self) -> str:
        return self._name

    apps = NoLocalMeaning()
    billing = NoLocalMeaning()
    members = NoLocalMeaning()
    roles = NoLocalMeaning()


class Workspace(ModalObject):
    """A Modal workspace (an account on Modal's service)."""

    _id_prefix = "ac"

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


class Proxy(ModalObject):
    """A Modal proxy: outbound traffic through a static IP. Locally traffic goes out directly;
    `@app.function(proxy=...)` records it."""

    _id_prefix = "pr"

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

    def _id_name(self) -> str:
        return self.name

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


class NetworkFileSystem(ModalObject):
    """A Modal network file system (deprecated by Modal in favour of Volume). Recorded only:
    a function given one fails when it runs; use a Volume, which imagewright keeps locally."""

    _id_prefix = "sv"

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

    def _id_name(self) -> str:
        return self.name

    def __repr__(self) -> str:
        return f"NetworkFileSystem.from_name({self.name!r})"

    add_local_dir = NoLocalMeaning()
    add_local_file = NoLocalMeaning()
    iterdir = NoLocalMeaning()
    listdir = NoLocalMeaning()
    read_file = NoLocalMeaning()
    remove_file = NoLocalMeaning()
    write_file = NoLocalMeaning()


class Cluster(ModalObject):
    """The containers of one `@clustered` function call, on Modal's multi-node hardware."""

    _id_prefix = "cu"

    def __init__(self) -> None:
        raise _no_constructor(Cluster)

    @staticmethod
    def from_context() -> Cluster:
        raise no_local_meaning("modal.Cluster.from_context")

    @staticmethod
    def from_id(cluster_id: str, *, client: Client | None = None) -> Cluster:
        raise no_local_meaning("modal.Cluster.from_id")

    @twin
    def container_ids(self) -> list[str]:
        raise no_local_meaning("modal.Cluster.container_ids")

    @twin
    def container_ips(self, family: Literal["ipv4", "ipv6"] = "ipv6") -> list[str]:
        raise no_local_meaning("modal.Cluster.container_ips")

    @twin
    def container_rank(self, container_id: str | None = None) -> int:
        raise no_local_meaning("modal.Cluster.container_rank")
