"""The actions of a from_registry base: one step per pulled layer, a step holding the pulled
config, and an optional standalone CPython (add_python). The planner makes these steps from the
image its Resolver reports; the builder runs them.
"""

from __future__ import annotations

from ..definition.pythons import BaseRelease

TYPE_CHECKING = False  # typing.TYPE_CHECKING, without importing typing (_fasttyping.py)
if TYPE_CHECKING:
    from typing import NamedTuple

    from .resolve import RemoteLayer
else:
    from .._namedtuple import NamedTuple  # typing's, made in a tenth of the time

__all__ = ["AddPython", "PullLayer"]


class PullLayer(NamedTuple):
    """Fetch one layer blob, check it and unpack it as this step's layer."""

    layer: RemoteLayer  # a registry.pull.LayerRef (planning imports no HTTP code)
    credentials: tuple[str, str] | None


class AddPython(NamedTuple):
    """Copy a uv-managed standalone CPython into /usr/local (from_registry(add_python=))."""

    release: BaseRelease  # series and the error to raise if it cannot be downloaded
