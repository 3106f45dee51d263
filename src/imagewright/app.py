"""App: groups functions, classes and local entrypoints, and runs them with `app.run()`.

The decorators take Modal's parameters by name, every one of them: a typo raises TypeError, as
in Modal. Parameters that only mean something on Modal's service (regions, warm pools, memory
snapshots, ...) are accepted and recorded on the function; the few whose absence changes what a
program does (a schedule, a proxy, blocked networking) warn once per run. What Modal's service
tells of an app (info, stats, logs, its sandboxes) raises. The README's table "Modal names and
what they do locally" lists them all.
"""

from __future__ import annotations

import contextlib
import threading
import weakref
from collections.abc import Callable, Collection, Iterator, Mapping, Sequence
from datetime import datetime
from pathlib import PurePosixPath
from typing import TYPE_CHECKING, Any, NoReturn, TypeVar

from . import settings
from ._aio import twin
from ._callsite import warn_user
from ._unsupported import NoLocalMeaning, no_local_meaning
from .apps import lookup_app, register
from .cls import Cls, Server
from .definition.image import Image
from .exception import ExecutionError, InvalidError, NotFoundError
from .function import Function, FunctionCall, Options, check_gpu_arg, secrets_with_env
from .partial import PartialFunction
from .retries import Retries, retry_policy
from .schedule import Schedule
from .secret import Secret

if TYPE_CHECKING:
    from .cluster.driver import Cluster
    from .execute.builder import LayerCache
    from .execute.functions import Relay
    from .execute.limits import Limits
    from .function import Pool
    from .plan.planner import Plan
    from .store.store import Store
    from .volume import Volume

__all__ = ["App", "LocalEntrypoint", "enable_output"]

C = TypeVar("C", bound=Cls)

_warned: set[str] = set()
_warned_lock = threading.Lock()


def _warn_once(key: str, message: str) -> None:
    if settings.in_container():  # (the program is imported there too: warn only once, here)
        return
    with _warned_lock:
        if key in _warned:
            return
        _warned.add(key)
    warn_user(message)


class LocalEntrypoint:
    """A function registered with `@app.local_entrypoint()`: runs here, inside `app.run()`."""

    def __init__(self, raw_f: Callable[..., Any], app: App):
        self.raw_f, self.app = raw_f, app
        self.__name__ = raw_f.__name__

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self.raw_f(*args, **kwargs)


def _checked_volumes(volumes: Mapping[str | PurePosixPath, Volume]) -> dict[str, Volume]:
    # (volume.py loads only for programs that have volumes: containers import this module too)
    if not volumes:
        return {}
    from .volume import check_volumes

    return check_volumes(volumes)


def _limits(memory: object, cpu: object) -> Limits | None:
    if not (memory or cpu):
        return None
    from .execute.limits import Limits

    return Limits.from_modal(memory, cpu)


def _no_parentheses(decorator: str, value: object) -> None:
    """Modal's App decorators take keyword arguments only, so `@app.function` without
    parentheses fails there with Python's own TypeError: the same one here."""
    if value is not None:
        raise TypeError(f"App.{decorator}() takes 1 positional argument but 2 were given")


class App:
    """A set of functions that share defaults (image, secrets, volumes) and run together."""

    def __init__(
        self,
        name: str | None = None,
        *,
        tags: dict[str, str] | None = None,
        image: Image | None = None,
        secrets: Sequence[Secret] = (),
        volumes: Mapping[str | PurePosixPath, Volume] = {},
        include_source: bool = True,
    ):
        if image is not None and not isinstance(image, Image):
            raise InvalidError("`image=` has to be an `imagewright.Image` object")
        self._name = name
        self._tags = dict(tags or {})
        self.image = image
        self.secrets = secrets_with_env(secrets, None)
        self.volumes = _checked_volumes(volumes)
        self.include_source = include_source
        self._functions: dict[str, Function] = {}
        self._classes: dict[str, Cls] = {}
        self._entrypoints: dict[str, LocalEntrypoint] = {}
        self._running = False
        self._plans: dict[int, Plan] = {}
        self._pools: list[Pool] = []
        self._spawned: weakref.WeakSet[FunctionCall] = weakref.WeakSet()  # .spawn()'s calls
        self._pools_lock = threading.Lock()
        self._store_obj: Store | None = None
        self._cluster: Cluster | None = None  # while app.run(cluster=...) runs
        if name:
            register(name, self)

    def __repr__(self) -> str:
        return f"App({self._name!r})"

    @property
    def name(self) -> str | None:
        return self._name

    @property
    def description(self) -> str | None:
        return self._name

    @property
    def app_id(self) -> str | None:
        """Modal's id of a running app; locally apps have none."""
        return None

    @property
    def registered_functions(self) -> dict[str, Function]:
        """The app's functions, by name."""
        return self._functions

    @property
    def registered_classes(self) -> dict[str, Cls]:
        """The app's classes (and servers), by name."""
        return self._classes

    @property
    def registered_entrypoints(self) -> dict[str, LocalEntrypoint]:
        """The app's local entrypoints, by name."""
        return self._entrypoints

    @property
    def registered_web_endpoints(self) -> list[str]:
        """The functions with a web decorator (served by `imagewright serve`)."""
        return [
            name
            for name, function in self.registered_functions.items()
            if function._partial is not None and function._partial.web is not None
        ]

    def get_tags(self) -> dict[str, str]:
        return dict(self._tags)

    def set_tags(self, tags: Mapping[str, str], *, client: object = None) -> None:
        self._tags.update(tags)

    def include(self, other_app: App, inherit_tags: bool = True) -> App:
        """Add another app's functions and classes to this one."""
        self.registered_functions.update(other_app.registered_functions)
        self.registered_classes.update(other_app.registered_classes)
        if inherit_tags:
            self._tags = {**other_app._tags, **self._tags}
        return self

    @staticmethod
    def lookup(
        name: str,
        *,
        client: object = None,
        environment_name: str | None = None,
        create_if_missing: bool = False,
    ) -> App:
        """An app loaded in this process, by name (or a new empty one)."""
        found: App | None = lookup_app(name)
        if found is not None:
            return found
        if not create_if_missing:
            raise NotFoundError(
                f"No app named {name!r} is loaded here. Pass create_if_missing=True for a new one."
            )
        return App(name)

    # ---- registration -----------------------------------------------------------------------

    def _options(
        self,
        where: str,
        image: Image | None,
        env: Mapping[str, str | None] | None,
        secrets: Collection[Secret] | None,
        gpu: str | list[str] | None,
        volumes: Mapping[str | PurePosixPath, Any],
        cpu: float | tuple[float, float] | None,
        memory: int | tuple[int, int] | None,
        retries: int | Retries | None,
        timeout: float,
        max_containers: int | None,
        include_source: bool | None,
        unsupported: Mapping[str, object],
    ) -> Options:
        from .cloud import CloudBucketMount

        buckets = {str(p): v for p, v in volumes.items() if isinstance(v, CloudBucketMount)}
        volumes = {p: v for p, v in volumes.items() if not isinstance(v, CloudBucketMount)}
        chosen = image or self.image or Image.debian_slim()
        if not isinstance(chosen, Image):
            raise InvalidError("`image=` has to be an `imagewright.Image` object")
        for name, value in unsupported.items():
            if value:
                _warn_once(
                    f"{where}:{name}",
                    f"{where}: {name}={value!r} has no effect locally (see the README's "
                    "'Modal names and what they do locally')",
                )
        return Options(
            image=chosen,
            secrets=(*self.secrets, *secrets_with_env(secrets, env)),
            volumes={**self.volumes, **_checked_volumes(volumes)},
            timeout=timeout,
            retries=retry_policy(retries, where),
            max_containers=max_containers,
            include_source=self.include_source if include_source is None else include_source,
            gpu=check_gpu_arg(gpu),
            limits=_limits(memory, cpu),
            bucket_mounts=tuple(sorted(buckets)),
        )

    def function(
        self,
        _warn_parentheses_missing: object = None,
        *,
        image: Image | None = None,
        schedule: object = None,
        env: dict[str, str | None] | None = None,
        secrets: Collection[Secret] | None = None,
        gpu: str | list[str] | None = None,
        serialized: bool = False,
        network_file_systems: Mapping[str | PurePosixPath, object] = {},
        volumes: Mapping[str | PurePosixPath, Volume] = {},
        cpu: float | tuple[float, float] | None = None,
        memory: int | tuple[int, int] | None = None,
        ephemeral_disk: int | None = None,
        min_containers: int | None = None,
        max_containers: int | None = None,
        buffer_containers: int | None = None,
        scaledown_window: int | None = None,
        proxy: object = None,
        retries: int | Retries | None = None,
        timeout: int = 300,
        startup_timeout: int | None = None,
        name: str | None = None,
        is_generator: bool | None = None,
        cloud: str | None = None,
        region: str | Sequence[str] | None = None,
        routing_region: str | None = None,
        nonpreemptible: bool = False,
        enable_memory_snapshot: bool = False,
        block_network: bool = False,
        restrict_modal_access: bool = False,
        single_use_containers: bool = False,
        i6pn: bool | None = None,
        include_source: bool | None = None,
        experimental_options: dict[str, Any] | None = None,
        _experimental_restrict_output: bool = False,
        max_inputs: int | None = None,
    ) -> Callable[[Callable[..., Any]], Function]:
        """Register a function to run in containers of `image` (default: the app's)."""
        _no_parentheses("function", _warn_parentheses_missing)

        def decorate(f: Callable[..., Any] | PartialFunction) -> Function:
            partial = f if isinstance(f, PartialFunction) else None
            raw_f = partial.raw_f if partial is not None else f
            if isinstance(raw_f, (Function, Cls)) or not callable(raw_f) or isinstance(raw_f, type):
                raise InvalidError("@app.function() must decorate a plain function")
            if partial is not None and partial.flags & {"enter", "exit", "method"}:
                raise InvalidError(
                    f"@app.function() cannot decorate {raw_f.__qualname__}: @modal.enter, "
                    "@modal.exit and @modal.method belong on methods of an @app.cls() class."
                )
            key = name or raw_f.__name__
            options = self._options(
                f"function {key}",
                image,
                env,
                secrets,
                gpu,
                volumes,
                cpu,
                memory,
                retries,
                timeout,
                max_containers,
                include_source,
                {
                    "proxy": proxy,
                    "network_file_systems": network_file_systems,
                    "block_network": block_network,
                    "single_use_containers": single_use_containers,
                },
            )
            if schedule is not None and not isinstance(schedule, Schedule):
                raise InvalidError("schedule= takes a modal.Period or a modal.Cron")
            options = options._replace(
                min_containers=min_containers,
                scaledown_window=scaledown_window,
                schedule=schedule,
            )
            if is_generator is not None:
                partial = partial or PartialFunction(raw_f)
                partial.is_generator = is_generator
            function = Function(raw_f, self, options, partial)
            self.registered_functions[key] = function
            return function

        return decorate

    def cls(
        self,
        _warn_parentheses_missing: object = None,
        *,
        image: Image | None = None,
        env: dict[str, str | None] | None = None,
        secrets: Collection[Secret] | None = None,
        gpu: str | list[str] | None = None,
        serialized: bool = False,
        network_file_systems: Mapping[str | PurePosixPath, object] = {},
        volumes: Mapping[str | PurePosixPath, Volume] = {},
        cpu: float | tuple[float, float] | None = None,
        memory: int | tuple[int, int] | None = None,
        ephemeral_disk: int | None = None,
        min_containers: int | None = None,
        max_containers: int | None = None,
        buffer_containers: int | None = None,
        scaledown_window: int | None = None,
        proxy: object = None,
        retries: int | Retries | None = None,
        timeout: int = 300,
        startup_timeout: int | None = None,
        cloud: str | None = None,
        region: str | Sequence[str] | None = None,
        routing_region: str | None = None,
        nonpreemptible: bool = False,
        enable_memory_snapshot: bool = False,
        block_network: bool = False,
        restrict_modal_access: bool = False,
        single_use_containers: bool = False,
        i6pn: bool | None = None,
        include_source: bool | None = None,
        experimental_options: dict[str, Any] | None = None,
        _experimental_restrict_output: bool = False,
        max_inputs: int | None = None,
    ) -> Callable[[type[Any] | PartialFunction], Cls]:
        """Register a class whose instances run in containers; see cls.py."""
        _no_parentheses("cls", _warn_parentheses_missing)

        def decorate(target: type[Any] | PartialFunction) -> Cls:
            return self._register_class(
                Cls,
                target,
                self._options(
                    f"class {getattr(target, '__name__', target)}",
                    image,
                    env,
                    secrets,
                    gpu,
                    volumes,
                    cpu,
                    memory,
                    retries,
                    timeout,
                    max_containers,
                    include_source,
                    {
                        "proxy": proxy,
                        "network_file_systems": network_file_systems,
                        "block_network": block_network,
                        "single_use_containers": single_use_containers,
                    },
                )._replace(min_containers=min_containers, scaledown_window=scaledown_window),
            )

        return decorate

    def server(
        self,
        _warn_parentheses_missing: object = None,
        *,
        image: Image | None = None,
        env: dict[str, str | None] | None = None,
        secrets: Collection[Secret] | None = None,
        gpu: str | list[str] | None = None,
        serialized: bool = False,
        volumes: Mapping[str | PurePosixPath, Volume] = {},
        cpu: float | tuple[float, float] | None = None,
        memory: int | tuple[int, int] | None = None,
        ephemeral_disk: int | None = None,
        target_concurrency: float | None = None,
        max_concurrency: int | None = None,
        min_containers: int | None = None,
        max_containers: int | None = None,
        buffer_containers: int | None = None,
        scaleup_window: int | None = None,
        scaledown_window: int | None = None,
        startup_timeout: int = 30,
        name: str | None = None,
        port: int = 8000,
        unauthenticated: bool = False,
        h2_enabled: bool = False,
        exit_grace_period: int = 0,
        routing_region: str = "us-east",
        compute_region: str | Sequence[str] | None = None,
        cloud: str | None = None,
        nonpreemptible: bool = False,
        proxy: object = None,
        i6pn: bool | None = None,
        enable_memory_snapshot: bool = False,
        include_source: bool | None = None,
        experimental_options: dict[str, Any] | None = None,
    ) -> Callable[[type[Any] | PartialFunction], Server]:
        """Register a class that runs a web server on `port` (served by `imagewright serve`)."""
        _no_parentheses("server", _warn_parentheses_missing)

        def decorate(target: type[Any] | PartialFunction) -> Server:
            options = self._options(
                f"server {getattr(target, '__name__', target)}",
                image,
                env,
                secrets,
                gpu,
                volumes,
                cpu,
                memory,
                None,
                300,
                max_containers,
                include_source,
                {"proxy": proxy},
            )._replace(min_containers=min_containers, scaledown_window=scaledown_window)
            server = self._register_class(Server, target, options)
            server.port, server._startup_timeout = port, startup_timeout
            server._unauthenticated = unauthenticated
            return server

        return decorate

    def _register_class(
        self, kind: type[C], target: type[Any] | PartialFunction, options: Options
    ) -> C:
        flags = target if isinstance(target, PartialFunction) else None
        user_cls = flags.raw_f if flags is not None else target
        if isinstance(user_cls, Cls) or not isinstance(user_cls, type):
            raise InvalidError("@app.cls() must decorate a class")
        registered = kind(user_cls, self, options, flags)
        self.registered_classes[user_cls.__name__] = registered
        return registered

    def local_entrypoint(
        self, _warn_parentheses_missing: object = None, *, name: str | None = None
    ) -> Callable[[Callable[..., Any]], LocalEntrypoint]:
        """Register a function that `imagewright run` calls on this machine."""
        _no_parentheses("local_entrypoint", _warn_parentheses_missing)

        def decorate(raw_f: Callable[..., Any]) -> LocalEntrypoint:
            entrypoint = LocalEntrypoint(raw_f, self)
            self.registered_entrypoints[name or raw_f.__name__] = entrypoint
            return entrypoint

        return decorate

    # ---- running ----------------------------------------------------------------------------

    @contextlib.contextmanager
    def run(
        self,
        *,
        name: str | None = None,
        client: object = None,
        detach: bool = False,
        interactive: bool = False,
        environment_name: str | None = None,
        cache: LayerCache | None = None,
        cluster: str | None = None,
    ) -> Iterator[App]:
        """Build every function's and class's image, then let them be called remotely.

        `cache` (imagewright's own) is a shared layer cache for those builds (default:
        build_image's). `cluster` (imagewright's own; default $IMAGEWRIGHT_CLUSTER), a Ray
        cluster's ray://HOST:PORT, runs every call on that cluster's nodes (cluster/). When the
        app stops, classes' containers run their @exit hooks.
        """
        from .execute.builder import build_image
        from .execute.functions import stop_all

        address = cluster or settings.cluster()
        if address:
            from .cluster.driver import check_address

            check_address(address)
            self._check_cluster_volumes()
        images = [f._options.image for f in self.registered_functions.values()]
        images += [c._options.image for c in self.registered_classes.values()]
        for image in images:
            if id(image) not in self._plans:
                build = build_image(image, store=self._store, cache=cache)
                self._plans[id(image)] = build.plan
        if address:
            from .cluster.driver import Cluster

            self._cluster = Cluster(address)
            settings.use_cluster(address)
        self._running = True
        try:
            yield self
        except KeyboardInterrupt:
            stop_all()
            if self._cluster is not None:
                self._cluster.close()
            raise
        finally:
            self._running = False
            for call in list(self._spawned):  # as on Modal, a stopped app's calls end with it
                if not all(future.done() for future in call._futures):
                    call.cancel()
            for function in self.registered_functions.values():
                function._drop_pool()
            with self._pools_lock:
                pools, self._pools = self._pools, []
            for pool in pools:
                pool.close()
            for cls in self.registered_classes.values():
                cls._instances.clear()
            if self._cluster is not None:
                self._cluster.close()
                self._cluster = None
                settings.use_cluster(None)

    def _check_cluster_volumes(self) -> None:
        """Refuse, before anything is built, volumes a cluster's nodes could not see."""
        if settings.volumes_dir_shared():
            return
        options = [(n, f._options) for n, f in self.registered_functions.items()]
        options += [(n, c._options) for n, c in self.registered_classes.items()]
        for name, option in options:
            if option.volumes:
                raise InvalidError(
                    f"{name} mounts volumes, which live on this machine only: on a cluster, set "
                    f"{settings.VOLUMES_DIR} to a directory every node mounts at the same path "
                    "(NFS or the like), here and on every node"
                )

    def stop(self) -> None:
        """Modal stops a deployed app; a local app stops when `app.run()` ends."""

    # ---- what Modal's service tells of an app ------------------------------------------------

    logs = NoLocalMeaning()
    sandboxes = NoLocalMeaning()

    @twin
    def get_dashboard_url(self) -> str:
        raise no_local_meaning("modal.App.get_dashboard_url")

    @twin
    def info(self, refresh: bool = False) -> NoReturn:
        raise no_local_meaning("modal.App.info")

    @twin
    def stats(self, *, since: datetime | None = None, until: datetime | None = None) -> NoReturn:
        raise no_local_meaning("modal.App.stats")

    def deploy(
        self,
        *,
        name: str | None = None,
        environment_name: str | None = None,
        tag: str = "",
        client: object = None,
    ) -> App:
        raise no_local_meaning("App.deploy (use `imagewright run`)")

    @property
    def _store(self) -> Store:
        if self._store_obj is None:
            from .store.store import Store

            self._store_obj = Store.default()
        return self._store_obj

    def _plan_for(self, image: Image) -> Plan:
        plan = self._plans.get(id(image))
        if plan is None:
            raise ExecutionError("this image was not built by app.run(): call inside app.run()")
        return plan

    @property
    def _relay(self) -> Relay:
        """What runs the calls its functions make to each other from inside containers."""
        from .relay import relay_for

        return relay_for(self)

    def _adopt_pool(self, pool: Pool) -> None:
        with self._pools_lock:
            self._pools.append(pool)

    def _require_running(self, what: str) -> None:
        if not self._running:
            raise ExecutionError(
                f"{what} needs a running app: call it inside `with app.run():` or run the file "
                "with `imagewright run`."
            )


@contextlib.contextmanager
def enable_output(show_progress: bool = True) -> Iterator[None]:
    """Modal's switch for build and container output; imagewright always shows it."""
    yield
