"""What planning needs from outside, behind a Resolver the caller injects: registry credentials,
the image a registry reference names, and the file an `ADD <url>` fetches.

The planner never opens a connection itself, so it can be tested offline with a fake resolver;
registry/resolve.py implements this Protocol over the network, and the builder passes it in.
Planning an image that needs none of these works without a resolver (`OFFLINE`).
"""

from __future__ import annotations

from collections.abc import Mapping

from ..exception import InvalidError

__all__ = ["OFFLINE", "RemoteImage", "RemoteLayer", "Resolver"]


TYPE_CHECKING = False  # typing.TYPE_CHECKING, without importing typing (_fasttyping.py)
if TYPE_CHECKING:  # (what is passed in is only checked by type checkers: no Protocol made)
    from collections.abc import Sequence
    from typing import Protocol

    from ..definition.config import ImageConfig

    class RemoteLayer(Protocol):
        """One layer blob of a registry image; the step that pulls it keeps the object as it is."""

        @property
        def digest(self) -> str: ...
        @property
        def size(self) -> int: ...

    class RemoteImage(Protocol):
        """The linux/amd64 image a reference names: its manifest, config and layers (not blobs)."""

        @property
        def manifest_digest(self) -> str: ...
        @property
        def config(self) -> ImageConfig: ...
        @property
        def layers(self) -> Sequence[RemoteLayer]: ...

    class Resolver(Protocol):
        def credentials(self, auth: str, env: Mapping[str, str]) -> tuple[str, str]:
            """(username, password) from a from_registry secret's `env`, for auth kind "basic",
            "gcp" or "aws" (definition/registryauth.py)."""
            ...

        def resolve_image(
            self, tag: str, credentials: tuple[str, str] | None, *, refresh: bool
        ) -> RemoteImage:
            """The image `tag` names; `refresh` (a forced build) bypasses any remembered answer."""
            ...

        def fetch_url(self, url: str, where: str, checksum: str | None) -> tuple[str, str]:
            """(local path, sha256 hex) of what `url` serves; InvalidError naming `where` when it
            cannot be had or does not match `checksum` ("sha256:<hex>", ADD --checksum)."""
            ...


class _Offline:
    """The resolver of a plan that must not reach out: asking it anything is an error."""

    def credentials(self, auth: str, env: Mapping[str, str]) -> tuple[str, str]:
        raise InvalidError(f"registry credentials ({auth}) need a Resolver to plan with")

    def resolve_image(
        self, tag: str, credentials: tuple[str, str] | None, *, refresh: bool
    ) -> RemoteImage:
        raise InvalidError(f"from_registry({tag!r}) needs a Resolver to plan with")

    def fetch_url(self, url: str, where: str, checksum: str | None) -> tuple[str, str]:
        raise InvalidError(f"{where}: ADD {url} needs a Resolver to plan with")


OFFLINE: Resolver = _Offline()
