"""The grammar of image references (`name[:tag]`), checked when a recipe names one.

It lives here, below the OCI formats, because from_registry checks its argument eagerly;
oci/reference.py builds its Reference from `split_reference`.
"""

from __future__ import annotations

import re

from ..exception import InvalidError

__all__ = ["split_reference"]

# Docker's grammar (distribution/reference), without digests: a registry host is recognised by
# a dot, a port or the name "localhost" in the first component.
_COMPONENT = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
_NAME = re.compile(rf"(?:[a-zA-Z0-9.-]+(?::[0-9]+)?/)?{_COMPONENT}(?:/{_COMPONENT})*")
_TAG = re.compile(r"[\w][\w.-]{0,127}")


def split_reference(ref: str) -> tuple[str, str]:
    """(name, tag) of `name[:tag]` (tag defaults to "latest"). Raises InvalidError on a
    malformed one."""
    name, tag = ref, "latest"
    head, sep, tail = ref.rpartition(":")
    if sep and "/" not in tail:
        name, tag = head, tail
    if not _NAME.fullmatch(name) or not _TAG.fullmatch(tag):
        raise InvalidError(
            f"Invalid image reference {ref!r}: expected NAME[:TAG] with a lowercase name "
            "such as 'imagewright/app:v1'."
        )
    return name, tag
