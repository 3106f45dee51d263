"""Plan a from_registry base: one step per pulled layer, a step holding the pulled config, and
an optional standalone CPython (add_python).

Resolving the reference (manifest and config, not layers) happens here, once per process and
reference, so the steps on top get keys and a base config from the image actually pulled. A
layer's key is derived from its blob digest and its parent's key; the config step's key from
the resolved manifest's digest, so a tag that moves to a new image rebuilds what is on top.
"""

from __future__ import annotations

from typing import NamedTuple

from ..definition.layer import Layer
from ..definition.ops import FromRegistry
from ..definition.pythons import BaseRelease, series_of
from ..exception import InvalidError
from ..version import BUILDER_VERSION
from .canonical import digest
from .planner import PlannedStep

__all__ = ["AddPython", "PullLayer", "plan_pulled", "registry_credentials"]

_resolved: dict[tuple[str, tuple[str, str] | None], object] = {}


class PullLayer(NamedTuple):
    """Fetch one layer blob, check it and unpack it as this step's layer."""

    layer: object  # a registry.pull.LayerRef; kept opaque so planning imports no HTTP code
    credentials: tuple[str, str] | None


class AddPython(NamedTuple):
    """Copy a uv-managed standalone CPython into /usr/local (from_registry(add_python=))."""

    release: BaseRelease  # series and the error to raise if it cannot be downloaded


def registry_credentials(layer: Layer, auth: str) -> tuple[str, str] | None:
    """(username, password) from the from_registry secret, by its auth kind, if one was given."""
    if not auth:
        return None
    from ..registry.auth import secret_credentials

    env = {k: v for s in layer.secrets for k, v in s.env.items()}
    return tuple(secret_credentials(auth, env))  # type: ignore[return-value]


def plan_pulled(layer: Layer, op: FromRegistry, force: bool) -> list[PlannedStep]:
    from ..registry.auth import Credentials
    from ..registry.pull import PulledImage, resolve

    credentials = registry_credentials(layer, op.auth)
    memo = (op.tag, credentials)
    if memo not in _resolved or force:
        _resolved[memo] = resolve(op.tag, Credentials(*credentials) if credentials else None)
    pulled = _resolved[memo]
    assert isinstance(pulled, PulledImage)
    steps: list[PlannedStep] = []
    parent: str | None = None
    count = len(pulled.layers)
    for index, ref in enumerate(pulled.layers, 1):
        key = digest({"type": "imagewright.pulled-layer.v1", "parent": parent, "blob": ref.digest})
        description = (
            f"{layer.call}: layer {index}/{count} {ref.digest[7:19]} ({ref.size / 1e6:.1f} MB)"
        )
        action = PullLayer(ref, credentials)
        steps.append(
            PlannedStep(
                key, parent, description, layer, (action,), pulled.config, force,
                (f"FROM {op.tag} (layer {ref.digest})",),
            )
        )  # fmt: skip
        parent = key
    key = digest(
        {
            "type": "imagewright.pulled-image.v1",
            "builder": BUILDER_VERSION,
            "parent": parent,
            "manifest": pulled.manifest_digest,
        }
    )
    steps.append(
        PlannedStep(
            key, parent, f"{layer.call}: {pulled.manifest_digest[:19]} config", layer, (),
            pulled.config, force, (f"FROM {op.tag}@{pulled.manifest_digest}",),
        )
    )  # fmt: skip
    if op.add_python is not None:
        steps.append(_add_python(layer, op.add_python, key, pulled.config, force))
    return steps


def _add_python(
    layer: Layer, version: str, parent: str, config: object, force: bool
) -> PlannedStep:
    caller = "Image.from_registry(add_python=...)"
    series = series_of(version, caller)
    if version != series:
        raise InvalidError(
            "Python version must be specified as 'major.minor' for this interface; "
            f"micro-level specification ({version!r}) is not valid. (at {layer.callsite})"
        )
    error = (
        f"{caller} needs a uv-managed standalone CPython {series}, and its download source "
        f"could not be reached (at {layer.callsite})."
    )
    release = BaseRelease("registry", "", series, (), standalone_error=error)
    key = digest(
        {
            "type": "imagewright.add-python.v1",
            "builder": BUILDER_VERSION,
            "parent": parent,
            "series": series,
        }
    )
    return PlannedStep(
        key, parent, f"{layer.call}: add standalone CPython {series} to /usr/local", layer,
        (AddPython(release),), config, force, ("COPY /python/. /usr/local",),  # type: ignore[arg-type]
    )  # fmt: skip
