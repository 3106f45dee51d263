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
        "app_id", "cls", "deploy", "description", "function", "get_tags", "include",
        "local_entrypoint", "lookup", "name", "registered_web_endpoints", "run", "server",
        "set_tags", "stop",
    ],
    "Cls": ["from_name", "with_batching", "with_concurrency", "with_options"],
    "Client": ["close", "from_credentials", "from_env", "hello", "is_closed", "stub"],
    "CloudBucketMount": [],
    "Cluster": ["from_context", "from_id"],
    "Cron": [],
    "Dict": [
        "clear", "contains", "ephemeral", "from_id", "from_name", "get", "info", "items", "keys",
        "len", "name", "pop", "put", "update", "values",
    ],
    "Environment": ["apps", "billing", "from_context", "from_name", "members", "name", "roles"],
    "FilePatternMatcher": ["can_prune", "from_file"],
    "Function": [
        "for_each", "from_name", "get_raw_f", "get_web_url", "hydrate", "image",
        "include_source", "local", "map", "object_id", "remote", "remote_gen", "secrets", "spawn",
        "spawn_map", "starmap", "timeout", "with_batching", "with_concurrency", "with_options",
    ],
    "FunctionCall": ["cancel", "from_id", "gather", "get", "get_call_graph"],
    "Image": [
        "add_local_dir", "add_local_file", "add_local_python_source", "apt_install", "build",
        "cmd", "copy_local_dir", "copy_local_file", "debian_slim", "dockerfile_commands",
        "entrypoint", "env", "export", "from_aws_ecr", "from_dockerfile",
        "from_gcp_artifact_registry", "from_registry", "from_scratch", "imports", "pip_install",
        "pip_install_from_pyproject", "pip_install_from_requirements", "pipe", "push",
        "run_commands", "run_function", "shell", "to_dockerfile", "ubuntu", "uv_pip_install",
        "uv_pip_install_from_requirements", "uv_sync", "workdir",
    ],
    "Mount": ["from_local_dir", "local_dir", "remote_path"],
    "NetworkFileSystem": [
        "add_local_dir", "add_local_file", "create_deployed", "delete", "ephemeral", "from_name",
        "iterdir", "listdir", "read_file", "remove_file", "write_file",
    ],
    "Period": [],
    "Probe": ["exec_argv", "interval_ms", "tcp_port", "with_exec", "with_tcp"],
    "Proxy": ["from_name"],
    "Queue": [
        "clear", "ephemeral", "from_id", "from_name", "get", "get_many", "info", "iterate", "len",
        "name", "put", "put_many", "validate_partition_key",
    ],
    "Retries": ["delay"],
    "Sandbox": ["create", "from_id", "from_name", "list"],
    "SandboxSnapshot": ["from_id"],
    "SchedulerPlacement": [],
    "Server": ["from_name", "port", "with_batching", "with_concurrency", "with_options"],
    "Secret": ["env", "from_dict", "from_dotenv", "from_local_environ", "from_name"],
    "Tunnel": ["tcp_socket", "tls_socket", "url"],
    "Volume": [
        "batch_upload", "commit", "copy_files", "ephemeral", "from_name", "hydrate", "iterdir",
        "listdir", "name", "read_file", "read_file_into_fileobj", "reload", "remove_file",
    ],
    "Workspace": [
        "billing", "from_context", "member_tokens", "members", "name", "proxy_tokens",
        "service_users", "settings",
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
