"""ImageConfig: the runtime settings an image carries (ENV, WORKDIR, USER, …)."""

from __future__ import annotations

import json
from typing import NamedTuple

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
        """Apply one SetConfig op."""
        if field == "env":
            return self.with_env(value)  # type: ignore[arg-type]
        if field == "labels":
            return self.with_labels(value)  # type: ignore[arg-type]
        if field in ("exposed_ports", "volumes"):  # these accumulate, as in Docker
            merged = dict.fromkeys((*getattr(self, field), *value))  # type: ignore[misc]
            return self._replace(**{field: tuple(merged)})
        return self._replace(**{field: value})

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
