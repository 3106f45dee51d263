"""ImageConfig: the runtime settings an image carries (ENV, WORKDIR, USER, …)."""

from __future__ import annotations

import json

TYPE_CHECKING = False  # typing.TYPE_CHECKING, without importing typing (_fasttyping.py)
if TYPE_CHECKING:
    from typing import NamedTuple, cast
else:
    from .._fasttyping import cast
    from .._namedtuple import NamedTuple  # typing's, made in a tenth of the time

__all__ = ["DEFAULT_PATH", "ImageConfig"]

DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


class ImageConfig(NamedTuple):
    """Immutable image settings; `with_` methods return updated copies."""

    env: tuple[tuple[str, str], ...] = (("PATH", DEFAULT_PATH),)
    workdir: str = "/"
    user: str = ""
    entrypoint: tuple[str, ...] | None = None
    cmd: tuple[str, ...] | None = None
    shell: tuple[str, ...] = ("/bin/sh", "-c")
    labels: tuple[tuple[str, str], ...] = ()
    # Recorded from Dockerfiles (EXPOSE, VOLUME, STOPSIGNAL, HEALTHCHECK); nothing here acts on
    # them. `healthcheck` is the OCI Healthcheck object as JSON, so the config stays hashable.
    exposed_ports: tuple[str, ...] = ()
    volumes: tuple[str, ...] = ()
    stop_signal: str = ""
    healthcheck: str = ""

    def with_env(self, updates: tuple[tuple[str, str], ...]) -> ImageConfig:
        """Set variables, replacing earlier values and keeping first-set order."""
        merged = dict(self.env)
        merged.update(updates)
        return self._replace(env=tuple(merged.items()))

    def with_labels(self, updates: tuple[tuple[str, str], ...]) -> ImageConfig:
        merged = dict(self.labels)
        merged.update(updates)
        return self._replace(labels=tuple(merged.items()))

    def with_field(self, field: str, value: object) -> ImageConfig:
        """Apply one SetConfig op.

        Every SetConfig is built with a value of its field's type (pairs for env and labels,
        words for exposed_ports, volumes, entrypoint, cmd and shell, else a str), so the casts
        below restate what holds by construction.
        """
        if field in ("env", "labels"):
            pairs = cast("tuple[tuple[str, str], ...]", value)
            return self.with_env(pairs) if field == "env" else self.with_labels(pairs)
        if field in ("exposed_ports", "volumes"):  # these accumulate, as in Docker
            added = cast("tuple[str, ...]", value)
            if field == "exposed_ports":
                return self._replace(exposed_ports=_merged(self.exposed_ports, added))
            return self._replace(volumes=_merged(self.volumes, added))
        if field == "entrypoint":
            return self._replace(entrypoint=cast("tuple[str, ...] | None", value))
        if field == "cmd":
            return self._replace(cmd=cast("tuple[str, ...] | None", value))
        if field == "shell":
            return self._replace(shell=cast("tuple[str, ...]", value))
        text = cast(str, value)
        if field == "workdir":
            return self._replace(workdir=text)
        if field == "user":
            return self._replace(user=text)
        if field == "stop_signal":
            return self._replace(stop_signal=text)
        if field == "healthcheck":
            return self._replace(healthcheck=text)
        raise ValueError(f"Got unexpected field names: {[field]!r}")  # as _replace(**) raised

    @property
    def runs_as_root(self) -> bool:
        """Whether USER leaves commands running as root (so they need no dropping to a user)."""
        return self.user.partition(":")[0] in ("", "root", "0")

    def env_dict(self) -> dict[str, str]:
        return dict(self.env)

    def to_json(self) -> dict[str, object]:
        """The OCI/Docker image-config form of these settings."""
        out: dict[str, object] = {
            "Env": [f"{k}={v}" for k, v in self.env],
            "WorkingDir": self.workdir,
            "User": self.user,
        }
        if self.entrypoint is not None:
            out["Entrypoint"] = list(self.entrypoint)
        if self.cmd is not None:
            out["Cmd"] = list(self.cmd)
        if self.labels:
            out["Labels"] = dict(self.labels)
        if self.exposed_ports:
            out["ExposedPorts"] = {port: {} for port in self.exposed_ports}
        if self.volumes:
            out["Volumes"] = {path: {} for path in self.volumes}
        if self.stop_signal:
            out["StopSignal"] = self.stop_signal
        if self.healthcheck:
            out["Healthcheck"] = json.loads(self.healthcheck)
        if self.shell != ImageConfig._field_defaults["shell"]:  # Docker records SHELL only
            out["Shell"] = list(self.shell)
        return out


def _merged(old: tuple[str, ...], added: tuple[str, ...]) -> tuple[str, ...]:
    """`old` then the new entries of `added`, each once, in first-seen order."""
    return tuple(dict.fromkeys((*old, *added)))
