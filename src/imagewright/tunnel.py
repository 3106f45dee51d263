"""Modal's `Tunnel` and `forward()`: exposing a container's port. Serving comes in a later
release; until then `forward(port)` can be written and raises UnimplementedError when entered.
Imported in containers (Python 3.9).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from ._unsupported import NotYetContext
from .exception import InvalidError

if TYPE_CHECKING:
    from .cloud import Client

__all__ = ["Tunnel", "forward"]


@dataclass(frozen=True)
class Tunnel:
    """A port forwarded from a running container: `url` (HTTPS), `tls_socket` and, for
    `forward(..., unencrypted=True)`, `tcp_socket`."""

    host: str
    port: int
    unencrypted_host: str
    unencrypted_port: int

    @property
    def url(self) -> str:
        return f"https://{self.host}" + ("" if self.port == 443 else f":{self.port}")

    @property
    def tls_socket(self) -> tuple[str, int]:
        return (self.host, self.port)

    @property
    def tcp_socket(self) -> tuple[str, int]:
        if not self.unencrypted_host:
            raise InvalidError(
                "This tunnel is not configured for unencrypted TCP. "
                "Please use `forward(..., unencrypted=True)`."
            )
        return (self.unencrypted_host, self.unencrypted_port)


def forward(
    port: int, *, unencrypted: bool = False, h2_enabled: bool = False, client: Client | None = None
) -> NotYetContext[Tunnel]:
    """`with forward(port) as tunnel:` exposes `port` of this container publicly (not yet)."""
    return NotYetContext("modal.forward")
