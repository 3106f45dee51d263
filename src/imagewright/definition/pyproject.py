"""Read the parts of pyproject.toml files that pip_install_from_pyproject and uv_sync need."""

from __future__ import annotations

import sys
from pathlib import Path

from .._callsite import user_callsite
from ..exception import InvalidError, InvalidValueError, LocalFileNotFoundError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on 3.10 hosts only
    import tomli as tomllib

__all__ = ["check_uv_project", "read_dependencies"]


def _load(path: Path) -> dict[str, object]:
    try:
        # typed here, as the tomli that mypy checks Python 3.10 against is not installed
        data: dict[str, object] = tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as exc:
        raise InvalidError(f"{path} is not valid TOML: {exc}") from exc
    return data


def read_dependencies(pyproject_toml: str, optional_groups: list[str]) -> list[str]:
    """`[project].dependencies` plus each named optional group that exists."""
    path = Path(pyproject_toml)
    if not path.is_file():
        raise LocalFileNotFoundError(f"pyproject file not found: {path}")
    project = _load(path).get("project", {})
    if not isinstance(project, dict) or "dependencies" not in project:
        raise InvalidValueError(
            f"No [project.dependencies] section in {path}. If it is a Poetry project, use"
            " Image.poetry_install_from_file() instead."
        )
    deps = list(project["dependencies"])
    optional = project.get("optional-dependencies", {})
    for group in optional_groups:
        deps.extend(optional.get(group, []))
    return deps


def check_uv_project(pyproject_toml: Path) -> None:
    """Refuse what uv_sync cannot build: a missing pyproject or a uv workspace."""
    if not pyproject_toml.is_file():
        raise InvalidError(f"{user_callsite()}: Expected {pyproject_toml} to exist")
    tool = _load(pyproject_toml).get("tool", {})
    if isinstance(tool, dict) and "workspace" in tool.get("uv", {}):
        raise InvalidError("uv workspaces are not supported")
