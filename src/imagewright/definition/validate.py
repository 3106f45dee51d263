"""Eager argument checks and rendering for Image methods, with Modal's exception messages."""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path, PurePosixPath

from .. import settings
from .._callsite import user_callsite
from ..exception import InvalidError, LocalFileNotFoundError
from .patterns import FilePatternMatcher

TYPE_CHECKING = False  # typing.TYPE_CHECKING, without importing typing (_fasttyping.py)
if TYPE_CHECKING:
    from ..secret import Secret
    from .ops import IgnoreSpec

__all__ = [
    "abs_dir",
    "absolute_remote",
    "check_secrets",
    "check_str_list",
    "check_uv_version",
    "describe",
    "flatten",
    "ignore_spec",
    "local_path",
    "refuse_flags",
]


def flatten(method: str, arg: str, values: Sequence[str | list[str]]) -> list[str]:
    out: list[str] = []
    for value in values:
        items = value if isinstance(value, list) else [value]
        if not all(isinstance(x, str) for x in items):
            raise InvalidError(f"{method}: {arg} must only contain strings")
        out.extend(items)
    return out


def check_uv_version(version: str | None) -> str:
    if version is not None and (not isinstance(version, str) or not version[:1].isdigit()):
        raise InvalidError(f"uv_version must be a version string such as '0.8.0', not {version!r}")
    return version or ""


def refuse_flags(method: str, packages: list[str]) -> None:
    if any(p.startswith("-") for p in packages):
        raise InvalidError(
            f"Package list for `Image.{method}` cannot contain other arguments;"
            " try the `extra_options` parameter instead."
        )


def check_secrets(
    secrets: Sequence[Secret] | None, env: Mapping[str, str | None] | None
) -> tuple[Secret, ...]:
    items = list(secrets or [])
    if not items and not env:
        return ()  # (most steps: their definition then never loads secret.py, ~2 ms)
    from ..secret import Secret

    if not all(isinstance(s, Secret) for s in items):
        raise InvalidError("All secrets of an Image need to be imagewright.Secret instances.")
    if env:
        items.append(Secret.from_dict(env))
    return tuple(items)


def check_str_list(value: object, message: str) -> None:
    if not isinstance(value, list) or not all(isinstance(x, str) for x in value):
        raise InvalidError(message)


def absolute_remote(method: str, remote: str) -> str:
    if not PurePosixPath(remote).is_absolute():
        raise InvalidError(f"image.{method}() currently only supports absolute remote_path values")
    return remote


def abs_dir(local: str | Path) -> str:
    return os.path.abspath(os.path.expanduser(local))


def local_path(path: str | os.PathLike[str], method: str, kind: str = "file") -> str:
    """`path` resolved as Modal resolves it (`~` expanded, relative to the current directory)
    and made absolute now, at the user's call: the step that copies it runs later, elsewhere.

    On the host a missing file (or directory, for `kind="directory"`) raises here, naming the
    user's file:line. Inside a container, which imports the program again without its local
    files, nothing is checked: no step is planned there.
    """
    resolved = os.path.abspath(os.path.expanduser(path))
    exists = os.path.isdir if kind == "directory" else os.path.isfile
    if settings.in_container() or exists(resolved):
        return resolved
    relative = (
        ""
        if os.path.isabs(os.path.expanduser(path))
        else (f" (a relative path is resolved against the current directory, {os.getcwd()})")
    )
    raise LocalFileNotFoundError(
        f"{user_callsite()}: {method}: {kind} not found: {resolved}{relative}"
    )


def ignore_spec(ignore: Sequence[str] | Callable[[Path], bool]) -> IgnoreSpec:
    if isinstance(ignore, FilePatternMatcher) or callable(ignore):
        return ignore
    if isinstance(ignore, str) or not all(isinstance(p, str) for p in ignore):
        raise InvalidError("ignore must be a list of patterns or a callable taking a Path")
    return tuple(ignore)


def describe(method: str, *args: object, **kwargs: object) -> str:
    """The call as a user would have written it, shortened for display."""
    shown = [repr(a) for a in args]
    shown += [f"{k}={v!r}" for k, v in kwargs.items() if v not in (None, False, "", [], ())]
    text = f"{method}({', '.join(shown)})"
    return text if len(text) <= 160 else text[:157] + "...)"
