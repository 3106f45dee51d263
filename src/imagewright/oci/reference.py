"""Image references (`name[:tag]`) as OCI layouts, Docker and containerd spell them."""

from __future__ import annotations

import re
from typing import NamedTuple

from ..exception import InvalidError

__all__ = ["Reference", "parse_reference", "split_registry"]

# Docker's grammar (distribution/reference), without digests: a registry host is recognised by
# a dot, a port or the name "localhost" in the first component.
_COMPONENT = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
_NAME = re.compile(rf"(?:[a-zA-Z0-9.-]+(?::[0-9]+)?/)?{_COMPONENT}(?:/{_COMPONENT})*")
_TAG = re.compile(r"[\w][\w.-]{0,127}")


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
    name, tag = ref, "latest"
    head, sep, tail = ref.rpartition(":")
    if sep and "/" not in tail:
        name, tag = head, tail
    if not _NAME.fullmatch(name) or not _TAG.fullmatch(tag):
        raise InvalidError(
            f"Invalid image reference {ref!r}: expected NAME[:TAG] with a lowercase name "
            "such as 'imagewright/app:v1'."
        )
    return Reference(name, tag)


def split_registry(name: str) -> tuple[str, str]:
    """(registry host[:port], repository) of a name; Docker Hub when no host is given."""
    first, _, rest = name.partition("/")
    if rest and ("." in first or ":" in first or first == "localhost"):
        return first, rest
    return "registry-1.docker.io", name if rest else f"library/{name}"
