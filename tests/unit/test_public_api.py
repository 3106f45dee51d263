"""The public surface, pinned: `import imagewright as modal` offers exactly these names and
members. A change here is a change users see; make it on purpose, here and in the README."""

from __future__ import annotations

import inspect

import imagewright

EXPORTED = [
    "App", "Client", "CloudBucketMount", "Cls", "Cluster", "Cron", "Dict", "Environment", "Error",
    "FilePatternMatcher", "Function", "FunctionCall", "Image", "Mount", "NetworkFileSystem",
    "Period", "Probe", "Proxy", "Queue", "Retries", "Sandbox", "SandboxSnapshot",
    "SchedulerPlacement", "Secret", "Server", "Tunnel", "Volume", "Workspace", "__version__", "billing",
    "enable_output", "exception", "experimental", "forward", "interact", "is_local", "types",
    "asgi_app", "batched", "clustered", "concurrent", "current_function_call_id",
    "current_input_id", "enter", "exit", "fastapi_endpoint", "method", "parameter", "sessioned",
    "web_endpoint", "web_server", "wsgi_app",
]  # fmt: skip

MEMBERS = {
    "App": [
        "app_id", "cls", "deploy", "description", "function", "get_dashboard_url", "get_tags",
        "include", "info", "local_entrypoint", "logs", "lookup", "name", "registered_classes",
        "registered_entrypoints", "registered_functions", "registered_web_endpoints", "run",
        "sandboxes", "server", "set_tags", "stats", "stop",
    ],
    "Cls": [
        "client", "from_name", "get_dashboard_url", "hydrate", "object_id", "with_batching",
        "with_concurrency", "with_options",
    ],
    "Client": [
        "anonymous", "close", "from_credentials", "from_env", "from_oauth_credentials",
        "get_input_plane_metadata", "get_stub", "hello", "is_closed", "stub", "verify",
    ],
    "CloudBucketMount": [],
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
    "FilePatternMatcher": ["can_prune", "can_prune_directories", "from_file", "patterns"],
    "Function": [
        "app", "autoscaler", "client", "experimental_spawn_map", "for_each", "from_id", "from_name",
        "get_current_stats", "get_dashboard_url", "get_raw_f", "get_web_url", "hydrate", "image",
        "include_source", "info", "local", "logs", "map", "metrics", "object_id", "remote",
        "remote_gen", "secrets", "spawn", "spawn_map", "starmap", "stats", "timeout",
        "update_autoscaler", "with_batching", "with_concurrency", "with_options",
    ],
    "FunctionCall": [
        "cancel", "client", "from_id", "gather", "get", "get_call_graph", "get_dashboard_url",
        "hydrate", "iter", "logs", "num_inputs", "object_id",
    ],
    "Image": [
        "add_local_dir", "add_local_file", "add_local_python_source", "apt_install", "build",
        "client", "cmd", "copy_local_dir", "copy_local_file", "debian_slim",
        "dockerfile_commands", "entrypoint", "env", "export", "from_aws_ecr", "from_dockerfile",
        "from_gcp_artifact_registry", "from_id", "from_name", "from_registry", "from_scratch",
        "get_dashboard_url", "hydrate", "imports", "logs", "micromamba", "micromamba_install",
        "object_id", "pip_install", "pip_install_from_pyproject",
        "pip_install_from_requirements", "pip_install_private_repos", "pipe",
        "poetry_install_from_file", "publish", "push", "run_commands", "run_function", "shell",
        "to_dockerfile", "ubuntu", "uv_pip_install", "uv_pip_install_from_requirements",
        "uv_sync", "workdir",
    ],
    "Mount": ["from_local_dir", "local_dir", "remote_path"],
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
    "Retries": ["delay"],
    "Sandbox": [
        "client", "create", "detach", "exec", "from_id", "from_name", "get_dashboard_url",
        "get_tags", "hydrate", "list", "object_id", "open", "poll", "returncode", "stderr", "stdin",
        "stdout", "terminate", "tunnels", "wait", "wait_until_ready",
    ],
    "SandboxSnapshot": ["client", "from_id", "get_dashboard_url", "hydrate", "object_id"],
    "SchedulerPlacement": [],
    "Server": [
        "autoscaler", "client", "from_id", "from_name", "get_dashboard_url", "get_url", "hydrate",
        "info", "logs", "metrics", "object_id", "port", "sessions", "stats", "update_autoscaler",
        "with_batching", "with_concurrency", "with_options",
    ],
    "Secret": [
        "client", "env", "from_dict", "from_dotenv", "from_local_environ", "from_name",
        "get_dashboard_url", "hydrate", "info", "name", "object_id", "objects", "update",
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


def _public(cls: type) -> list[str]:
    """The public members a class defines or inherits from imagewright's own classes."""
    ours = [k for k in cls.__mro__ if k.__module__.startswith("imagewright")]
    return sorted({name for k in ours for name in vars(k) if not name.startswith("_")})


def test_exported_names() -> None:
    assert sorted(imagewright.__all__) == sorted(EXPORTED)
    for name in EXPORTED:
        assert hasattr(imagewright, name), name


def test_public_members_of_each_class() -> None:
    classes = {
        name: obj
        for name in imagewright.__all__
        if inspect.isclass(obj := getattr(imagewright, name)) and not issubclass(obj, Exception)
    }
    assert sorted(classes) == sorted(MEMBERS)
    for name, cls in classes.items():
        assert _public(cls) == MEMBERS[name], name
