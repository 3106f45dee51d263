"""Environment variables as a process can hold them: checked where a recipe or a Secret takes
them, so a bad one fails at the user's line, not when a step starts."""

from __future__ import annotations

from collections.abc import Mapping

from .._callsite import user_callsite
from ..exception import InvalidError

__all__ = ["MAX_ENV_STRING", "check_env_vars"]

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
