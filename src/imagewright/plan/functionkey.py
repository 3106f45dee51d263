"""What identifies a run_function step: the function's source, its globals and its arguments.

As in Modal, other functions it calls, modules and classes are left out (editing a helper does
not rebuild), and a global whose value cannot be pickled is skipped with a warning.
"""

from __future__ import annotations

import hashlib
import inspect
import pickle
import types
import warnings
from collections.abc import Callable, Iterator
from typing import Any

from ..exception import InvalidError

__all__ = ["function_identity", "pickled_arguments"]

_MAX_ARGUMENTS = 2 * 1024 * 1024


def _names(code: types.CodeType) -> Iterator[str]:
    yield from code.co_names
    for const in code.co_consts:
        if isinstance(const, types.CodeType):
            yield from _names(const)


def _globals_digest(function: Callable[..., Any]) -> dict[str, str]:
    digests = {}
    namespace = getattr(function, "__globals__", {})
    for name in sorted(set(_names(function.__code__))):
        if name not in namespace:
            continue
        value = namespace[name]
        if callable(value) or isinstance(value, types.ModuleType):
            continue
        try:
            data = pickle.dumps(value, protocol=4)
        except Exception:
            warnings.warn(
                f"Skipping unserializable global variable {name} for {function.__qualname__}. "
                "Changes to this variable won't invalidate the image.",
                stacklevel=4,
            )
            continue
        digests[name] = hashlib.sha256(data).hexdigest()
    return digests


def pickled_arguments(args: tuple[Any, ...], kwargs: dict[str, Any]) -> bytes:
    """The arguments as they travel to the container; refuses oversized ones."""
    from ..runtime.protocol import dumps

    data = dumps((args, kwargs))
    if len(data) > _MAX_ARGUMENTS:
        raise InvalidError(
            f"Arguments to run_function are too large ({len(data)} bytes, at most 2 MiB): "
            "pass a path or a URL instead."
        )
    return data


def function_identity(function: Callable[..., Any], arguments: bytes) -> list[object]:
    """The run_function part of a cache key."""
    try:
        source = inspect.getsource(function)
    except (OSError, TypeError):
        source = function.__code__.co_code.hex()
    return [source, _globals_digest(function), hashlib.sha256(arguments).hexdigest()]
