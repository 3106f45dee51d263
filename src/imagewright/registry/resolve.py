"""RegistryResolver: plan/resolve.py's Resolver over the network, the one the builder plans with.

A reference is resolved (manifest and config, not layers) once per process and credentials, so
the steps on top get keys and a base config from the image actually pulled; a forced build asks
again. The HTTP modules are imported on first use: a fully cached build resolves nothing.
"""

from __future__ import annotations

from collections.abc import Mapping

TYPE_CHECKING = False  # typing.TYPE_CHECKING, without importing typing (_fasttyping.py)
if TYPE_CHECKING:
    from .pull import PulledImage

__all__ = ["RegistryResolver"]

_resolved: dict[tuple[str, tuple[str, str] | None], PulledImage] = {}


class RegistryResolver:
    """Registries, the aws CLI (ECR tokens) and ADD URLs, as planning needs them."""

    def credentials(self, auth: str, env: Mapping[str, str]) -> tuple[str, str]:
        from .auth import secret_credentials

        found = secret_credentials(auth, dict(env))
        return found.username, found.password

    def resolve_image(
        self, tag: str, credentials: tuple[str, str] | None, *, refresh: bool
    ) -> PulledImage:
        from .auth import Credentials
        from .pull import resolve

        memo = (tag, credentials)
        if memo not in _resolved or refresh:
            _resolved[memo] = resolve(tag, Credentials(*credentials) if credentials else None)
        return _resolved[memo]

    def fetch_url(self, url: str, where: str, checksum: str | None) -> tuple[str, str]:
        from .download import fetch

        return fetch(url, where, checksum)
