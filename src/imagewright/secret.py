"""Secrets: environment variables given to one build step or function, and to nothing else.

`Secret.from_name` reads the local secret store, which `imagewright secret create` writes: one
JSON file per secret under settings.secrets_dir(), the directory mode 0700 and each file 0600,
owned by the user (a file anyone else could read or write is refused). A named secret is read
when a build is planned or a container starts, never when the user's module is imported, and
again each time, so `secret create --force` reaches the next container without a restart.
`Secret.objects` and `secret.update(...)` write the same store, as Modal's write its service's.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import stat
import time
from collections.abc import Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

from . import settings
from ._aio import twin
from ._callsite import user_callsite
from .cloud import Client, ModalObject
from .definition.envvars import check_env_vars
from .exception import AlreadyExistsError, InvalidError, NotFoundError
from .volume import check_name, local_time, newest_first, owner_name, require_host

if TYPE_CHECKING:
    from typing import NamedTuple
else:
    from ._namedtuple import NamedTuple  # typing's, made in a tenth of the time

__all__ = [
    "Secret",
    "SecretInfo",
    "create_secret",
    "delete_secret",
    "list_secrets",
    "read_secret",
]


class SecretInfo(NamedTuple):
    """What `Secret.info()` tells (modal.types.SecretInfo; a named tuple, not a dataclass:
    dataclasses would cost every container's start the import of inspect)."""

    name: str | None
    environment_name: str
    created_at: datetime
    created_by: str | None
    last_used: datetime | None


class _SecretManager:
    """`modal.Secret.objects`: the secrets of the local store, as `imagewright secret` creates,
    lists and deletes them (on the host, not inside a container)."""

    @twin
    def create(
        self,
        name: str,
        env_dict: dict[str, str],
        *,
        allow_existing: bool = False,
        environment_name: str | None = None,
        client: Client | None = None,
    ) -> None:
        """Store a secret (AlreadyExistsError if there is one of that name, unless
        `allow_existing`: then it is left as it is)."""
        require_host("Secret.objects.create")
        try:
            create_secret(name, env_dict)
        except AlreadyExistsError:
            if not allow_existing:
                raise

    @twin
    def list(
        self,
        *,
        max_objects: int | None = None,
        created_before: datetime | str | None = None,
        environment_name: str = "",
        client: Client | None = None,
    ) -> list[Secret]:
        """The stored secrets, the most recently written first: at most `max_objects`, only
        those written before `created_before` (a datetime or an ISO date)."""
        require_host("Secret.objects.list")
        return [
            Secret.from_name(name)
            for name in newest_first(list_secrets(), max_objects, created_before)
        ]

    @twin
    def delete(
        self,
        name: str,
        *,
        allow_missing: bool = False,
        environment_name: str | None = None,
        client: Client | None = None,
    ) -> None:
        """Remove a stored secret."""
        require_host("Secret.objects.delete")
        delete_secret(name, allow_missing=allow_missing)


class Secret(ModalObject):
    """A named set of environment variables.

    Values reach only the sandbox of the step or function they are given to. The build cache
    keys a step on the variable *names*, so rotating a token does not rebuild an image, and the
    values are redacted from build logs. For a `from_name` secret the names are those the store
    holds when the image is planned: the store is local, so planning stays offline.
    """

    __slots__ = ("_env", "_made", "_name", "_required_keys")
    _id_prefix = "st"
    objects = _SecretManager()

    def __init__(self, env: Mapping[str, str]):
        check_env_vars(env)  # names and values a process environment can hold
        self._env = dict(env)
        self._name: str | None = None
        self._required_keys: tuple[str, ...] = ()
        self._made = time.time()  # what info() tells of a secret not in the store

    def __repr__(self) -> str:
        if self._name is not None:
            return f"Secret.from_name({self._name!r})"
        return f"Secret(keys={sorted(self._env)})"

    @property
    def env(self) -> dict[str, str]:
        """The variables this secret supplies (for a named one, read from the store now)."""
        if self._name is not None:
            return read_secret(self._name, self._required_keys)
        return dict(self._env)

    @property
    def name(self) -> str | None:
        """The stored secret's name; None for one made here (from a dict, a file, ...)."""
        return self._name

    def _id_name(self) -> str:
        return self._name if self._name is not None else f"local:{id(self):x}"

    @twin
    def info(self, *, refresh: bool = False) -> SecretInfo:
        """When the secret was written (to the store, for a named one; else made) and by whom.
        Nothing records its use: `last_used` is None."""
        made, maker = self._made, os.geteuid()
        if self._name is not None:
            require_host("Secret.info")
            try:
                found = _path(self._name).stat()
            except FileNotFoundError:
                read_secret(self._name)  # raises the NotFoundError that says how to create it
                raise
            made, maker = found.st_mtime, found.st_uid
        return SecretInfo(self._name, "", local_time(made), owner_name(maker), None)

    @twin
    def update(self, env_dict: dict[str, str]) -> None:
        """Add `env_dict`'s variables to the secret, replacing those of the same names (a named
        secret is rewritten in the store; the next container to start gets them)."""
        if not isinstance(env_dict, dict) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in env_dict.items()
        ):
            raise InvalidError(
                "The `env_dict` argument to `Secret.update` must be a dict[str, str]"
            )
        if self._name is None:
            check_env_vars(env_dict)
            self._env.update(env_dict)
            return
        require_host("Secret.update")
        create_secret(self._name, {**read_secret(self._name), **env_dict}, force=True)

    @staticmethod
    def from_name(
        name: str,
        *,
        environment_name: str | None = None,
        required_keys: Sequence[str] = (),
        client: object = None,
    ) -> Secret:
        """The secret `imagewright secret create NAME ...` stored; read when it is used, when
        it must hold every one of `required_keys`. `environment_name` and `client` have no
        local meaning."""
        if isinstance(required_keys, str) or not all(isinstance(k, str) for k in required_keys):
            raise InvalidError("Secret.from_name: required_keys must be a list of strings")
        secret = Secret({})
        secret._name = check_name(name, "Secret")
        secret._required_keys = tuple(required_keys)
        return secret

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
        """A secret read from a .env file (KEY=VALUE lines, # comments, optional quotes).

        As in Modal, `filename` is looked for in `path`'s directory (`path` itself when it is a
        directory) and then in each directory above it; without `path`, from the current
        directory up, never the calling file's. Where Modal reads no file as no variables, a
        missing one raises here, at the user's line. Inside a container, which imports the
        program again without its files, nothing is read: the host passes the variables.
        """
        if settings.in_container():
            return Secret({})
        start = Path(os.getcwd() if path is None else os.path.abspath(path))
        if not start.exists():
            raise NotFoundError(
                f"{user_callsite()}: Secret.from_dotenv: no such file or directory: {start}"
            )
        directory = start if start.is_dir() else start.parent
        for candidate in (directory, *directory.parents):
            if (candidate / filename).is_file():
                return Secret(_parse_dotenv((candidate / filename).read_text()))
        raise NotFoundError(
            f"{user_callsite()}: Secret.from_dotenv: no {filename} file in {directory} "
            "or any directory above it"
        )


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


# ---- the local secret store ------------------------------------------------------------------


def _path(name: str) -> Path:
    return settings.secrets_dir() / f"{check_name(name, 'Secret')}.json"


def read_secret(name: str, required_keys: Sequence[str] = ()) -> dict[str, str]:
    """The variables of the stored secret `name`; NotFoundError (naming the command that fixes
    it) if there is no such secret or it lacks one of `required_keys`."""
    path = _path(name)
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except FileNotFoundError:
        raise NotFoundError(
            f"Secret {name!r} not found: create it with "
            f"`imagewright secret create {name} KEY=VALUE ...`"
        ) from None
    with os.fdopen(fd, "rb") as reader:
        info = os.fstat(reader.fileno())
        if info.st_uid != os.geteuid() or stat.S_IMODE(info.st_mode) & 0o077:
            raise InvalidError(
                f"{path} must be owned by you and readable by no one else: chmod 600 {path}"
            )
        env = json.loads(reader.read())["env"]
    missing = [k for k in required_keys if k not in env]
    if missing:
        keys = " ".join(f"{k}=..." for k in missing)
        raise NotFoundError(
            f"Secret {name!r} is missing required key(s) {', '.join(missing)}: add them with "
            f"`imagewright secret create {name} {keys} --force` (with --force it replaces the "
            "secret, so give its other keys too)"
        )
    return {str(k): str(v) for k, v in env.items()}


def create_secret(name: str, env: Mapping[str, str], *, force: bool = False) -> Path:
    """Store `env` as the secret `name` (mode 0600); AlreadyExistsError if it exists and not
    `force`. The file appears whole or not at all."""
    path = _path(name)
    if not env:
        raise InvalidError("A secret needs at least one KEY=VALUE")
    check_env_vars(env)
    directory = path.parent
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    os.chmod(directory, 0o700)  # made by an older run, or under another umask
    temp = directory / f".{name}.{os.urandom(6).hex()}.tmp"
    fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
    try:
        with os.fdopen(fd, "w") as writer:
            json.dump({"env": dict(env)}, writer)
            writer.flush()
            os.fsync(writer.fileno())
        if force:
            os.replace(temp, path)
        else:
            try:
                os.link(temp, path)  # unlike a rename, refuses to replace an existing secret
            except FileExistsError:
                raise AlreadyExistsError(
                    f"Secret {name!r} already exists: pass --force to replace it"
                ) from None
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temp)
    return path


def delete_secret(name: str, *, allow_missing: bool = False) -> None:
    """Remove the stored secret `name`."""
    try:
        os.unlink(_path(name))
    except FileNotFoundError:
        if not allow_missing:
            raise NotFoundError(
                f"Secret {name!r} not found (`imagewright secret list` shows them)"
            ) from None


def list_secrets() -> dict[str, float]:
    """Each stored secret's name, with the time it was last written."""
    directory = settings.secrets_dir()
    if not directory.is_dir():
        return {}
    return {
        path.stem: path.stat().st_mtime
        for path in sorted(directory.glob("*.json"))
        if not path.name.startswith(".")
    }
