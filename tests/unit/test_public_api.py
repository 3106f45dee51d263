"""The public surface, pinned: `import imagewright as modal` offers exactly these names and
members. A change here is a change users see; make it on purpose, here and in the README."""

from __future__ import annotations

import inspect

import imagewright

EXPORTED = [
    "App", "Error", "FilePatternMatcher", "Function", "FunctionCall", "Image", "Mount", "Secret",
    "__version__", "enable_output", "exception",
]  # fmt: skip

MEMBERS = {
    "App": ["function", "local_entrypoint", "run"],
    "FilePatternMatcher": ["can_prune", "from_file"],
    "Function": ["for_each", "local", "map", "remote", "spawn", "starmap"],
    "FunctionCall": ["get"],
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
    "Secret": ["env", "from_dict", "from_dotenv", "from_local_environ"],
}  # fmt: skip


def _public(cls: type) -> list[str]:
    return sorted(name for name in vars(cls) if not name.startswith("_"))


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
