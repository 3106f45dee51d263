"""Layer: one step of an image recipe, as the user wrote it and as ops to run."""

from __future__ import annotations

TYPE_CHECKING = False  # typing.TYPE_CHECKING, without importing typing (_fasttyping.py)
if TYPE_CHECKING:
    from typing import NamedTuple

    from ..secret import Secret
    from .ops import IgnoreSpec, Op
else:
    from .._namedtuple import NamedTuple  # typing's, made in a tenth of the time

__all__ = ["Layer", "LocalMount"]


class Layer(NamedTuple):
    """One build step: the ops it runs plus where it came from, for progress and errors."""

    method: str  # "apt_install"
    call: str  # "apt_install('git', 'curl')", as the user wrote it
    callsite: str  # "app.py:12"
    ops: tuple[Op, ...]
    secrets: tuple[Secret, ...] = ()
    force_build: bool = False

    @property
    def where(self) -> str:
        """`call` at `callsite`, the way errors name a step."""
        return f"{self.call} at {self.callsite}"


class LocalMount(NamedTuple):
    """Files attached to every container of an image at start (add_local_* with copy=False)."""

    local: str
    remote: str
    ignore: IgnoreSpec  # a predicate hashes and compares by identity
    is_dir: bool
    callsite: str
