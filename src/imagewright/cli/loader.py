"""Load FILE[::NAME] references: import the user's module and pick the object named."""

from __future__ import annotations

import importlib.util
import os
import sys
from types import ModuleType
from typing import TypeVar

from ..exception import InvalidError, NotFoundError

__all__ = ["load_module", "pick", "split_ref"]

T = TypeVar("T")


def load_module(path: str) -> ModuleType:
    """Import a Python file as a module named after it, with its directory on sys.path."""
    if not os.path.isfile(path):
        raise NotFoundError(f"No such file: {path}")
    path = os.path.abspath(path)
    directory, filename = os.path.split(path)
    name = os.path.splitext(filename)[0]
    if directory not in sys.path:
        sys.path.insert(0, directory)
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def split_ref(ref: str) -> tuple[str, str | None]:
    """ "app.py::name" → ("app.py", "name"); "app.py" → ("app.py", None)."""
    path, sep, name = ref.partition("::")
    return path, (name or None) if sep else None


def pick(module: ModuleType, name: str | None, kind: type[T], what: str) -> T:
    """The module-level `kind` object called `name`, or the only one when name is None."""
    found = {k: v for k, v in vars(module).items() if isinstance(v, kind) and not k.startswith("_")}
    if name is not None:
        if name not in found:
            raise NotFoundError(
                f"No {what} named {name!r} in {module.__file__}. "
                f"Found: {', '.join(sorted(found)) or 'none'}"
            )
        return found[name]
    if len(found) == 1:
        return next(iter(found.values()))
    if not found:
        raise NotFoundError(f"No module-level {what} found in {module.__file__}")
    raise InvalidError(
        f"{module.__file__} defines several {what}s: {', '.join(sorted(found))}. "
        f"Pick one with FILE::NAME."
    )
