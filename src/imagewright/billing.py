"""modal.billing: Modal's cost reports. Nothing is billed locally; asking raises.
Imported in containers (Python 3.9).
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any

from ._unsupported import no_local_meaning

if TYPE_CHECKING:
    from .cloud import Client

__all__ = ["workspace_billing_report"]


def workspace_billing_report(
    *,
    start: datetime,
    end: datetime | None = None,
    resolution: str = "d",
    tag_names: list[str] | None = None,
    client: Client | None = None,
) -> list[dict[str, Any]]:
    """The workspace's costs between `start` and `end`, per `resolution`."""
    raise no_local_meaning("modal.billing.workspace_billing_report")
