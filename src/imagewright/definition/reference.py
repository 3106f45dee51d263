"""The grammar of image references (`name[:tag][@sha256:digest]`), checked when a recipe names one.

It lives here, below the OCI formats, because from_registry checks its argument eagerly;
oci/reference.py builds its Reference from `split_reference`, and registry/pull.py pulls by
`parse_pull_reference`.

A digest names an image to pull, never one to write: `split_reference` (export and push
targets) refuses one. When a reference has both, the digest wins for the pull and the tag is
kept only for display, as Docker does.
"""

from __future__ import annotations

import re

from ..exception import InvalidError

TYPE_CHECKING = False  # typing.TYPE_CHECKING, without importing typing (_fasttyping.py)
if TYPE_CHECKING:
    from typing import NamedTuple
else:
    from .._namedtuple import NamedTuple  # typing's, made in a tenth of the time

__all__ = ["PullReference", "parse_pull_reference", "split_reference"]

# Docker's grammar (distribution/reference): a registry host is recognised by a dot, a port or
# the name "localhost" in the first component. Of the digest algorithms only sha256 is used by
# registries, and it is the one every digest here is checked with.
_COMPONENT = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
# (compiled by `re` on first use, as most programs never name a registry image: ~0.7 ms)
_NAME = rf"(?:[a-zA-Z0-9.-]+(?::[0-9]+)?/)?{_COMPONENT}(?:/{_COMPONENT})*"
_TAG = r"[\w][\w.-]{0,127}"
_DIGEST = r"sha256:[0-9a-f]{64}"


class PullReference(NamedTuple):
    name: str  # as the user wrote it, e.g. "python" or "ghcr.io/me/app"
    tag: str | None  # None for `name@digest`; "latest" when neither is given
    digest: str | None

    @property
    def manifest(self) -> str:
        """What the registry is asked for: the digest when there is one."""
        return self.digest or self.tag or "latest"


def parse_pull_reference(ref: str) -> PullReference:
    """Split `name[:tag][@sha256:<64 hex>]`. Raises InvalidError on a malformed one."""
    rest, at, digest = ref.partition("@")
    if at and not re.fullmatch(_DIGEST, digest):
        raise InvalidError(
            f"Invalid image reference {ref!r}: the digest after '@' must be sha256:<64 "
            "lowercase hex digits>."
        )
    name, tag = rest, None
    head, sep, tail = rest.rpartition(":")
    if sep and "/" not in tail:
        name, tag = head, tail
    if not re.fullmatch(_NAME, name) or (tag is not None and not re.fullmatch(_TAG, tag)):
        raise InvalidError(
            f"Invalid image reference {ref!r}: expected NAME[:TAG][@sha256:DIGEST] with a "
            "lowercase name such as 'imagewright/app:v1'."
        )
    if tag is None and not at:
        tag = "latest"
    return PullReference(name, tag, digest or None)


def split_reference(ref: str) -> tuple[str, str]:
    """(name, tag) of `name[:tag]` (tag defaults to "latest"), a reference to write an image
    to. Raises InvalidError on a malformed one or one with a digest."""
    parsed = parse_pull_reference(ref)
    if parsed.digest is not None:
        raise InvalidError(
            f"Invalid image reference {ref!r}: a digest names an image to pull, not one to "
            "write; give NAME[:TAG]."
        )
    assert parsed.tag is not None  # a reference without a digest has one
    return parsed.name, parsed.tag
