"""How a function's code reaches its container: by name, from its own file or package.

As in Modal, the file that defines the function is attached at /root/<file>.py, or, when it is
part of a package, the whole top-level package at /root/<package>/; /root is on sys.path
inside, and the function is imported there by module and qualified name, never pickled.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from typing import Any

from ..definition.layer import LocalMount
from ..exception import InvalidError

__all__ = ["function_ref", "module_name", "source_mounts"]

# What a package mount leaves out: bytecode caches and dot-entries (.git, .venv, ...).
_PACKAGE_IGNORE = ("**/__pycache__", "**/*.pyc", "**/.*")


def _module_file(function: Callable[..., Any]) -> str:
    module = sys.modules.get(function.__module__)
    path: str | None = getattr(module, "__file__", None)
    if not path:
        raise InvalidError(
            f"{function.__qualname__} is not defined in a file, so it cannot be imported inside"
            " a container. Define it at the top level of a module."
        )
    return os.path.abspath(path)


def module_name(function: Callable[..., Any]) -> str:
    """The name the function's module is imported under inside the container."""
    if function.__module__ == "__main__":
        return os.path.splitext(os.path.basename(_module_file(function)))[0]
    return function.__module__


def function_ref(function: Callable[..., Any]) -> str:
    """ "module:qualname", how the container finds the function."""
    if "<locals>" in function.__qualname__ or function.__name__ == "<lambda>":
        raise InvalidError(
            f"{function.__qualname__} must be defined at the top level of its module"
            " (not inside another function or as a lambda)."
        )
    return f"{module_name(function)}:{function.__qualname__}"


def source_mounts(function: Callable[..., Any]) -> tuple[LocalMount, ...]:
    """The function's file, or its whole top-level package, as a mount under /root."""
    path = _module_file(function)
    name = module_name(function)
    if "." not in name and os.path.basename(path) != "__init__.py":
        return (LocalMount(path, f"/root/{name}.py", (), False, ""),)
    top = name.split(".")[0]
    package_dir = os.path.dirname(path)
    for _ in range(name.count(".") + (os.path.basename(path) == "__init__.py") - 1):
        package_dir = os.path.dirname(package_dir)
    return (LocalMount(package_dir, f"/root/{top}", _PACKAGE_IGNORE, True, ""),)
