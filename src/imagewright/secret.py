"""Secrets: environment variables given to one build step or function, and to nothing else."""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from pathlib import Path

from .definition.envvars import check_env_vars
from .exception import InvalidError, NotFoundError

__all__ = ["Secret"]


class Secret:
    """A named set of environment variables.

    Values reach only the sandbox of the step or function they are given to. The build cache
    keys a step on the variable *names*, so rotating a token does not rebuild an image, and the
    values are redacted from build logs.
    """

    __slots__ = ("_env",)

    def __init__(self, env: Mapping[str, str]):
        check_env_vars(env)  # names and values a process environment can hold
        self._env = dict(env)

    def __repr__(self) -> str:
        return f"Secret(keys={sorted(self._env)})"

    @property
    def env(self) -> dict[str, str]:
        """The variables this secret supplies."""
        return dict(self._env)

    @staticmethod
    def from_dict(env_dict: Mapping[str, str | None] = {}) -> Secret:
        """A secret made from a dict; None values are dropped."""
        if not isinstance(env_dict, Mapping):
            raise InvalidError("Secret.from_dict expects a dict of strings")
        bad = sorted(
            str(k) for k, v in env_dict.items() if v is not None and not isinstance(v, str)
        )
        if bad or not all(isinstance(k, str) for k in env_dict):
            raise InvalidError(f"Secret.from_dict: values must be strings. Invalid keys: {bad}")
        return Secret({k: v for k, v in env_dict.items() if v is not None})

    @staticmethod
    def from_local_environ(env_keys: list[str]) -> Secret:
        """A secret made from variables of the local environment."""
        missing = [k for k in env_keys if k not in os.environ]
        if missing:
            raise InvalidError(f"Secret.from_local_environ: missing local env vars: {missing}")
        return Secret({k: os.environ[k] for k in env_keys})

    @staticmethod
    def from_dotenv(
        path: str | os.PathLike[str] | None = None, *, filename: str = ".env"
    ) -> Secret:
        """A secret read from a .env file (KEY=VALUE lines, # comments, optional quotes)."""
        env_path = (
            Path(path or ".") / filename if path is None or Path(path).is_dir() else Path(path)
        )
        if not env_path.is_file():
            raise NotFoundError(f"Secret.from_dotenv: no such file: {env_path}")
        return Secret(_parse_dotenv(env_path.read_text()))


def _parse_dotenv(text: str) -> dict[str, str]:
    env: dict[str, str] = {}
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#") or "=" not in line:
            continue
        key, _, value = line.removeprefix("export ").partition("=")
        value = value.strip()
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
            value = value[1:-1]
        else:
            value = re.sub(r"\s+#.*", "", value)  # an inline comment, as python-dotenv reads it
        env[key.strip()] = value
    return env
