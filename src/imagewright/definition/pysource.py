"""Locate local Python modules for add_local_python_source."""

from __future__ import annotations

import importlib.util
import os

from ..exception import NotFoundError

__all__ = ["locate_module"]


def locate_module(module: str) -> tuple[str, str]:
    """Return (local path, remote path under /root) for an importable module or package."""
    try:
        spec = importlib.util.find_spec(module)
    except (ImportError, ValueError) as exc:
        raise NotFoundError(f"Module {module!r} could not be found: {exc}") from exc
    if spec is None or spec.origin in (None, "built-in", "frozen"):
        raise NotFoundError(f"Module {module!r} could not be found locally, so it cannot be added")
    remote_base = "/root/" + module.replace(".", "/")
    if spec.submodule_search_locations:
        return os.path.dirname(spec.origin), remote_base + "/"
    return spec.origin, remote_base + ".py"
