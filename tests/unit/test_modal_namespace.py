"""Every public name of Modal 1.x exists: the namespace against lists written out by hand
from Modal 1.6.4 (`modal.__all__`, `dir(modal.exception)` and the classes' `__mro__`), the
exception hierarchy, and the parameter names of the small types. Pure logic: runs as any user.
"""

from __future__ import annotations

import asyncio
import builtins
import inspect
from collections.abc import Callable
from typing import Any

import pytest

import imagewright as modal
from imagewright import exception
from imagewright.exception import InvalidError, NotFoundError, UnimplementedError
from imagewright.retries import retry_policy

MODAL_ALL = [
    "__version__", "App", "Client", "Cluster", "Cls", "Cron", "Dict", "Environment", "Error",
    "FilePatternMatcher", "Function", "FunctionCall", "Image", "NetworkFileSystem", "Period",
    "Probe", "Proxy", "Queue", "Retries", "CloudBucketMount", "Sandbox", "SandboxSnapshot",
    "SchedulerPlacement", "Secret", "Server", "Tunnel", "Volume", "Workspace", "asgi_app",
    "batched", "billing", "clustered", "concurrent", "current_function_call_id",
    "current_input_id", "enable_output", "enter", "exit", "experimental", "fastapi_endpoint",
    "forward", "is_local", "interact", "method", "parameter", "sessioned", "types",
    "web_endpoint", "web_server", "wsgi_app",
]  # fmt: skip

PENDING: set[str] = set()  # names still to come: the test fails when one arrives

# The public members of each of Modal 1.6.4's classes (`dir(modal.X)`, no underscores).
MODAL_MEMBERS = {
    "App": [
        "app_id", "cls", "deploy", "description", "function", "get_dashboard_url", "get_tags",
        "include", "info", "local_entrypoint", "logs", "lookup", "name", "registered_classes",
        "registered_entrypoints", "registered_functions", "registered_web_endpoints", "run",
        "sandboxes", "server", "set_tags", "stats", "stop",
    ],
    "Client": [
        "anonymous", "close", "from_credentials", "from_env", "from_oauth_credentials",
        "get_input_plane_metadata", "get_stub", "hello", "is_closed", "stub", "verify",
    ],
    "CloudBucketMount": [],
    "Cls": [
        "client", "from_name", "get_dashboard_url", "hydrate", "object_id", "with_batching",
        "with_concurrency", "with_options",
    ],
    "Cluster": [
        "client", "container_ids", "container_ips", "container_rank", "from_context", "from_id",
        "get_dashboard_url", "hydrate", "object_id",
    ],
    "Cron": [],
    "Dict": [
        "clear", "client", "contains", "ephemeral", "from_id", "from_name", "get",
        "get_dashboard_url", "hydrate", "info", "items", "keys", "len", "name", "object_id",
        "objects", "pop", "put", "update", "values",
    ],
    "Environment": [
        "apps", "billing", "client", "from_context", "from_name", "get_dashboard_url", "hydrate",
        "members", "name", "object_id", "objects", "roles",
    ],
    "FilePatternMatcher": ["can_prune_directories", "from_file", "patterns"],
    "Function": [
        "app", "autoscaler", "client", "experimental_spawn_map", "for_each", "from_id", "from_name",
        "get_current_stats", "get_dashboard_url", "get_web_url", "hydrate", "info", "local", "logs",
        "map", "metrics", "object_id", "remote", "remote_gen", "spawn", "spawn_map", "starmap",
        "stats", "update_autoscaler", "with_batching", "with_concurrency", "with_options",
    ],
    "FunctionCall": [
        "cancel", "client", "from_id", "gather", "get", "get_call_graph", "get_dashboard_url",
        "hydrate", "iter", "logs", "num_inputs", "object_id",
    ],
    "Image": [
        "add_local_dir", "add_local_file", "add_local_python_source", "apt_install", "build",
        "client", "cmd", "debian_slim", "dockerfile_commands", "entrypoint", "env", "from_aws_ecr",
        "from_dockerfile", "from_gcp_artifact_registry", "from_id", "from_name", "from_registry",
        "from_scratch", "get_dashboard_url", "hydrate", "imports", "logs", "micromamba",
        "micromamba_install", "object_id", "pip_install", "pip_install_from_pyproject",
        "pip_install_from_requirements", "pip_install_private_repos", "pipe",
        "poetry_install_from_file", "publish", "run_commands", "run_function", "shell",
        "uv_pip_install", "uv_sync", "workdir",
    ],
    "NetworkFileSystem": [
        "add_local_dir", "add_local_file", "client", "create_deployed", "delete", "ephemeral",
        "from_name", "get_dashboard_url", "hydrate", "iterdir", "listdir", "object_id", "read_file",
        "remove_file", "write_file",
    ],
    "Period": [],
    "Probe": ["exec_argv", "interval_ms", "tcp_port", "with_exec", "with_tcp"],
    "Proxy": ["client", "from_name", "get_dashboard_url", "hydrate", "object_id"],
    "Queue": [
        "clear", "client", "ephemeral", "from_id", "from_name", "get", "get_dashboard_url",
        "get_many", "hydrate", "info", "iterate", "len", "name", "object_id", "objects", "put",
        "put_many", "validate_partition_key",
    ],
    "Retries": [],
    "Sandbox": [
        "client", "create", "create_connect_token", "detach", "exec", "filesystem", "from_id",
        "from_name", "get_dashboard_url", "get_tags", "hydrate", "list", "logs", "mount_image",
        "object_id", "poll", "reload_volumes", "returncode", "set_tags", "snapshot_directory",
        "snapshot_filesystem", "stderr", "stdin", "stdout", "terminate", "tunnels", "unmount_image",
        "wait", "wait_until_ready",
    ],
    "SandboxSnapshot": ["client", "from_id", "get_dashboard_url", "hydrate", "object_id"],
    "SchedulerPlacement": [],
    "Secret": [
        "client", "from_dict", "from_dotenv", "from_local_environ", "from_name",
        "get_dashboard_url", "hydrate", "info", "name", "object_id", "objects", "update",
    ],
    "Server": [
        "autoscaler", "from_id", "from_name", "get_url", "hydrate", "info", "logs", "metrics",
        "object_id", "sessions", "stats", "update_autoscaler",
    ],
    "Tunnel": ["tcp_socket", "tls_socket", "url"],
    "Volume": [
        "batch_upload", "client", "commit", "copy_files", "ephemeral", "from_id", "from_name",
        "get_dashboard_url", "hydrate", "info", "iterdir", "listdir", "name", "object_id",
        "objects", "read_file", "read_file_into_fileobj", "read_only", "reload", "remove_file",
        "rename", "with_mount_options",
    ],
    "Workspace": [
        "billing", "client", "from_context", "get_dashboard_url", "hydrate", "member_tokens",
        "members", "name", "object_id", "proxy_tokens", "service_users", "settings",
    ],
}  # fmt: skip

# Modal members still to come, by class: Image's package methods (definition/image.py) and its
# Object members (id, client, hydrate, ...: image.py does not take cloud.ModalObject yet), and
# Sandbox's members beyond running, exec, streams, tunnels and files. A name may leave its list
# when it arrives; none may be missing that is not listed.
PENDING_MEMBERS = {
    "Sandbox": {
        "create_connect_token", "filesystem", "logs", "mount_image", "reload_volumes", "set_tags",
        "snapshot_directory", "snapshot_filesystem", "unmount_image",
    },
}  # fmt: skip

# (class, the Modal class or builtin it directly derives from), for every class of
# modal.exception; Modal's transitional grpclib.GRPCError base is left out.
EXCEPTION_BASES = [
    ("Error", Exception),
    ("AlreadyExistsError", "Error"),
    ("AuthError", "Error"),
    ("ClientClosed", "Error"),
    ("ConflictError", "InvalidError"),
    ("ConnectionError", "Error"),
    ("DataLossError", "Error"),
    ("DeserializationError", "Error"),
    ("ExecTimeoutError", "TimeoutError"),
    ("ExecutionError", "Error"),
    ("FunctionTimeoutError", "TimeoutError"),
    ("ImageBuildError", "RemoteError"),
    ("InteractiveTimeoutError", "TimeoutError"),
    ("InternalError", "Error"),
    ("InternalFailure", "Error"),
    ("InvalidError", "Error"),
    ("LogsFetchError", "Error"),
    ("MountUploadTimeoutError", "TimeoutError"),
    ("NotFoundError", "Error"),
    ("OutputExpiredError", "TimeoutError"),
    ("PermissionDeniedError", "Error"),
    ("RemoteError", "Error"),
    ("RequestSizeError", "Error"),
    ("ResourceExhaustedError", "Error"),
    ("SandboxFilesystemDirectoryNotEmptyError", "SandboxFilesystemError"),
    ("SandboxFilesystemError", "Error"),
    ("SandboxFilesystemFileTooLargeError", "SandboxFilesystemError"),
    ("SandboxFilesystemIsADirectoryError", "SandboxFilesystemError"),
    ("SandboxFilesystemNotADirectoryError", "SandboxFilesystemError"),
    ("SandboxFilesystemNotFoundError", "SandboxFilesystemError"),
    ("SandboxFilesystemPathAlreadyExistsError", "SandboxFilesystemError"),
    ("SandboxFilesystemPermissionError", "SandboxFilesystemError"),
    ("SandboxTerminatedError", "Error"),
    ("SandboxTimeoutError", "TimeoutError"),
    ("SerializationError", "Error"),
    ("ServiceError", "Error"),
    ("SnapshotCreationError", "Error"),
    ("TimeoutError", "Error"),
    ("UnimplementedError", "Error"),
    ("VersionError", "Error"),
    ("VolumeUploadTimeoutError", "TimeoutError"),
    ("WorkspaceManagementError", "Error"),
    ("AsyncUsageWarning", UserWarning),
    ("DeprecationError", UserWarning),
    ("InternalAPIWarning", UserWarning),
    ("ServerWarning", UserWarning),
    ("InputCancellation", BaseException),
    ("ModuleNotMountable", Exception),
    ("UserCodeException", Exception),
]

# Parameter names, in order, as Modal 1.6.4 has them.
SIGNATURES: list[tuple[Callable[..., Any], list[str]]] = [
    (modal.Retries, ["max_retries", "backoff_coefficient", "initial_delay", "max_delay"]),
    (modal.Period, ["years", "months", "weeks", "days", "hours", "minutes", "seconds"]),
    (modal.Cron, ["cron_string", "timezone"]),
    (modal.Probe.with_tcp, ["port", "interval_ms"]),
    (modal.Probe.with_exec, ["argv", "interval_ms"]),
    (modal.SchedulerPlacement, ["region", "zone", "spot", "instance_type"]),
    (modal.CloudBucketMount, [
        "bucket_name", "bucket_endpoint_url", "key_prefix", "secret", "oidc_auth_role_arn",
        "read_only", "requester_pays", "force_path_style",
    ]),
    (modal.Tunnel, ["host", "port", "unencrypted_host", "unencrypted_port"]),
    (modal.forward, ["port", "unencrypted", "h2_enabled", "client"]),
    (modal.Dict.from_name, ["name", "environment_name", "create_if_missing", "client"]),
    (modal.Dict.ephemeral, ["client", "environment_name"]),
    (modal.Queue.from_name, ["name", "environment_name", "create_if_missing", "client"]),
    (modal.Queue.ephemeral, ["client", "environment_name"]),
    (modal.NetworkFileSystem.from_name,
     ["name", "environment_name", "create_if_missing", "client"]),
    (modal.Proxy.from_name, ["name", "environment_name", "client"]),
    (modal.Environment.from_name, ["name", "create_if_missing", "client"]),
    (modal.Sandbox.from_name,
     ["app_name", "name", "environment_name", "include_terminated", "client"]),
    (modal.is_local, []),
    (exception.simulate_preemption, ["wait_seconds", "jitter_seconds"]),
    (modal.Image.dockerfile_commands, [
        "self", "dockerfile_commands", "context_files", "env", "secrets", "gpu", "context_dir",
        "force_build", "ignore", "build_args",
    ]),
]  # fmt: skip

# Modal's parameters first; context_mount (Modal 0.x's) is ours.
FROM_DOCKERFILE = [
    "path", "force_build", "context_dir", "ignore", "build_args", "registry_secret", "secrets",
    "env", "gpu", "add_python",
]  # fmt: skip


def test_every_top_level_name_exists() -> None:
    missing = {name for name in MODAL_ALL if not hasattr(modal, name)}
    assert missing == PENDING, "take arrived names off PENDING; add missing ones"
    assert set(MODAL_ALL) - PENDING <= set(modal.__all__)


def test_every_class_has_modals_public_members() -> None:
    classes = {n for n in MODAL_ALL if inspect.isclass(getattr(modal, n, None))}
    assert classes - {"Error"} == set(MODAL_MEMBERS)
    for name, members in MODAL_MEMBERS.items():
        pending = PENDING_MEMBERS.get(name, set())
        assert pending <= set(members), name
        missing = {m for m in members if not hasattr(getattr(modal, name), m)}
        assert missing <= pending, f"modal.{name} lacks {sorted(missing - pending)}"


def test_exception_hierarchy_is_modals() -> None:
    for name, base in EXCEPTION_BASES:
        cls = getattr(exception, name)
        parent = base if isinstance(base, type) else getattr(exception, base)
        assert issubclass(cls, parent), (name, parent)
        assert name in exception.__all__
    # Modal's TimeoutError and ConnectionError are not the builtins of those names
    assert not issubclass(exception.TimeoutError, builtins.TimeoutError)
    assert not issubclass(exception.ConnectionError, builtins.ConnectionError)
    assert issubclass(exception.FunctionTimeoutError, exception.Error)
    assert modal.Error is exception.Error


@pytest.mark.parametrize(
    ("target", "names"), SIGNATURES, ids=lambda x: getattr(x, "__qualname__", "")
)
def test_signatures_are_modals(target: Callable[..., Any], names: list[str]) -> None:
    assert list(inspect.signature(target).parameters) == names


def test_from_dockerfile_names_each_of_modals_parameters() -> None:
    parameters = inspect.signature(modal.Image.from_dockerfile).parameters
    assert list(parameters)[: len(FROM_DOCKERFILE)] == FROM_DOCKERFILE
    assert not any(p.kind is p.VAR_KEYWORD for p in parameters.values())
    with pytest.raises(TypeError):
        modal.Image.from_dockerfile("Dockerfile", no_such_option=1)  # type: ignore[call-arg]
    with pytest.raises(TypeError):
        modal.Image.debian_slim().dockerfile_commands("RUN true", no_such_option=1)  # type: ignore[call-arg]


def test_retries_checks_and_messages_are_modals() -> None:
    cases = [
        ({"max_retries": -1}, "Function retries must be non-negative"),
        ({"max_retries": 1, "max_delay": 0.5}, "max_delay must be at least 1 second"),
        ({"max_retries": 1, "max_delay": 61}, "Must be between 1-60 seconds"),
        ({"max_retries": 1, "initial_delay": -1}, "Delay must be positive"),
        ({"max_retries": 1, "initial_delay": 61}, "Must be between 0-60 seconds"),
        ({"max_retries": 1, "backoff_coefficient": 0.5}, "between 1.0 (fixed-interval"),
        ({"max_retries": 1, "backoff_coefficient": 11}, "and 10.0"),
    ]
    for kwargs, message in cases:
        with pytest.raises(InvalidError, match=message.replace("(", r"\(")):
            modal.Retries(**kwargs)


def test_retries_delay_backs_off_up_to_max_delay() -> None:
    policy = modal.Retries(max_retries=5, backoff_coefficient=3.0, initial_delay=2.0, max_delay=30)
    assert [policy.delay(n) for n in range(1, 5)] == [2.0, 6.0, 18.0, 30.0]
    fixed = modal.Retries(max_retries=2, backoff_coefficient=1.0, initial_delay=0.0)
    assert fixed.delay(2) == 0.0
    with pytest.raises(ValueError):
        policy.delay(0)


def test_retry_policy_reads_retries_as_modal_does() -> None:
    assert retry_policy(None) is None
    three = retry_policy(3)
    assert three is not None and three.max_retries == 3
    assert [three.delay(n) for n in (1, 2, 3)] == [1.0, 1.0, 1.0]
    policy = modal.Retries(max_retries=1)
    assert retry_policy(policy) is policy
    with pytest.raises(InvalidError, match="must be an integer or instance of"):
        retry_policy("3", "function f")  # type: ignore[arg-type]


def test_schedules_are_values() -> None:
    assert modal.Period(hours=4) == modal.Period(hours=4) != modal.Period(hours=5)
    assert modal.Cron("0 9 * * 4") != modal.Cron("0 9 * * 4", timezone="Europe/Paris")
    assert repr(modal.Period(days=1, seconds=0.5)) == "Period(days=1, seconds=0.5)"
    assert repr(modal.Cron("* * * * *")) == "Cron('* * * * *')"
    with pytest.raises(TypeError):
        modal.Period(1)  # type: ignore[misc]


def test_probe_checks_are_modals() -> None:
    assert modal.Probe.with_tcp(8080).tcp_port == 8080
    assert modal.Probe.with_exec("test", "-f", "/ready").exec_argv == ("test", "-f", "/ready")
    for make in (
        lambda: modal.Probe(),
        lambda: modal.Probe.with_tcp(0),
        lambda: modal.Probe.with_tcp(80, interval_ms=0),
        lambda: modal.Probe.with_exec(),
    ):
        with pytest.raises(InvalidError):
            make()


def test_is_local_is_false_only_in_a_container(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("IMAGEWRIGHT_IN_CONTAINER", raising=False)
    assert modal.is_local()
    with pytest.raises(InvalidError, match="only works inside"):
        modal.interact()
    monkeypatch.setenv("IMAGEWRIGHT_IN_CONTAINER", "1")
    assert not modal.is_local()
    modal.interact()
    asyncio.run(modal.interact.aio())


def test_names_without_local_use_load_and_raise_when_used() -> None:
    # what Modal programs write at module level works ...
    nfs = modal.NetworkFileSystem.from_name("n")
    modal.Proxy.from_name("p")
    modal.CloudBucketMount("bucket", read_only=True)
    modal.SchedulerPlacement(region="us-east")
    modal.Environment.from_name("dev")
    modal.Client.from_env().close()
    # ... and using it raises UnimplementedError, also through `.aio` and `with`
    uses: list[Callable[[], object]] = [
        lambda: nfs.listdir,
        lambda: modal.SandboxSnapshot.from_id("sn-1"),
        lambda: modal.Cluster.from_context(),
        lambda: modal.forward(8000).__enter__(),
        lambda: modal.Workspace.from_context().name,
        lambda: modal.billing.workspace_billing_report(start=None),  # type: ignore[arg-type]
        lambda: modal.experimental.stop_fetching_inputs(),
    ]
    for use in uses:
        with pytest.raises(UnimplementedError):
            use()
    with pytest.raises(TypeError):
        modal.Dict.from_name("x", no_such_option=True)  # type: ignore[call-arg]


def test_namespaces_hold_what_programs_use() -> None:
    assert modal.types.FileEntry is not None and modal.types.DictInfo is not None
    assert modal.Queue.validate_partition_key(None) == b""
    with pytest.raises(InvalidError):
        modal.Queue.validate_partition_key("")

    serve = modal.experimental.http_server(8080, proxy_regions=["us-east"])
    with pytest.warns(UserWarning, match="does not serve HTTP yet"):

        @serve
        class Server:
            pass

    assert Server.__name__ == "Server"


def test_simulate_preemption_checks_its_argument() -> None:
    with pytest.raises(ValueError, match="greater than 0"):
        exception.simulate_preemption(0)


def test_objects_are_hydrated_from_the_start() -> None:
    app = modal.App("objects-test")

    @app.function()
    def square(x: int) -> int:
        return x * x

    @app.server()
    class Web:
        pass

    secret, environment = modal.Secret.from_dict({"A": "1"}), modal.Environment.from_name("dev")
    nfs = modal.NetworkFileSystem.from_name("n")
    for obj in (square, Web, secret, environment, nfs, modal.Proxy.from_name("p")):
        assert obj.hydrate() is obj and asyncio.run(obj.hydrate.aio()) is obj
        assert isinstance(obj.client, modal.Client)
        assert obj.object_id.split("-")[0] in {"fu", "cs", "st", "en", "sv", "pr"}
        with pytest.raises(UnimplementedError, match="get_dashboard_url"):
            obj.get_dashboard_url()
    assert square.object_id == f"fu-{__name__}.{square.__qualname__}"
    assert modal.Function.from_id(square.object_id) is square
    assert square.app is app and square.experimental_spawn_map.aio is not None
    assert modal.Server.from_id(Web.object_id) is Web and Web.get_url() is None
    assert asyncio.run(Web.get_url.aio()) is None
    with pytest.raises(NotFoundError):
        modal.Function.from_id("fu-nothing")
    with pytest.raises(NotFoundError):
        modal.Server.from_id(square.object_id)
    assert app.registered_functions == {"square": square}
    assert app.registered_classes == {"Web": Web} and "registered_classes" in dir(modal.App)


def test_what_only_modals_service_knows_raises() -> None:
    app = modal.App()

    @app.function()
    def f() -> None:
        pass

    @app.server()
    class Web:
        pass

    client = modal.Client.from_oauth_credentials("token", oauth_client_id="id")
    assert not client.is_closed()
    uses: list[Callable[[], object]] = [
        lambda: app.info(),
        lambda: app.stats(),
        lambda: app.logs,
        lambda: app.sandboxes,
        lambda: asyncio.run(app.get_dashboard_url.aio()),
        lambda: f.info(),
        lambda: f.stats(since=None),
        lambda: f.get_current_stats(),
        lambda: f.update_autoscaler(min_containers=1),
        lambda: f.autoscaler,
        lambda: f.logs,
        lambda: f.metrics,
        lambda: Web.info(),
        lambda: Web.stats(),
        lambda: Web.update_autoscaler(target_concurrency=2.0),
        lambda: Web.sessions,
        lambda: client.verify("https://api.modal.com", ("id", "secret")),
        lambda: client.get_stub("https://api.modal.com"),
        lambda: asyncio.run(client.get_input_plane_metadata.aio("us-east")),
        lambda: modal.Client.anonymous("https://api.modal.com"),
        lambda: modal.Environment.objects.list(),
    ]
    for use in uses:
        with pytest.raises(UnimplementedError):
            use()


def test_a_spawned_map_is_one_call_of_many_inputs() -> None:
    from imagewright.function import Invoker

    class Squares(Invoker):
        """Maps here, in order, as `.map` would in containers."""

        def _map(self, verb: str, inputs: Any, *rest: Any) -> Any:
            return iter([x * x if x >= 0 else ValueError(f"{x}") for (x,) in inputs])

        def _app(self) -> Any:
            return modal.App("squares")  # (it keeps the calls it would stop)

    call = Squares().experimental_spawn_map([1, 2, -3, 4])
    assert call.num_inputs() == 4 and asyncio.run(call.num_inputs.aio()) == 4
    assert call.get(index=1) == 4 and modal.FunctionCall.from_id(call.object_id) is call
    assert list(call.iter(end=2)) == [1, 4]
    assert list(call.iter(start=3)) == [16]
    with pytest.raises(ValueError, match="-3"):
        call.get(index=2)
    with pytest.raises(ValueError, match="Invalid index range"):
        list(call.iter(end=5))

    async def collect() -> list[Any]:
        return [x async for x in call.iter.aio(start=3)]

    assert asyncio.run(collect()) == [16]
    assert Squares().spawn_map([1]) is None
