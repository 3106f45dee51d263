"""Eager argument checks and rendering for Image methods, with Modal's exception messages."""

from __future__ import annotations

import os
import shlex
from collections.abc import Mapping, Sequence
from pathlib import Path, PurePosixPath

from .._callsite import user_callsite
from ..exception import InvalidError
from ..secret import Secret
from .ops import IgnoreSpec
from .patterns import FilePatternMatcher

__all__ = [
    "abs_dir",
    "absolute_remote",
    "check_env_vars",
    "check_secrets",
    "check_str_list",
    "check_uv_version",
    "describe",
    "flatten",
    "ignore_spec",
    "join",
    "pip_flags",
    "refuse_flags",
]


def flatten(method: str, arg: str, values: Sequence[object]) -> list[str]:
    out: list[str] = []
    for value in values:
        items = value if isinstance(value, list) else [value]
        if not all(isinstance(x, str) for x in items):
            raise InvalidError(f"{method}: {arg} must only contain strings")
        out.extend(items)  # type: ignore[arg-type]
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


def pip_flags(
    find_links: str | None,
    index_url: str | None,
    extra_index_url: str | None,
    pre: bool,
    extra_options: str,
) -> str:
    pairs = (
        ("--find-links", find_links),
        ("--index-url", index_url),
        ("--extra-index-url", extra_index_url),
    )
    flags = [f"{flag} {shlex.quote(value)}" for flag, value in pairs if value is not None]
    flags += ["--pre"] if pre else []
    flags += [extra_options] if extra_options else []
    return " ".join(flags)


def join(*parts: str) -> str:
    return " ".join(p for p in parts if p)


def check_secrets(
    secrets: Sequence[Secret] | None, env: Mapping[str, str | None] | None
) -> tuple[Secret, ...]:
    items = list(secrets or [])
    if not all(isinstance(s, Secret) for s in items):
        raise InvalidError("All secrets of an Image need to be imagewright.Secret instances.")
    if env:
        items.append(Secret.from_dict(env))
    return tuple(items)


# execve refuses (E2BIG) any one NAME=value string longer than this (MAX_ARG_STRLEN, 32 pages).
MAX_ENV_STRING = 32 * 4096


def check_env_vars(env: Mapping[str, str]) -> None:
    """Refuse what no process environment can hold, naming the user's file:line: a name that is
    empty or holds '=' or NUL, a value that holds NUL, or one NAME=value too long for execve."""
    for name, value in env.items():
        problem = None
        if not name or "=" in name or "\0" in name:
            problem = "a name must be non-empty and hold no '=' or NUL character"
        elif "\0" in value:
            problem = "its value holds a NUL character, which ends a C string"
        else:
            size = len(f"{name}={value}".encode(errors="surrogatepass")) + 1
            if size > MAX_ENV_STRING:
                problem = (
                    f"NAME=value is {size} bytes, and execve takes at most {MAX_ENV_STRING} "
                    "in one variable ('Argument list too long')"
                )
        if problem:
            raise InvalidError(
                f"Invalid environment variable {name[:60]!r}: {problem} (at {user_callsite()})"
            )


def check_str_list(value: object, message: str) -> None:
    if not isinstance(value, list) or not all(isinstance(x, str) for x in value):
        raise InvalidError(message)


def absolute_remote(method: str, remote: str) -> str:
    if not PurePosixPath(remote).is_absolute():
        raise InvalidError(f"image.{method}() currently only supports absolute remote_path values")
    return remote


def abs_dir(local: str | Path) -> str:
    return os.path.abspath(os.path.expanduser(local))


def ignore_spec(ignore: object) -> IgnoreSpec:
    if isinstance(ignore, FilePatternMatcher) or callable(ignore):
        return ignore  # type: ignore[return-value]
    if isinstance(ignore, str) or not all(isinstance(p, str) for p in ignore):  # type: ignore[attr-defined]
        raise InvalidError("ignore must be a list of patterns or a callable taking a Path")
    return tuple(ignore)  # type: ignore[arg-type]


def describe(method: str, *args: object, **kwargs: object) -> str:
    """The call as a user would have written it, shortened for display."""
    shown = [repr(a) for a in args]
    shown += [f"{k}={v!r}" for k, v in kwargs.items() if v not in (None, False, "", [], ())]
    text = f"{method}({', '.join(shown)})"
    return text if len(text) <= 160 else text[:157] + "...)"
