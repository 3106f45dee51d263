"""Image references (`name[:tag]`) as OCI layouts, Docker and containerd spell them; the
grammar itself is definition/reference.py's."""

from __future__ import annotations

from ..definition.reference import split_reference

TYPE_CHECKING = False  # typing.TYPE_CHECKING, without importing typing (_fasttyping.py)
if TYPE_CHECKING:
    from typing import NamedTuple
else:
    from .._namedtuple import NamedTuple  # typing's, made in a tenth of the time

__all__ = ["Reference", "parse_reference", "split_registry"]


class Reference(NamedTuple):
    name: str  # as the user wrote it, e.g. "imagewright" or "ghcr.io/me/app"
    tag: str

    def __str__(self) -> str:
        return f"{self.name}:{self.tag}"

    @property
    def qualified(self) -> str:
        """The fully qualified form Docker stores and containerd's annotation carries."""
        first, _, rest = self.name.partition("/")
        if rest and ("." in first or ":" in first or first == "localhost"):
            return str(self)
        path = self.name if rest else f"library/{self.name}"
        return f"docker.io/{path}:{self.tag}"


def parse_reference(ref: str) -> Reference:
    """Split `name[:tag]` (tag defaults to "latest"). Raises InvalidError on a malformed one."""
    return Reference(*split_reference(ref))


def split_registry(name: str) -> tuple[str, str]:
    """(registry host[:port], repository) of a name; Docker Hub when no host is given."""
    first, _, rest = name.partition("/")
    if rest and ("." in first or ":" in first or first == "localhost"):
        return first, rest
    return "registry-1.docker.io", name if rest else f"library/{name}"
