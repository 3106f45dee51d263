"""HTTP clients for registries and Dockerfile `ADD <url>`.

They verify TLS against the host's CA store rather than certifi's bundle, so a TLS-intercepting
corporate proxy that the host trusts is trusted here too, and they honour the proxy variables.
"""

from __future__ import annotations

import ssl
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import httpx

__all__ = ["http_client"]


def http_client(*, insecure: bool = False, follow_redirects: bool = False) -> httpx.Client:
    """A client; `insecure` turns TLS verification off (plain-HTTP and self-signed registries)."""
    import httpx

    verify: ssl.SSLContext | bool = False if insecure else ssl.create_default_context()
    timeout = httpx.Timeout(120, connect=15)
    return httpx.Client(timeout=timeout, verify=verify, follow_redirects=follow_redirects)
